"""The four experiments of the Experiments tab: round trip, candidates, when decided, seed grid.

Each is checked against an independent computation (the forward formula, a float64 posterior, the plain
run of the same settings), not against its own output.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_viz.candidates import frame_candidates
from diffusion_viz.compare import sample_columns
from diffusion_viz.data import load_emoji, nearest_emoji
from diffusion_viz.errors import InvalidInputError
from diffusion_viz.forward import add_noise, make_noise, to_model_space
from diffusion_viz.images import square_crop
from diffusion_viz.round_trip import plan_start, round_trip
from diffusion_viz.sampling import SCHEDULERS, SampleSettings, sample
from diffusion_viz.schedules import get_schedule
from diffusion_viz.seed_grid import seed_grid, tally
from diffusion_viz.when_decided import plan_columns, when_decided


@pytest.fixture(scope="module")
def emoji64():
    return load_emoji(64)


def _emoji(data, name):
    return data.images[list(data.names).index(name)]


def _rms(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


# ---- 1. the round trip ----------------------------------------------------------------------------
@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_little_noise_gives_the_input_back_for_every_sampler(emoji_model, emoji64, scheduler):
    cat = _emoji(emoji64, "cat")
    s = SampleSettings(prompt="", steps=20, scheduler=scheduler, schedule="cosine", seed=3)
    rt = round_trip(emoji_model, cat, s, levels=[40, 200])
    assert rt.starts[0].alpha_bar > 0.99
    x0 = to_model_space(cat).transpose(2, 0, 1)
    assert _rms(rt.runs[0].final, x0) < 0.05, scheduler
    assert nearest_emoji(rt.runs[0].final).name == "cat"
    assert nearest_emoji(rt.runs[1].final).name == "cat"  # abar 0.90: still the cat


def test_the_noised_start_is_the_forward_formula_with_the_forward_tabs_noise(emoji_model):
    from diffusion_viz.ui import logic

    rng = np.random.default_rng(5)
    photo = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    photo[:20, :8] = 255  # asymmetric: a transposed or flipped start would not match
    s = SampleSettings(prompt="cat", steps=50, scheduler="ddim", schedule="cosine", seed=7)
    rt = round_trip(emoji_model, photo, s, levels=[600])
    st = rt.starts[0]
    assert (st.step, st.timestep) == (20, 599.0)  # trailing spacing: 999, 979, ..., 599 is step 20 of 50
    ab = float(get_schedule("cosine").alphas_cumprod[599])
    assert st.alpha_bar == pytest.approx(ab, rel=1e-5)
    eps = make_noise((64, 64, 3), 7)  # the Forward tab's draw for seed 7 at this size
    expected = add_noise(to_model_space(photo), ab, eps).transpose(2, 0, 1)
    np.testing.assert_allclose(rt.starts_x[0], expected, atol=1e-5)
    # the first captured frame is exactly that start, and so is the Forward tab's picture of it
    np.testing.assert_allclose(rt.runs[0].frames[0].x_t, expected, atol=1e-5)
    shown = logic.forward_outputs(photo, 599, ["cosine"], 7).images[0]
    assert np.abs(shown.astype(int) - logic.to_pixels(expected.transpose(1, 2, 0)).astype(int)).max() <= 1
    # every frame from the start on is captured, numbered by its step in the whole run
    assert [f.index for f in rt.runs[0].frames] == list(range(20, 50))


def test_from_pure_noise_the_result_no_longer_depends_on_the_input(emoji_model, emoji64):
    s = SampleSettings(prompt="", steps=30, scheduler="ddim", schedule="cosine", seed=11)
    a = round_trip(emoji_model, _emoji(emoji64, "cat"), s, levels=[999]).runs[0].final
    b = round_trip(emoji_model, _emoji(emoji64, "rocket"), s, levels=[999]).runs[0].final
    assert _rms(a, b) < 1e-3
    near = round_trip(emoji_model, _emoji(emoji64, "cat"), s, levels=[400]).runs[0].final
    assert _rms(near, to_model_space(_emoji(emoji64, "cat")).transpose(2, 0, 1)) < 0.05  # and with less, it does


def test_a_photo_becomes_the_emoji_it_most_resembles(emoji_model, emoji64):
    """A photo is not in the training set: from a middle level the exact model ends on a training emoji."""
    from diffusion_viz.images import load_image
    from pathlib import Path

    photo = load_image(Path(__file__).resolve().parents[1] / "assets" / "examples" / "landscape.png")
    s = SampleSettings(prompt="", steps=30, scheduler="ddim", schedule="cosine", seed=0)
    rt = round_trip(emoji_model, photo, s, levels=[100, 600])
    x0 = to_model_space(square_crop(photo, 64)).transpose(2, 0, 1)
    np.testing.assert_allclose(rt.x0, x0, atol=1e-6)
    assert nearest_emoji(rt.runs[1].final).rms < 0.05  # a training emoji, not the photo
    assert _rms(rt.runs[1].final, x0) > 0.1


@pytest.mark.parametrize("bad", [[], list(range(0, 900, 100)), [1000], [-1], ["x"], [float("nan")]])
def test_bad_levels_are_refused(emoji_model, emoji64, bad):
    with pytest.raises(InvalidInputError):
        round_trip(emoji_model, _emoji(emoji64, "cat"), SampleSettings(steps=5), levels=bad)


def test_the_round_trip_on_a_latent_model_encodes_the_photo_with_its_vae():
    from diffusion_viz.models.sd_tiny import tiny_sd_pipeline
    from diffusion_viz.models.stable_diffusion import StableDiffusionDenoiser

    torch.manual_seed(0)
    model = StableDiffusionDenoiser(tiny_sd_pipeline())
    photo = np.zeros((40, 60, 3), dtype=np.uint8)
    photo[:, :30] = (250, 10, 10)
    z = model.encode_image(photo)
    assert z.shape == model.sample_shape and np.isfinite(z).all()
    # independent: the pipeline's own image processor and VAE
    pipe = model.pipe
    from PIL import Image

    crop = Image.fromarray(photo[:, 10:50]).resize((model.width, model.height), Image.LANCZOS)
    x = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        ref = pipe.vae.encode(x).latent_dist.mean[0].numpy() * pipe.vae.config.scaling_factor
    np.testing.assert_allclose(z, ref, atol=1e-5)
    s = SampleSettings(prompt="a", steps=4, scheduler="ddim", seed=0)
    rt = round_trip(model, photo, s, levels=[300, 999])
    assert all(r.final.shape == model.sample_shape for r in rt.runs)
    assert rt.runs[0].frames[0].index == plan_start(model, s.validated(), 300).step


# ---- 2. candidates ---------------------------------------------------------------------------------
def _posterior_float64(model, prompt, x_t, alpha_bar):
    """Independent: log prior + Gaussian likelihood of x_t for each emoji in the support, in float64."""
    cond = model.encode_prompt(prompt)
    images = cond.images.double().numpy()
    x = np.asarray(x_t, dtype=np.float64).reshape(-1)
    d2 = ((x[None] - math.sqrt(alpha_bar) * images) ** 2).sum(1)
    logits = cond.log_prior.numpy() - d2 / (2 * (1 - alpha_bar))
    w = np.exp(logits - logits.max())
    return w / w.sum(), cond.support.numpy()


@pytest.mark.parametrize("prompt", ["", "cat"])
def test_candidates_are_the_exact_posterior(emoji_model, prompt):
    run = sample(emoji_model, SampleSettings(prompt=prompt, steps=25, scheduler="ddim", schedule="cosine", seed=2))
    cands = frame_candidates(emoji_model, run.frames, prompt)
    assert len(cands) == len(run.frames)
    for f, c in zip(run.frames[::4], cands[::4]):
        w, support = _posterior_float64(emoji_model, prompt, f.x_t, f.alpha_bar)
        order = np.argsort(-w)[:8]
        assert c["top"][0][0] == support[order[0]]
        np.testing.assert_allclose([v for _, v in c["top"]], w[order], atol=1e-6)  # the 8 largest weights
        by_index = dict(zip(support.tolist(), w))
        np.testing.assert_allclose([v for _, v in c["top"]], [by_index[i] for i, _ in c["top"]], atol=1e-6)
        nz = w[w > 0]
        assert c["effective"] == pytest.approx(math.exp(-(nz * np.log(nz)).sum()), rel=1e-4)
    # at the start the guess averages the prior's whole support; at the end one emoji, the final one
    first, last = cands[0], cands[-1]
    assert first["effective"] > (1000 if not prompt else 1.0)
    assert last["effective"] == pytest.approx(1.0, abs=0.01)
    assert last["top"][0][0] == nearest_emoji(run.final).index
    assert sum(v for _, v in last["top"]) <= 1.0 + 1e-9


# ---- 3. when is the picture decided? ---------------------------------------------------------------
def test_switching_prompts_part_way(emoji_model):
    s = SampleSettings(prompt="cat", steps=20, scheduler="ddim", schedule="cosine", seed=4)
    ks, runs = when_decided(emoji_model, s, "rocket", fractions=[0, 0.25, 1])
    assert ks == [0, 5, 20]
    run_a = sample(emoji_model, s)
    run_b = sample(emoji_model, SampleSettings(**{**s.__dict__, "prompt": "rocket"}))
    np.testing.assert_allclose(runs[0].final, run_b.final, atol=1e-4)  # k = 0: B's own run
    np.testing.assert_allclose(runs[2].final, run_a.final, atol=1e-4)  # k = N: A's own run
    for f, g in zip(runs[1].frames[:5], run_a.frames[:5]):  # before k, A's frames
        np.testing.assert_allclose(f.x_t, g.x_t, atol=1e-5)
        np.testing.assert_allclose(f.x0, g.x0, atol=1e-4)
    assert _rms(runs[1].frames[5].x0, run_a.frames[5].x0) > 0.01  # from k on, the model hears B


def test_fresh_noise_part_way(emoji_model):
    s = SampleSettings(prompt="", steps=20, scheduler="ddpm", schedule="cosine", seed=4)
    ks, runs = when_decided(emoji_model, s, mode="reseed", fractions=[0, 0.5, 1])
    plain = sample(emoji_model, s)
    np.testing.assert_allclose(runs[2].final, plain.final, atol=1e-4)
    np.testing.assert_allclose(runs[1].frames[10].x_t, plain.frames[10].x_t, atol=1e-5)  # same up to k
    assert _rms(runs[1].frames[11].x_t, plain.frames[11].x_t) > 1e-3  # fresh noise after it
    with pytest.raises(InvalidInputError, match="ddpm or euler_a"):
        plan_columns(SampleSettings(scheduler="ddim"), [3], mode="reseed")


@pytest.mark.parametrize("bad", [dict(fractions=[]), dict(fractions=[1.5]), dict(fractions=[0.1] * 9),
                                 dict(fractions=["a"]), dict(mode="other")])
def test_bad_points_in_the_run_are_refused(emoji_model, bad):
    with pytest.raises(InvalidInputError):
        when_decided(emoji_model, SampleSettings(prompt="cat", steps=5), "dog", **bad)


def test_a_step_outside_the_run_is_refused():
    with pytest.raises(InvalidInputError, match="between 0 and 5"):
        plan_columns(SampleSettings(steps=5), [6], prompt_b="dog")


# ---- 4. one prompt, many seeds ---------------------------------------------------------------------
def test_the_seed_grid_is_each_seeds_own_run_and_tallies_the_prior(emoji_model):
    s = SampleSettings(prompt="animal", steps=20, scheduler="ddim", schedule="cosine")
    runs = seed_grid(emoji_model, s, [0, 1, 2])
    for seed, r in zip([0, 1, 2], runs):
        np.testing.assert_allclose(r.final, sample(emoji_model, SampleSettings(**{**s.__dict__, "seed": seed})).final,
                                   atol=1e-4)
    t = tally(emoji_model, "animal", runs)
    assert t["favourite"] == "dog" and 0.6 < t["prior"] < 0.8  # the reference: prior 71 % dog
    assert t["wins"] == t["ends"].count("dog") and sum(t["counts"].values()) == 3
    assert t["ends"] == [nearest_emoji(r.final).name for r in runs]


@pytest.mark.parametrize("bad", [[], list(range(9)), [-1], [1.5], ["x"]])
def test_bad_seed_lists_are_refused(emoji_model, bad):
    with pytest.raises(InvalidInputError):
        seed_grid(emoji_model, SampleSettings(steps=3), bad)


def test_columns_with_a_late_start_match_a_plain_run_that_reaches_that_step(emoji_model):
    """The lockstep loop's late start is the plain run's state at step k: the sampler math is shared."""
    from diffusion_viz.compare import Column

    s = SampleSettings(prompt="", steps=10, scheduler="dpmpp_2m", schedule="cosine", seed=9)
    plain = sample(emoji_model, s)
    k = 4
    (late,) = sample_columns(emoji_model, [Column(s, start_step=k, start_x=plain.frames[k].x_t)])
    np.testing.assert_allclose(late.frames[0].x_t, plain.frames[k].x_t, atol=1e-6)
    assert late.frames[0].alpha_bar == pytest.approx(plain.frames[k].alpha_bar)
    assert nearest_emoji(late.final).name == nearest_emoji(plain.final).name


def test_the_round_trip_figures_the_tab_states():
    """explain.ROUND_TRIP quotes these for emoji-unet and the example photo, seed 0, 50 DDIM steps, cosine."""
    from pathlib import Path

    from diffusion_viz.images import load_image
    from diffusion_viz.models.registry import get_model
    from diffusion_viz.ui import explain

    photo = load_image(Path(__file__).resolve().parents[1] / "assets" / "examples" / "landscape.png")
    s = SampleSettings(prompt="", steps=50, scheduler="ddim", schedule="cosine", seed=0)
    rows = round_trip(get_model("emoji-unet"), photo, s, levels=[19, 199, 599]).summary()
    got = [round(r["rms_to_input"], 2) for r in rows]
    assert got[0] < 0.05 and abs(got[1] - 0.17) <= 0.02 and abs(got[2] - 0.37) <= 0.02, got
    assert "0.035 from t = 19, 0.17 from t = 199, 0.37 from t = 599" in explain.ROUND_TRIP
    exact = round_trip(get_model("emoji-exact"), photo, s, levels=[19]).summary()[0]
    assert exact["rms_to_input"] > 0.3  # "even from t = 19 a photo becomes the emoji it is closest to"
    assert abs(rows[0]["rms_to_input"] - 0.035) < 0.005


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "cosine", "sigmoid", "laplace"])
@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_every_sampler_and_schedule_the_experiments_offer(emoji_model_32, scheduler, schedule):
    """What the Experiments tab lets a user pick (sampler x schedule): the round trip's columns end on a
    finished picture, the low-noise one on the input; the seed grid's and when-decided's columns too."""
    from diffusion_viz.schedules import SCHEDULES

    assert schedule in SCHEDULES
    data = load_emoji(32)
    s = SampleSettings(prompt="", steps=8, scheduler=scheduler, schedule=schedule, seed=1)
    rt = round_trip(emoji_model_32, _emoji(data, "rocket"), s, levels=[60, 999])
    assert rt.starts[0].alpha_bar > rt.starts[1].alpha_bar
    assert all(nearest_emoji(r.final).rms < 0.1 for r in rt.runs), [nearest_emoji(r.final).rms for r in rt.runs]
    assert nearest_emoji(rt.runs[0].final).name == "rocket"
    grid = seed_grid(emoji_model_32, s, [0, 1])
    assert all(nearest_emoji(r.final).rms < 0.1 for r in grid)
    mode = "reseed" if scheduler in ("ddpm", "euler_a") else "switch"
    _, runs = when_decided(emoji_model_32, SampleSettings(**{**s.__dict__, "prompt": "cat"}), "dog",
                           fractions=[0.5], mode=mode)
    assert nearest_emoji(runs[0].final).rms < 0.1


def test_the_experiments_words_match_the_numbers():
    """Every number the Experiments tab states, computed."""
    from diffusion_viz.models.emoji_exact import TOP_K
    from diffusion_viz.ui import explain
    from diffusion_viz.when_decided import STOCHASTIC

    ab_sl = float(get_schedule("scaled_linear").alphas_cumprod[999])
    assert f"{100 * ab_sl:.2f} % of its power" in explain.ROUND_TRIP  # 0.47 %
    ab_cos = float(get_schedule("cosine").alphas_cumprod[999])
    assert f"ᾱ ≈ {ab_cos / 1e-9:.1f}·10⁻⁹" in explain.ROUND_TRIP  # 2.4e-9
    assert f"only the {TOP_K} emoji" in explain.WHEN_DECIDED and f"over the {TOP_K} emoji" in explain.SEED_GRID
    assert set(STOCHASTIC) == {"ddpm", "euler_a"}
    for text in (explain.WHEN_DECIDED, explain.SEED_GRID):
        assert "DDPM and Euler ancestral" in text


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_only_ddpm_and_euler_ancestral_draw_noise_after_the_start(emoji_model_32, scheduler):
    """The claim behind "new noise" (and the refusal of the others): reseeding after step 1 changes the
    run only for the samplers in when_decided.STOCHASTIC."""
    from diffusion_viz.compare import Column
    from diffusion_viz.when_decided import STOCHASTIC

    s = SampleSettings(prompt="", steps=6, scheduler=scheduler, schedule="cosine", seed=3)
    plain, reseeded = sample_columns(emoji_model_32, [Column(s), Column(s, reseed_step=1, reseed=99)])
    changed = _rms(plain.frames[-1].x_t, reseeded.frames[-1].x_t) > 1e-4
    assert changed == (scheduler in STOCHASTIC)


def test_the_start_picture_photo_then_drawing_then_emoji_then_example(emoji_model):
    from diffusion_viz.ui import experiments as ex

    blank = {"composite": np.full((256, 256, 4), 255, np.uint8)}
    assert ex.drawing_from_sketch(None) is None and ex.drawing_from_sketch(blank) is None
    drawn = np.full((256, 256, 4), 255, np.uint8)
    drawn[40:120, 30:90, :3] = (200, 0, 0)  # asymmetric: a flipped or transposed drawing would not match
    drawing = ex.drawing_from_sketch({"composite": drawn})
    assert drawing.shape == (256, 256, 3) and tuple(drawing[50, 40]) == (200, 0, 0)
    assert tuple(drawing[50, 150]) == (255, 255, 255)
    photo = str(Path(__file__).resolve().parents[1] / "assets" / "examples" / "wheel.png")
    assert ex.photo_for(emoji_model, photo, "cat", drawing)[1] == "your photo"
    rgb, what = ex.photo_for(emoji_model, None, "cat", drawing)
    assert what == "your drawing" and tuple(rgb[50, 40]) == (200, 0, 0)
    assert ex.photo_for(emoji_model, photo, "cat")[1] == "your photo"
    rgb, what = ex.photo_for(emoji_model, None, "cat")
    assert what == "the training emoji cat" and rgb.shape == (64, 64, 3)
    assert ex.photo_for(emoji_model, None, "")[1] == "the example photo"
    with pytest.raises(InvalidInputError, match="no training emoji"):
        ex.photo_for(emoji_model, None, "not-an-emoji-name")
