"""emoji-ldm's UNet stage and loader, on tiny configs: resumable training, an export the app can load as a
Stable Diffusion pipeline, and text encoded the same way in training and in sampling."""

import csv
import json

import numpy as np
import pytest
import torch

from diffusion_viz.models import emoji_ldm
from diffusion_viz.training import ldm as tl
from diffusion_viz.training import vae as tv
from tiny_ldm import TINY_UNET, TINY_VAE, export_tiny_vae


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    """A tiny VAE, trained two steps and exported as the real one is."""
    return export_tiny_vae(tmp_path_factory.mktemp("vae"))


def _cfg(vae_dir, **kw):
    return tl.LDMConfig(**{"batch": 4, "save_every": 3, "warmup": 2, "vae_dir": str(vae_dir), "unet": TINY_UNET, **kw})


def _losses(run):
    with open(run / "loss.csv") as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def test_resuming_continues_the_same_loss_curve(tmp_path, vae_dir):
    cfg = _cfg(vae_dir)
    straight, split = tmp_path / "straight", tmp_path / "split"
    tl.train(straight, cfg, max_steps=5, log=lambda *_: None)
    tl.train(split, cfg, max_steps=3, log=lambda *_: None)
    tl.train(split, cfg, max_steps=5, log=lambda *_: None)
    a, b = _losses(straight), _losses(split)
    assert [s for s, _ in b] == [1, 2, 3, 4, 5]
    for (_, la), (_, lb) in zip(a, b):
        assert abs(la - lb) <= 1e-5 * la


def test_captions_are_dropped_at_the_configured_rate_and_reproducibly(vae_dir):
    cfg = _cfg(vae_dir, batch=400, p_uncond=0.1)
    _, captions = tl.batch_at(7, cfg)
    dropped = sum(c == "" for c in captions)
    assert 20 <= dropped <= 60, dropped  # 40 expected; binomial sd 6
    assert tl.batch_at(7, cfg)[1] == captions and tl.batch_at(8, cfg)[1] != captions


def test_the_loss_is_the_noise_prediction_error_of_sd_schedule(vae_dir):
    """An all-zero UNet predicts eps = 0, so the loss is E[eps^2] = 1: the target is the unit-variance noise."""
    from diffusers import DDPMScheduler

    unet = emoji_ldm.build_unet(TINY_UNET)
    for p in unet.conv_out.parameters():
        torch.nn.init.zeros_(p)
    vae, scaling = tl.load_vae(vae_dir)
    x, captions = tl.batch_at(0, _cfg(vae_dir, batch=32))
    loss, row = tl.loss_of(unet, vae, scaling, emoji_ldm.text_parts(), x, captions, 0,
                           DDPMScheduler.from_config(emoji_ldm.SCHEDULER_CONFIG))
    assert loss.item() == pytest.approx(1.0, abs=0.1) and row == {"loss": pytest.approx(loss.item())}


def test_min_snr_weights_each_sample_by_min_snr_gamma_over_snr(vae_dir):
    """Min-SNR (gamma 5) against the formula written out: SNR_t = abar_t / (1 - abar_t) from SD's betas,
    weight min(SNR, 5) / SNR per sample; the logged MSE stays the plain one."""
    from diffusers import DDPMScheduler

    unet = emoji_ldm.build_unet(TINY_UNET)
    vae, scaling = tl.load_vae(vae_dir)
    x, captions = tl.batch_at(3, _cfg(vae_dir, batch=8))
    sched = DDPMScheduler.from_config(emoji_ldm.SCHEDULER_CONFIG)
    text = emoji_ldm.text_parts()
    weighted, row = tl.loss_of(unet, vae, scaling, text, x, captions, 3, sched, snr_gamma=5.0)
    plain, row_plain = tl.loss_of(unet, vae, scaling, text, x, captions, 3, sched)
    mse, mse_plain = row["loss"], row_plain["loss"]
    # the same draws as loss_of, in the same order
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        z0 = vae.encode(x).latent_dist.sample(generator=g) * scaling
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, 1000, (len(z0),), generator=g)
        z_t = sched.add_noise(z0, noise, t)
        err = ((unet(z_t, t, encoder_hidden_states=emoji_ldm.encode_prompts(*text, captions)).sample - noise) ** 2)
    err = err.mean(dim=(1, 2, 3)).double()
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    abar = np.cumprod(1 - betas)[t.numpy()]
    snr = abar / (1 - abar)
    w = torch.from_numpy(np.minimum(snr, 5.0) / snr)
    assert weighted.item() == pytest.approx(float((err * w).mean()), rel=1e-4)
    assert mse == pytest.approx(mse_plain, rel=1e-6) == pytest.approx(float(err.mean()), rel=1e-4)
    assert plain.item() == pytest.approx(mse_plain) and (w < 1).any() and weighted.item() < plain.item()


def test_an_export_loads_as_a_stable_diffusion_model_with_every_view(tmp_path, vae_dir):
    from diffusion_viz.models.stable_diffusion import StableDiffusionDenoiser, scheduler_for
    from diffusion_viz.sampling import SampleSettings, sample

    tl.train(tmp_path / "run", _cfg(vae_dir), max_steps=2, log=lambda *_: None)
    card = tl.export(tmp_path / "run", tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} >= {"unet.safetensors", "vae.safetensors", "ldm.json", "vae.json"}
    assert card["unet_step"] == 2 and card["scheduler"]["beta_schedule"] == "scaled_linear"
    assert card["data"] == [{"seed": 0, "batch": 4, "first": 0, "end": 2, "nudge": 0, "centre_nudge": 0, "shade": 0}]
    assert np.asarray(card["preview"]["matrix"]).shape == (4, 3) and card["preview"]["rms"] > 0

    model = emoji_ldm.load_emoji_ldm(str(tmp_path / "model"))
    assert isinstance(model, StableDiffusionDenoiser)
    assert model.sample_shape == (4, 16, 16) and (model.height, model.width) == (64, 64)
    # the weights are the run's EMA weights (float16 on disk)
    ema = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["ema"]
    w = model.pipe.unet.state_dict()["conv_in.weight"]
    torch.testing.assert_close(w, ema["conv_in.weight"].half().float())
    assert model.pipe.vae.config.scaling_factor == pytest.approx(card["scaling_factor"])

    # the pipeline encodes a prompt exactly as training did
    prompt = "a cat next to a rocket at night"
    torch.testing.assert_close(model.encode_prompt(prompt).embeds.float(),
                               emoji_ldm.encode_prompts(*emoji_ldm.text_parts(), [prompt]))
    assert model.tokens(prompt).tokens[:2] == ["a", "cat"] and not model.tokens(prompt).truncated
    # the explanations name this model's encoder and window, not CLIP's 77 tokens
    from diffusion_viz.ui import sd_view

    long = sd_view.conditioning_info(model, "a cat " * 10)
    assert long["max_length"] == emoji_ldm.TEXT_MAX_TOKENS and len(long["tokens"]) == emoji_ldm.TEXT_MAX_TOKENS - 2
    md = sd_view.tokens_markdown(long)
    assert "MiniLM" in md and "`[CLS]`" in md and "`[SEP]`" in md and "16-token window" in md and "77" not in md
    assert "MiniLM reads at most 14 tokens" in sd_view.prompt_info(model)
    assert "16 vectors" in sd_view.tokens_markdown(sd_view.conditioning_info(model, ""))

    settings = SampleSettings(prompt=prompt, steps=4, scheduler="dpmpp_2m", guidance=4.0, seed=3)
    run = lambda: sample(model, settings, scheduler=scheduler_for(model, "dpmpp_2m"))  # noqa: E731
    a, b = run(), run()
    np.testing.assert_array_equal(a.final, b.final)
    assert a.final.shape == (4, 16, 16)
    picture = model.decode(a.final)
    assert picture.shape == (64, 64, 3) and picture.dtype == np.uint8
    preview = model.to_rgb(a.final)
    assert preview.shape == (16, 16, 3)
    # the preview is the fitted linear map: check one pixel by hand
    m, o = np.asarray(card["preview"]["matrix"]), np.asarray(card["preview"]["offset"])
    expect = np.clip((a.final[:, 5, 7] @ m + o + 1) * 127.5, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(preview[5, 7], expect)
    assert model.latent_channels_image(a.final).shape[2] == 3


def test_a_missing_model_folder_is_a_clear_load_error(tmp_path):
    from diffusion_viz.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="emoji-ldm"):
        emoji_ldm.load_emoji_ldm(str(tmp_path))


def test_the_vae_warm_starts_from_its_export(tmp_path, vae_dir):
    state = tv.train(tmp_path / "warm", tv.VAEConfig(batch=2, vae=TINY_VAE), max_steps=3, log=lambda *_: None,
                     init=vae_dir)
    assert state["step"] == 3 and json.loads((vae_dir / "vae.json").read_text())["step"] == 2
    assert _losses(tmp_path / "warm")[0][0] == 3  # one step taken, numbered after the export's two


def test_the_unet_warm_starts_from_its_export(tmp_path, vae_dir):
    """A fresh machine keeps only assets/: training continues from the exported (EMA, float16) weights, with
    the step count after the export's and the learning rate warming up again."""
    cfg = _cfg(vae_dir, warmup=4)
    tl.train(tmp_path / "run", cfg, max_steps=3, log=lambda *_: None)
    tl.export(tmp_path / "run", tmp_path / "model")
    exported = tl.build_unet(TINY_UNET)
    assert tl.load_exported_unet(exported, tmp_path / "model") == 3
    rates = []
    state = tl.train(tmp_path / "warm", cfg, max_steps=4, log=rates.append, init=tmp_path / "model")
    assert state["step"] == 4 and _losses(tmp_path / "warm")[0][0] == 4  # one step, numbered after the three
    assert state["warm_from"] == 3
    assert state["opt"]["param_groups"][0]["lr"] == pytest.approx(cfg.lr / 4)  # warm-up restarted: 1 of 4
    # before that step the weights were the export's: the EMA moved only by (1 - decay) of one step from them
    decay = min(cfg.ema, 4 / 13)
    ref = exported.state_dict()
    for name, value in state["ema"].items():
        expected = decay * ref[name] + (1 - decay) * state["model"][name]
        torch.testing.assert_close(value, expected, atol=1e-6, rtol=1e-5)


def test_a_fine_tune_keeps_the_exported_network_and_records_every_stream_behind_it(tmp_path, vae_dir):
    """`train-ldm --init FOLDER --seed 1 --nudge ...`: a warm start takes the export's own architecture (not
    the default one) and its export lists both training streams, the warm start's and its own, so the
    benchmark's copy check searches every scene that shaped the weights."""
    import argparse
    import sys
    from pathlib import Path

    from diffusion_viz import scenes as sc

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import bench_emoji_ldm as bench

    tl.train(tmp_path / "base", _cfg(vae_dir), max_steps=2, log=lambda *_: None)
    tl.export(tmp_path / "base", tmp_path / "base_model")
    args = argparse.Namespace(out=str(tmp_path / "tune"), lr=1e-4, snr_gamma=None, teacher=None,
                              layers_per_block=None, kd_weight=1.0, init=str(tmp_path / "base_model"), seed=1,
                              nudge=3, centre_nudge=6, shade=40)
    cfg = tl.config_from(args)
    assert cfg.unet == json.loads(json.dumps(TINY_UNET)) and (cfg.seed, cfg.nudge, cfg.centre_nudge, cfg.shade) == (1, 3, 6, 40)
    cfg.batch, cfg.vae_dir, cfg.save_every = 4, str(vae_dir), 3
    tl.train(tmp_path / "tune", cfg, max_steps=4, init=tmp_path / "base_model", log=lambda *_: None)
    card = tl.export(tmp_path / "tune", tmp_path / "model")
    assert card["data"] == [
        {"seed": 1, "batch": 4, "first": 2, "end": 4, "nudge": 3, "centre_nudge": 6, "shade": 40},
        {"seed": 0, "batch": 4, "first": 0, "end": 2, "nudge": 0, "centre_nudge": 0, "shade": 0}]
    searched = {sc.render(s).tobytes() for s in bench.training_scenes(card)}
    trained = [tl.batch_at(step, c)[0] for step, c in ((0, _cfg(vae_dir)), (1, _cfg(vae_dir)), (2, cfg), (3, cfg))]
    pictures = ((torch.cat(trained).permute(0, 2, 3, 1) + 1) * 127.5).round().numpy().astype(np.uint8)
    assert searched == {p.tobytes() for p in pictures}
    assert any(o.dx or o.dy for step in (2, 3) for s in tl.scenes_at(step, cfg) for o in s.objects)
