"""The emoji-ldm benchmark's copy check searches the scenes the UNet was really trained on (the training
stream's batches), and measures the distance to the nearest one as the app's copy line does."""

import sys
from pathlib import Path

import numpy as np
import pytest

from diffusion_viz.scenes import render, scenes
from diffusion_viz.training.ldm import LDMConfig, batch_at

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_emoji_ldm as bench  # noqa: E402

CARD = {"training": {"batch": 4, "seed": 3}, "unet_step": 2, "data_steps": 5}


def test_the_searched_scenes_are_the_training_batches_pictures():
    train = bench.training_scenes(CARD)
    cfg = LDMConfig(batch=4, seed=3)
    pictures = np.concatenate([((batch_at(step, cfg)[0].permute(0, 2, 3, 1) + 1) * 127.5).round().numpy()
                               for step in range(5)]).astype(np.uint8)
    rendered = {render(s).tobytes() for s in train}
    # every picture of the five batches (data_steps, not unet_step) is searched, and nothing else
    assert {p.tobytes() for p in pictures} == rendered
    assert len(train) == len(set(train)) == len(rendered)
    assert len(bench.training_scenes(CARD, steps=2)) < len(train)


def test_the_nearest_training_scene_is_found_across_chunks():
    train = scenes(7, seed=11)
    a = render(train[5])
    flipped = a[:, ::-1].copy()  # an asymmetric scene mirrored: near its original, not equal to it
    other = render(scenes(1, seed=999, split="heldout")[0])
    samples = np.stack([a, flipped, other])
    got = bench.nearest_training_rms(samples, train, chunk=2)

    def rms(x, y):  # pixels in [-1, 1], written out
        return np.sqrt(np.mean(((x.astype(np.float64) - y.astype(np.float64)) / 127.5) ** 2))

    expected = [min(rms(s, render(t)) for t in train) for s in samples]
    assert got[0] == pytest.approx(0.0, abs=1e-3)
    assert got[1] > 0.05 and got[2] > 0.05
    assert got == pytest.approx(expected, abs=1e-4)



def test_the_perfect_model_draws_each_caption_with_its_latest_datas_variation():
    """The reference beside "not a copy": each caption's scene as a perfect model of the UNet's latest
    training stream draws it, nudged and shaded as that stream's scenes are; without variation, exactly."""
    from diffusion_viz import scenes as sc

    wanted = scenes(40, seed=12)
    plain = bench.perfect_drawings(wanted, CARD)
    np.testing.assert_array_equal(plain, np.stack([render(s) for s in wanted]))
    varied_stream = {"seed": 1, "batch": 4, "first": 2, "end": 5, "nudge": 3, "centre_nudge": 6, "shade": 40}
    card = dict(CARD, data=[varied_stream, {**varied_stream, "seed": 3, "first": 0, "nudge": 0, "centre_nudge": 0,
                                           "shade": 0}])
    varied = bench.perfect_drawings(wanted, card)
    assert np.array_equal(varied, bench.perfect_drawings(wanted, card))  # seeded
    assert sum(not np.array_equal(v, p) for v, p in zip(varied, plain)) >= 38
    for v, s in zip(varied, wanted):
        assert sc.adheres(v, s)  # the same caption's objects, at their places
        bg = np.array(sc.background_of(v)) - np.array(sc.BACKGROUNDS[s.background])
        assert np.abs(bg).max() <= 40
