"""The compact frame format (ui/atlas.py): one PNG strip per panel, x_t derived from x0 and the noise.

Round trip for every offline model and for the frame counts of Heun (2N-1) and PNDM (N+1): for pixel
models x0 and the noise come back pixel for pixel, x_t within one level (1/255) of the server's picture
everywhere; latent previews (quantized, lossless WebP) within one level in all three panels.
"""

import json

import numpy as np
import pytest

from diffusion_viz.models.registry import get_model
from diffusion_viz.sampling import SampleSettings, sample
from diffusion_viz.ui import atlas, logic
from diffusion_viz.ui.player import to_value


def _displays(frames, model):
    to_rgb, noise_rgb = logic.display_functions(model)
    return {"x_t": np.stack([to_rgb(f.x_t) for f in frames]), "x0": np.stack([to_rgb(f.x0) for f in frames]),
            "eps": np.stack([noise_rgb(f.eps) for f in frames])}


@pytest.fixture(scope="module")
def tiny_sd():
    from diffusion_viz.models.sd_tiny import tiny_sd_pipeline
    from diffusion_viz.models.stable_diffusion import StableDiffusionDenoiser

    return StableDiffusionDenoiser(tiny_sd_pipeline(sample_size=16))


CASES = [("emoji-exact", "ddim", 8, 1.0), ("emoji-exact-32", "heun", 5, 1.0), ("emoji-exact-32", "pndm", 5, 1.0),
         ("emoji-exact-32", "euler_a", 6, 1.0), ("emoji-unet", "ddim", 6, 3.0), ("tiny-sd", "ddim", 5, 7.5),
         ("tiny-sd", "euler", 4, 1.0)]


@pytest.mark.parametrize("name, sampler, steps, guidance", CASES)
def test_round_trip_every_model_and_frame_count(name, sampler, steps, guidance, tiny_sd):
    model = tiny_sd if name == "tiny-sd" else get_model(name)
    settings = SampleSettings(prompt="cat", steps=steps, scheduler=sampler, guidance=guidance,
                              schedule="cosine" if name != "tiny-sd" else "scaled_linear")
    if name == "tiny-sd":
        from diffusion_viz.models.stable_diffusion import scheduler_for

        traj = sample(model, settings, scheduler=scheduler_for(model, sampler))
    else:
        traj = sample(model, settings)
    col = logic.player_column(traj.frames, model)
    col = json.loads(to_value(col))  # what travels
    assert sum(c["count"] for c in col["strips"]) == len(traj.frames) == len(col["frames"])
    got = atlas.decode_column(col["strips"], [f["alpha_bar"] for f in col["frames"]])
    want = _displays(traj.frames, model)
    if name == "tiny-sd":  # latent previews travel quantized to every other level: within one, each panel
        assert col["strips"][0]["x0"].startswith("data:image/webp;base64,")
        for panel in ("x_t", "x0", "eps"):
            diff = np.abs(got[panel].astype(int) - want[panel].astype(int))
            assert diff.max() <= 1, f"{panel} off by {diff.max()} levels"
            assert np.count_nonzero(diff) > 0  # quantized: odd values come back one level off
        return
    np.testing.assert_array_equal(got["x0"], want["x0"])
    np.testing.assert_array_equal(got["eps"], want["eps"])
    diff = np.abs(got["x_t"].astype(int) - want["x_t"].astype(int))
    assert diff.max() <= 1, f"x_t off by {diff.max()} levels"


def test_quantized_levels_round_trip_within_one_level_at_both_ends():
    """Every value 0..255 through the latent previews' quantization: within one level, 0 and 255 exact."""
    values = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    frames = np.concatenate([values, 255 - values])  # two frames: deltas in both directions
    strips = {"size": [16, 16], "count": 2, "delta": True, "quant": atlas.LATENT_QUANT,
              "x0": atlas.quantized_strip_uri(frames), "eps": atlas.quantized_strip_uri(frames),
              "x_t": atlas.quantized_strip_uri(frames), "predict": {"offset": [0, 0, 0], "eps_scale": 1.0}}
    got = atlas.decode_column(strips, [0.5, 0.5])
    for panel in ("x_t", "x0", "eps"):
        diff = np.abs(got[panel].astype(int) - frames.astype(int))
        assert diff.max() == 1
        assert got[panel][0, 0, 0, 0] == 0 and got[panel][0, 15, 15, 0] == 255 and got[panel][1, 0, 0, 0] == 255


def test_fix_strip_corrects_what_the_prediction_misses(emoji_model_32):
    """Noise beyond 3 standard deviations is clipped in its panel: there the prediction is far off and
    the fix strip carries the difference; everywhere else it is zero (and compresses to nothing)."""
    traj = sample(emoji_model_32, SampleSettings(prompt="", steps=6))
    col = logic.player_column(traj.frames, emoji_model_32)
    fix = atlas.png_array(col["strips"][0]["x_t"]["fix"])
    assert 0 < np.count_nonzero(fix) < 0.05 * fix.size
    broken = [dict(col["strips"][0], x_t={"fix": atlas.png_uri(np.zeros_like(fix))})]
    got = atlas.decode_column(broken, [f.alpha_bar for f in traj.frames])["x_t"]
    want = _displays(traj.frames, emoji_model_32)["x_t"]
    assert np.abs(got.astype(int) - want.astype(int)).max() > 1  # without the fixes: wrong


def test_payload_of_a_50_step_run_is_small(emoji_model):
    """Issue: 1.8 MB of per-frame PNGs for 50 steps at 64 px; goal <= 300 KB (bench/bench_payload.py)."""
    traj = sample(emoji_model, SampleSettings(prompt="cat", steps=50))
    payload = to_value(logic.player_payload([logic.player_column(traj.frames, emoji_model)]))
    assert len(payload) < 300_000, len(payload)


def test_predictor_matches_the_formula_in_floats():
    x0 = np.array([[[[255, 0, 128]]]], np.uint8)
    eps = np.array([[[[128, 255, 0]]]], np.uint8)
    ab = 0.36
    p = atlas.predict_xt(x0, eps, [ab], [127.5] * 3, 3.0)[0, 0, 0]
    for c in range(3):  # x_t = sqrt(ab) x0 + sqrt(1 - ab) eps, both read back from their displays
        x = x0[0, 0, 0, c] / 127.5 - 1
        e = 3 * (eps[0, 0, 0, c] / 127.5 - 1)
        want = np.clip((0.6 * x + 0.8 * e + 1) * 127.5, 0, 255)
        assert abs(p[c] - want) <= 0.5 + 1e-9


def test_a_streamed_run_sends_its_chunks_once_and_the_finished_payload_reuses_them(emoji_model_32):
    """The finished run is the chunks streamed before (not encoded twice), and decodes to every frame."""
    import json as _json

    from diffusion_viz.ui import denoise_tab
    from diffusion_viz.ui.cache import RESULTS

    RESULTS.clear()
    outs = list(denoise_tab.generate("rocket", 30, 77_123, 1.0, "ddim", "cosine", "emoji-unet"))
    streamed = [_json.loads(o[0]) for o in outs if isinstance(o[0], str) and _json.loads(o[0])["mode"] != "full"]
    final = _json.loads(outs[-1][0])
    assert final["mode"] == "full" and streamed
    sent = [chunk for p in streamed for chunk in p["columns"][0]["strips"]]
    assert final["columns"][0]["strips"][:len(sent)] == sent  # the same bytes, reused
    numbers = final["columns"][0]["frames"]
    got = atlas.decode_column(final["columns"][0]["strips"], [f["alpha_bar"] for f in numbers])
    assert got["x0"].shape == (30, 32, 32, 3)
    RESULTS.clear()


@pytest.mark.parametrize("which", ["pixels", "latent"])
def test_the_numpy_example_in_the_api_docs_runs(which, emoji_model_32, tiny_sd):
    """docs/API.md's 10 lines turn a /generate payload back into arrays: run them as written, for a pixel
    model (x0 exact) and a latent one (quantized WebP previews: within one level)."""
    import re
    from pathlib import Path

    from diffusion_viz.models.stable_diffusion import scheduler_for

    doc = (Path(__file__).resolve().parents[1] / "docs" / "API.md").read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", doc, re.S) if "decode_column" in block)
    model = emoji_model_32 if which == "pixels" else tiny_sd
    settings = SampleSettings(prompt="cat", steps=7, schedule="cosine" if which == "pixels" else "scaled_linear")
    traj = sample(model, settings, scheduler=None if which == "pixels" else scheduler_for(model, "ddim"))
    player = to_value(logic.player_payload([logic.player_column(traj.frames, model)]))
    scope = {"player": player}
    exec(code, scope)  # noqa: S102 - our own documentation
    want = _displays(traj.frames, model)
    tolerance = 0 if which == "pixels" else 1
    for got in (scope["x0"], scope["x0_chunk"]):
        assert np.abs(got.astype(int) - want["x0"].astype(int)).max() <= tolerance
    assert np.abs(scope["x_t"].astype(int) - want["x_t"].astype(int)).max() <= 1
