"""Stable Diffusion through diffusers, on tiny random-weight pipelines built from config (no hub access).

The key promise: the captured loop computes exactly what diffusers' own pipeline computes, for the same
seed and scheduler, while recording every step.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from diffusion_viz.errors import InvalidInputError, ModelLoadError, UnknownNameError, UnsupportedOptionError
from diffusion_viz.models.sd_tiny import tiny_sd_pipeline, tiny_sdxl_pipeline
from diffusion_viz.models.stable_diffusion import StableDiffusionDenoiser, compare_guidance, scheduler_for
from diffusion_viz.sampling import SampleSettings, sample

PROMPT = "a red cat and the dog"


@pytest.fixture(scope="module")
def sd():
    return StableDiffusionDenoiser(tiny_sd_pipeline(seed=0))


@pytest.fixture(scope="module")
def sd_v():
    return StableDiffusionDenoiser(tiny_sd_pipeline(seed=1, prediction_type="v_prediction"))


@pytest.fixture(scope="module")
def sdxl():
    return StableDiffusionDenoiser(tiny_sdxl_pipeline(seed=0))


def plain_pipeline_latent(denoiser, scheduler_name, prompt, steps, guidance, seed):
    pipe = denoiser.pipe
    pipe.scheduler = scheduler_for(denoiser, scheduler_name)
    out = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, output_type="latent",
               generator=torch.Generator("cpu").manual_seed(seed), height=denoiser.height, width=denoiser.width)
    return out.images[0].numpy()


def captured(denoiser, scheduler_name, prompt, steps, guidance, seed):
    settings = SampleSettings(prompt=prompt, steps=steps, scheduler=scheduler_name, guidance=guidance, seed=seed)
    return sample(denoiser, settings, scheduler=scheduler_for(denoiser, scheduler_name))


# ---- the captured loop equals the plain pipeline -----------------------------------------------------
@pytest.mark.parametrize("scheduler", ["ddim", "euler", "dpmpp_2m", "pndm", "heun", "euler_a"])
@pytest.mark.parametrize("guidance", [7.5, 1.0])
def test_final_latent_matches_plain_pipeline(sd, scheduler, guidance):
    traj = captured(sd, scheduler, PROMPT, 4, guidance, seed=3)
    ref = plain_pipeline_latent(sd, scheduler, PROMPT, 4, guidance, seed=3)
    assert traj.final.shape == ref.shape == sd.sample_shape
    np.testing.assert_allclose(traj.final, ref, atol=1e-5, rtol=0)


def test_v_prediction_matches_pipeline_and_keeps_the_forward_identity(sd_v):
    assert sd_v.prediction_type == "v_prediction"
    traj = captured(sd_v, "ddim", PROMPT, 4, 7.5, seed=5)
    np.testing.assert_allclose(traj.final, plain_pipeline_latent(sd_v, "ddim", PROMPT, 4, 7.5, seed=5), atol=1e-5)
    for f in traj.frames:  # x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, whatever the model predicts
        rebuilt = math.sqrt(f.alpha_bar) * f.x0 + math.sqrt(1 - f.alpha_bar) * f.eps
        np.testing.assert_allclose(rebuilt, f.x_t, atol=1e-4)


def test_sdxl_matches_pipeline_with_its_extra_conditioning(sdxl):
    cond = sdxl.encode_prompt(PROMPT)
    h, w = sdxl.height, sdxl.width
    assert cond.pooled.shape == (1, 32) and cond.time_ids.tolist() == [[h, w, 0, 0, h, w]]
    assert cond.embeds.shape == (1, 77, 64)  # two text encoders' features side by side
    empty = sdxl.encode_prompt("")  # SDXL's unconditional side is zeros (force_zeros_for_empty_prompt)
    assert not empty.embeds.any() and not empty.pooled.any()
    for scheduler in ("euler", "ddim"):
        traj = captured(sdxl, scheduler, PROMPT, 4, 6.0, seed=2)
        ref = plain_pipeline_latent(sdxl, scheduler, PROMPT, 4, 6.0, seed=2)
        np.testing.assert_allclose(traj.final, ref, atol=1e-5, rtol=0)


def test_other_resolution_matches_pipeline(sd):
    small = sd.resized(24, 40)
    assert small.sample_shape == (4, 12, 20)
    traj = captured(small, "euler", PROMPT, 3, 7.5, seed=0)
    np.testing.assert_allclose(traj.final, plain_pipeline_latent(small, "euler", PROMPT, 3, 7.5, 0), atol=1e-5)
    with pytest.raises(InvalidInputError):
        sd.resized(25, 32)


# ---- frames ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheduler, expected", [("ddim", 6), ("euler", 6), ("heun", 11), ("pndm", 7),
                                                 ("dpmpp_2m", 6)])
def test_frame_count_per_scheduler(sd, scheduler, expected):
    traj = captured(sd, scheduler, PROMPT, 6, 1.0, seed=0)
    assert len(traj.frames) == expected == sd.planned_frame_count(scheduler, 6)


def test_cfg_captures_conditional_and_unconditional_predictions(sd):
    g = 7.5
    traj = captured(sd, "ddim", PROMPT, 3, g, seed=1)
    for f in traj.frames:
        assert f.eps_cond.shape == f.eps_uncond.shape == sd.sample_shape
        np.testing.assert_allclose(f.eps, f.eps_uncond + g * (f.eps_cond - f.eps_uncond), atol=1e-4)
        assert np.abs(f.eps_cond - f.eps_uncond).max() > 0  # the prompt changes the prediction
    plain = captured(sd, "ddim", PROMPT, 3, 1.0, seed=1)
    assert plain.frames[0].eps_cond is None and plain.frames[0].eps_uncond is None


def test_batched_pair_equals_two_single_predictions(sd):
    x = torch.randn(1, *sd.sample_shape, generator=torch.Generator().manual_seed(0))
    cond, uncond = sd.encode_prompt(PROMPT), sd.encode_prompt("")
    out_u, out_c = sd.predict_pair(x, 500.0, 0.3, uncond, cond)
    np.testing.assert_allclose(out_c, sd.predict(x, 500.0, 0.3, cond), atol=1e-5)
    np.testing.assert_allclose(out_u, sd.predict(x, 500.0, 0.3, uncond), atol=1e-5)


# ---- pictures --------------------------------------------------------------------------------------
def test_preview_decode_and_channel_shapes(sd):
    traj = captured(sd, "ddim", PROMPT, 3, 7.5, seed=0)
    c, h, w = sd.sample_shape
    preview = sd.to_rgb(traj.frames[-1].x0)
    assert preview.shape == (h, w, 3) and preview.dtype == np.uint8
    tiles = sd.latent_channels_image(traj.frames[0].x_t)
    assert tiles.shape == (h, 4 * w + 3 * 2, 3) and tiles.dtype == np.uint8
    image = sd.decode(traj.final)
    assert image.shape == (sd.height, sd.width, 3) and image.dtype == np.uint8
    pipe = sd.pipe
    pipe.scheduler = scheduler_for(sd, "ddim")
    ref = pipe(PROMPT, num_inference_steps=3, guidance_scale=7.5, output_type="np",
               generator=torch.Generator("cpu").manual_seed(0)).images[0]
    assert np.abs(image.astype(int) - np.round(ref * 255).astype(int)).max() <= 1


def test_linear_preview_uses_the_family_factors():
    from diffusion_viz.models.latent_preview import LATENT_RGB, latent_to_rgb

    latent = np.zeros((4, 2, 2), np.float32)
    latent[3] = 1.0  # SD 1.x channel 4 is "minus blue"
    rgb = latent_to_rgb(latent, "sd1")[0, 0].astype(int)
    assert rgb[2] < rgb[0] < 128 and rgb[2] == round((1 - 0.473) * 127.5)
    assert latent_to_rgb(np.zeros((16, 3, 3)), "sd3").shape == (3, 3, 3)
    assert {"sd1", "sdxl", "sd3", "flux"} <= set(LATENT_RGB)
    with pytest.raises(InvalidInputError):
        latent_to_rgb(np.zeros((16, 3, 3)), "sd1")


def test_latent_explanation_mentions_latent_size(sd):
    text = sd.latent_explanation()
    assert "4x16x16" in text and "32x32" in text


# ---- text ------------------------------------------------------------------------------------------
def test_tokens_and_77_token_truncation(sd):
    view = sd.tokens("a red cat")
    assert view.tokens == ["a", "red", "cat"] and not view.truncated and view.max_length == 77
    long = sd.tokens(" ".join(["cat"] * 80))
    assert long.truncated and len(long.tokens) == 75 and len(long.dropped) == 5


def test_embedding_view(sd):
    view = sd.embedding_view(PROMPT, dims=16)
    assert view["norms"].shape == (77,) and view["heatmap"].shape == (77, 16, 3)
    assert view["shape"] == (77, 32)


def test_guidance_comparison_on_the_same_seed(sd):
    settings = SampleSettings(prompt=PROMPT, steps=3, scheduler="ddim", seed=4)
    results = compare_guidance(sd, settings, [1.0, 7.5])
    assert [s for s, _ in results] == [1.0, 7.5]
    np.testing.assert_allclose(results[0][1], captured(sd, "ddim", PROMPT, 3, 1.0, seed=4).final, atol=1e-6)
    assert np.abs(results[0][1] - results[1][1]).max() > 1e-3


# ---- schedulers ------------------------------------------------------------------------------------
def test_scheduler_for_uses_the_checkpoint_config(sd, sd_v):
    s = scheduler_for(sd_v, "euler")
    assert s.config.prediction_type == "v_prediction" and s.config.beta_schedule == "scaled_linear"
    assert scheduler_for(sd, "ddim").config.clip_sample is False
    assert scheduler_for(sd, "dpmpp_2m", karras=True).config.use_karras_sigmas
    assert scheduler_for(object(), "ddim") is None  # other models: the loop builds its own
    with pytest.raises(UnsupportedOptionError):
        scheduler_for(sd, "ddim", karras=True)
    with pytest.raises(UnknownNameError):
        scheduler_for(sd, "nope")


# ---- loading ---------------------------------------------------------------------------------------
def test_loads_a_saved_folder_once(tmp_path, sd):
    from diffusion_viz.models.registry import get_model
    from diffusion_viz.models.sd_loading import load_pipeline

    sd.pipe.save_pretrained(tmp_path)
    pipe = load_pipeline(str(tmp_path), device="cpu")
    assert pipe is load_pipeline(str(tmp_path), device="cpu")  # one load per process
    assert pipe.unet.dtype == torch.float32
    model = get_model(str(tmp_path))
    assert isinstance(model, StableDiffusionDenoiser) and model.sample_shape == sd.sample_shape
    x = torch.randn(1, *sd.sample_shape)
    np.testing.assert_allclose(model.predict(x, 10.0, 0.9, model.encode_prompt(PROMPT)),
                               sd.predict(x, 10.0, 0.9, sd.encode_prompt(PROMPT)), atol=1e-6)


def test_loader_errors_are_clear(tmp_path, monkeypatch):
    from diffusion_viz.models.sd_loading import load_pipeline

    monkeypatch.delenv("DIFFUSION_VIZ_ALLOW_ANY_MODEL", raising=False)
    with pytest.raises(ModelLoadError, match="not found"):
        load_pipeline(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="not a complete diffusers checkpoint folder"):
        load_pipeline(str(tmp_path))
    with pytest.raises(ModelLoadError, match="DIFFUSION_VIZ_ALLOW_ANY_MODEL"):
        load_pipeline("someone/some-model")
    (tmp_path / "model.ckpt").write_bytes(b"\x80\x04")
    with pytest.raises(ModelLoadError, match="pickle"):
        load_pipeline(str(tmp_path / "model.ckpt"))
    (tmp_path / "broken.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_pipeline(str(tmp_path / "broken.safetensors"))
    with pytest.raises(UnknownNameError):
        load_pipeline("")


@pytest.fixture()
def offered(monkeypatch):
    """Register the Stable Diffusion presets as an operator would (DIFFUSION_VIZ_MODELS=all); undo after."""
    from diffusion_viz.models import registry

    before = dict(registry.MODELS)
    monkeypatch.setenv("DIFFUSION_VIZ_MODELS", "all")
    registry._register_stable_diffusion()
    yield registry.MODELS
    registry.MODELS.clear()
    registry.MODELS.update(before)


def test_no_preset_is_offered_unless_the_operator_says_so(monkeypatch):
    """A student's click must not start a multi-GB download: the page offers the offline models only."""
    from diffusion_viz.errors import UnknownNameError as Unknown
    from diffusion_viz.models.registry import MODELS, offered_presets
    from diffusion_viz.ui import logic

    monkeypatch.delenv("DIFFUSION_VIZ_MODELS", raising=False)
    assert offered_presets() == [] and not {"sd15", "sdxl"} & set(MODELS)
    assert offered_presets({"DIFFUSION_VIZ_MODELS": "sd15, sd-turbo"}) == ["sd15", "sd-turbo"]
    assert len(offered_presets({"DIFFUSION_VIZ_MODELS": "all"})) == 5
    with pytest.raises(Unknown, match="sd16"):
        offered_presets({"DIFFUSION_VIZ_MODELS": "sd16"})
    with pytest.raises(Unknown, match="sd15"):  # the app (and its API) loads only what it offers
        logic.load_model("sd15")


def test_offline_preset_fails_fast_and_app_models_keep_working(monkeypatch, offered):
    from diffusion_viz.models.registry import get_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert {"sd15", "sd21", "sdxl", "sd-turbo", "sdxl-turbo"} <= set(offered)
    assert offered["sd15"].default_schedule == "scaled_linear"
    monkeypatch.delenv("DIFFUSION_VIZ_ALLOW_DOWNLOADS", raising=False)
    with pytest.raises(ModelLoadError, match="not downloaded on this server.*diffusion-viz download sd15"):
        get_model("sd15")  # offered, not on disk, downloads not allowed: the operator's choice, said so
    monkeypatch.setenv("DIFFUSION_VIZ_ALLOW_DOWNLOADS", "1")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="offline|not reachable|Not enough"):
        get_model("sd15")
    assert time.perf_counter() - start < 20  # a hang guard, not a speed test: offline answers at once


def test_single_file_family_is_read_from_the_keys(tmp_path):
    import diffusers
    from safetensors.torch import save_file

    from diffusion_viz.models.sd_loading import Source, _pipeline_class

    xl, sd15 = tmp_path / "xl.safetensors", tmp_path / "sd.safetensors"
    save_file({"conditioner.embedders.1.model.ln_final.weight": torch.zeros(1)}, str(xl))
    save_file({"cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.zeros(1)}, str(sd15))
    assert _pipeline_class(Source("file", str(xl))) is diffusers.StableDiffusionXLPipeline
    assert _pipeline_class(Source("file", str(sd15))) is diffusers.StableDiffusionPipeline


def test_device_and_dtype_choice(monkeypatch):
    from diffusion_viz.models.sd_loading import pick_device, pick_dtype

    monkeypatch.delenv("DIFFUSION_VIZ_DEVICE", raising=False)
    monkeypatch.delenv("DIFFUSION_VIZ_DTYPE", raising=False)
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cuda")) == torch.float16
    assert pick_dtype(torch.device("cuda"), "bf16") == torch.bfloat16
    with pytest.raises(UnknownNameError):
        pick_dtype(torch.device("cuda"), "int8")
    if not torch.cuda.is_available():
        assert pick_device().type in {"cpu", "mps"}
        with pytest.raises(ModelLoadError):
            pick_device("cuda")
