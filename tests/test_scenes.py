"""The miniature latent model's data: generated scenes, held-out pairs, and the adherence scorer."""

import numpy as np
import pytest

from diffusion_viz import scenes as sc
from diffusion_viz.errors import InvalidInputError


def test_every_vocabulary_word_is_a_shipped_emoji():
    assert len(sc.VOCABULARY) >= 95
    sprites = sc._sprites64()
    assert set(sprites) == set(sc.VOCABULARY)
    assert all(mask.mean() > 0.05 for _, mask in sprites.values())  # something is drawn


def test_scenes_are_seeded_and_captions_follow_the_grammar():
    a, b = sc.scenes(50, seed=3), sc.scenes(50, seed=3)
    assert a == b and a != sc.scenes(50, seed=4)
    captions = {s.caption for s in a}
    assert any(" next to a " in c for c in captions) and any(" above a " in c for c in captions)
    assert any(c.startswith("a big ") for c in captions)
    s = sc.Scene((sc.Placed("rocket", "top", "small"), sc.Placed("cat", "bottom", "small")), "at night")
    assert s.caption == "a rocket above a cat at night"
    assert sc.Scene((sc.Placed("owl", "centre", "big"),), "").caption == "a big owl"
    assert sc.Scene((sc.Placed("octopus", "left", "small"), sc.Placed("grapes", "right", "small")),
                    "on grass").caption == "an octopus next to some grapes on grass"


def test_held_out_pairs_never_appear_in_training():
    words = sorted(sc.VOCABULARY)
    pairs = [(a, b) for i, a in enumerate(words) for b in words[i + 1:]]
    share = np.mean([sc.held_out_pair(a, b) for a, b in pairs])
    assert 0.17 < share < 0.23
    assert sc.held_out_pair("cat", "rocket") == sc.held_out_pair("rocket", "cat")  # unordered
    for s in sc.scenes(400, seed=1):
        if len(s.objects) == 2:
            assert not sc.held_out_pair(s.objects[0].word, s.objects[1].word)
    for s in sc.scenes(100, seed=1, split="heldout"):
        assert len(s.objects) == 2 and sc.held_out_pair(s.objects[0].word, s.objects[1].word)
    with pytest.raises(InvalidInputError):
        sc.scenes(3, split="test")


def test_objects_land_in_their_slots_on_their_background():
    s = sc.Scene((sc.Placed("rocket", "left", "small"), sc.Placed("cat", "right", "small")), "on grass")
    rgb = sc.render(s)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert sc.background_of(rgb) == sc.BACKGROUNDS["on grass"]
    fg = np.abs(rgb.astype(int) - np.array(sc.BACKGROUNDS["on grass"])).sum(2) > 30
    cols = np.nonzero(fg.any(0))[0]
    assert cols.min() >= 5 and cols.max() <= 59
    left, right = fg[:, :32].sum(), fg[:, 32:].sum()
    assert left > 100 and right > 100  # one object on each side
    swapped = sc.render(sc.Scene((sc.Placed("cat", "left", "small"), sc.Placed("rocket", "right", "small")),
                                 "on grass"))
    assert not np.array_equal(rgb, swapped)  # orientation matters


def test_variation_nudges_objects_and_shades_the_background_within_bounds():
    v = sc.Variation(nudge=3, centre_nudge=6, shade=40)
    varied, exact = sc.scenes(400, seed=5, variation=v), sc.scenes(400, seed=5)
    assert varied == sc.scenes(400, seed=5, variation=v) and varied != exact
    objs = [o for s in varied for o in s.objects]
    for o in objs:
        limit = 6 if o.slot == "centre" else 3
        assert abs(o.dx) <= limit and abs(o.dy) <= limit
    for slot, limit in (("centre", 6), ("left", 3)):
        moves = {o.dx for o in objs if o.slot == slot} | {o.dy for o in objs if o.slot == slot}
        assert min(moves) == -limit and max(moves) == limit, (slot, moves)
    shades = np.array([s.shade for s in varied])
    assert shades.min() == -40 and shades.max() == 40
    # the caption names the same thing however the picture varies
    s = varied[0]
    assert s.caption == sc.Scene(tuple(sc.Placed(o.word, o.slot, o.size) for o in s.objects), s.background).caption
    with pytest.raises(InvalidInputError):
        sc.scenes(1, variation=sc.Variation(nudge=4))


def test_a_nudged_object_is_the_same_picture_moved_and_shades_reflect_into_range():
    still = sc.render(sc.Scene((sc.Placed("rocket", "centre", "big"),), "on grass"))
    moved = sc.render(sc.Scene((sc.Placed("rocket", "centre", "big", dx=5, dy=-2),), "on grass"))
    assert np.array_equal(moved, np.roll(still, (-2, 5), axis=(0, 1)))  # down is +y, right is +x
    assert not np.array_equal(moved, np.roll(still, (5, -2), axis=(0, 1)))
    colour = lambda bg, shade: sc.background_of(sc.render(sc.Scene((sc.Placed("cat", "centre", "small"),), bg, shade)))  # noqa: E731
    assert colour("", (10, -5, 0)) == (245, 250, 255)  # white can only get darker: +10 reflects to -10
    assert colour("at night", (-30, 0, 40)) == (8, 26, 104)
    assert colour("on grass", (0, 0, 0)) == sc.BACKGROUNDS["on grass"]


def test_the_scorer_reads_training_scenes_right():
    """The issue asks >= 99 % on training scenes before the scorer may judge a model, with and without
    the variation the shipped UNet was fine-tuned on."""
    right = total = 0
    v = sc.Variation(nudge=3, centre_nudge=6, shade=40)
    for s in (sc.scenes(300, seed=7) + sc.scenes(100, seed=8, split="heldout")
              + sc.scenes(300, seed=9, variation=v) + sc.scenes(100, seed=10, split="heldout", variation=v)):
        total += 1
        right += sc.adheres(sc.render(s), s)
    assert right / total >= 0.99, right / total


def test_the_scorer_says_no_to_wrong_scenes():
    s = sc.Scene((sc.Placed("rocket", "left", "small"), sc.Placed("cat", "right", "small")), "")
    swapped = sc.render(sc.Scene((sc.Placed("cat", "left", "small"), sc.Placed("rocket", "right", "small")), ""))
    assert sc.adheres(sc.render(s), s) and not sc.adheres(swapped, s)
    other = sc.render(sc.Scene((sc.Placed("dog", "centre", "big"),), "at night"))
    assert not sc.adheres(other, sc.Scene((sc.Placed("cat", "centre", "big"),), "at night"))
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    (word, rms), = sc.read_scene(noise, sc.Scene((sc.Placed("cat", "centre", "big"),), ""))
    assert rms > 40  # nothing fits static well


def test_the_scenes_command_writes_the_grid_it_prints(tmp_path, capsys):
    from PIL import Image

    from diffusion_viz.cli import main

    out = tmp_path / "s.png"
    assert main(["scenes", "--count", "10", "--seed", "2", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    want = sc.scenes(10, seed=2)
    assert lines[:10] == [s.caption for s in want] and lines[-1] == f"wrote {out}"
    grid = np.asarray(Image.open(out).convert("RGB"))
    assert grid.shape == (2 * 256, 8 * 256, 3)
    second = grid[0:256:4, 256:512:4]  # scene 2, back to 64 px (nearest-neighbour upscale by 4)
    np.testing.assert_array_equal(second, sc.render(want[1]))
    assert main(["scenes", "--count", "0", "--out", str(out)]) == 2
    # with the variation the shipped UNet was fine-tuned on: the same captions' pictures, moved and shaded
    assert main(["scenes", "--count", "3", "--seed", "2", "--nudge", "3", "--centre-nudge", "6", "--shade", "40",
                 "--out", str(out)]) == 0
    varied = sc.scenes(3, seed=2, variation=sc.Variation(3, 6, 40))
    assert capsys.readouterr().out.splitlines()[:3] == [s.caption for s in varied]
    grid = np.asarray(Image.open(out).convert("RGB"))
    np.testing.assert_array_equal(grid[0:256:4, 256:512:4], sc.render(varied[1]))
    assert not np.array_equal(grid[0:256:4, 0:256:4], sc.render(sc.scenes(1, seed=2)[0]))
    assert main(["scenes", "--nudge", "5", "--out", str(out)]) == 2


def test_the_words_on_screen_and_in_the_model_card_count_the_real_vocabulary():
    """The app's model description and the model card say how many words and scenes there are: the data's."""
    from pathlib import Path

    from diffusion_viz.models.registry import EMOJI_LDM_INFO

    words, backgrounds = len(sc.VOCABULARY), len(sc.BACKGROUNDS)
    singles = words * len(sc.OBJECT_SIZES) * backgrounds
    assert f"({words} words, {backgrounds} backgrounds)" in EMOJI_LDM_INFO.description
    card = (Path(__file__).resolve().parents[1] / "assets" / "emoji_ldm" / "README.md").read_text()
    assert f"{words} nameable emoji" in card and f"knows {words} words" in card
    assert f"{singles} scenes ({words} words x {len(sc.OBJECT_SIZES)} sizes x {backgrounds} backgrounds)" in card
