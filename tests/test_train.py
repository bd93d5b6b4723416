"""The trainer on a micro config (64 emoji, 8/16 channels): seconds on a CPU."""

import json
import types

import numpy as np
import pytest
import torch

from diffusion_viz.models.emoji_unet import EmojiUNetDenoiser
from diffusion_viz.models.emoji_unet import build_unet
from diffusion_viz.training.unet import TrainConfig, export, train

CONFIG = "configs/emoji_unet_test.json"


@pytest.fixture(scope="module", autouse=True)
def one_thread_and_torch_rng():
    """These tests train on one thread, and train() seeds torch's global RNG: both are put back after
    this module, so tests elsewhere see the session's settings whatever the order."""
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_rng_state(rng)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig.load(CONFIG)
    return cfg, out, train(cfg, out, verbose=False)


def test_loss_falls(run):
    cfg, out, summary = run
    losses = summary["losses"]
    assert summary["step"] == cfg.max_steps == len(losses)
    assert np.isfinite(losses).all()
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5])
    rows = (out / "loss.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr,elapsed_s" and len(rows) == 1 + cfg.max_steps // cfg.log_every
    assert (out / f"samples_{cfg.max_steps:06d}.png").exists()  # the sample grid written during training


def test_resume_is_exact(tmp_path):
    """Pausing half-way and resuming from the checkpoint gives the same weights as one straight run."""
    cfg = TrainConfig.load(CONFIG)
    cfg.max_steps = 3
    train(cfg, tmp_path / "straight", verbose=False)
    assert train(cfg, tmp_path / "paused", verbose=False, stop_step=1)["step"] == 1
    resumed = train(cfg, tmp_path / "paused", verbose=False)  # same folder: picks up the checkpoint
    assert resumed["step"] == 3 and len(resumed["losses"]) == 2
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "paused" / "checkpoint.pt", weights_only=False)
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_export_round_trip(run, tmp_path):
    """Exported fp16 weights load back into a denoiser that matches the checkpoint's EMA (rounded to fp16)."""
    cfg, out, _ = run
    export(out, tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["step"] == cfg.max_steps and meta["prediction_type"] == "v_prediction"
    loaded = EmojiUNetDenoiser.from_dir(tmp_path)
    reference = build_unet(cfg.unet_config())
    ema = torch.load(out / "checkpoint.pt", weights_only=False)["ema"]
    reference.load_state_dict({k: v.half().float() for k, v in ema.items()})
    expected = EmojiUNetDenoiser(reference, meta)

    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cond = loaded.encode_prompt("cat face")
    assert torch.equal(loaded.predict(x, 500.0, 0.5, cond), expected.predict(x, 500.0, 0.5, cond))


def test_warm_start_with_pooled_conditioning_changes_nothing_at_step_0(run, tmp_path):
    """A second stage that adds the pooled sentence vector starts as exactly the first stage's model."""
    cfg, out, _ = run
    stage2 = TrainConfig.load(CONFIG)
    stage2.pooled_conditioning, stage2.init_from, stage2.max_steps = True, str(out / "checkpoint.pt"), 2
    from diffusion_viz.training.unet import warm_start

    first = build_unet(cfg.unet_config())
    first.load_state_dict(torch.load(out / "checkpoint.pt", weights_only=False)["model"])
    second, second_ema = build_unet(stage2.unet_config()), build_unet(stage2.unet_config())
    assert second.class_embedding is not None and first.class_embedding is None
    warm_start(second, second_ema, out / "checkpoint.pt", "cpu", verbose=False)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    hidden = torch.randn(2, 20, 384, generator=torch.Generator().manual_seed(2))
    pooled = torch.randn(2, 384, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a = first(x, 300, encoder_hidden_states=hidden).sample
        b = second(x, 300, encoder_hidden_states=hidden, class_labels=pooled).sample
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)

    summary = train(stage2, tmp_path / "stage2", verbose=False)  # and it trains, sentence vector included
    assert summary["step"] == 2 and np.isfinite(summary["losses"]).all()
    export(tmp_path / "stage2", tmp_path / "exported")
    assert (tmp_path / "exported" / "loss.png").stat().st_size > 1000  # both stages' loss, one curve after the other
    meta = json.loads((tmp_path / "exported" / "config.json").read_text())
    assert meta["steps_per_stage"] == [cfg.max_steps, 2] and meta["step"] == cfg.max_steps + 2
    model = EmojiUNetDenoiser.from_dir(tmp_path / "exported")
    cond = model.encode_prompt("cat face")
    assert cond.pooled.shape == (1, 384) and abs(float(cond.pooled.norm()) - 1) < 1e-5
    p1 = model.predict(x[:1], 500.0, 0.5, cond)
    p2 = model.predict(x[:1], 500.0, 0.5, model.encode_prompt("rocket"))
    assert not torch.equal(p1, p2)


def test_warm_start_refuses_a_different_architecture(run, tmp_path):
    _, out, _ = run
    from diffusion_viz.training.unet import warm_start

    other = TrainConfig.load(CONFIG)
    other.block_out_channels = (16, 16)
    with pytest.raises((ValueError, RuntimeError)):
        warm_start(build_unet(other.unet_config()), build_unet(other.unet_config()), out / "checkpoint.pt", "cpu",
                   verbose=False)


def test_max_minutes_stops_and_checkpoints(tmp_path):
    """--max-minutes ends a run early with a checkpoint that a later run resumes from."""
    cfg = TrainConfig.load(CONFIG)
    cfg.max_steps, cfg.sample_every = 10_000, 0
    summary = train(cfg, tmp_path, max_minutes=0.05, verbose=False)  # 3 seconds
    assert 0 < summary["step"] < cfg.max_steps
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == summary["step"]
    cfg.max_steps = summary["step"] + 1
    assert train(cfg, tmp_path, verbose=False)["step"] == summary["step"] + 1


# ---- the training target: v = sqrt(abar) eps - sqrt(1 - abar) x0 ----------------------------------------
@pytest.mark.parametrize("alpha_bar", [1e-9, 0.02, 0.5, 0.97, 1 - 1e-6])
def test_v_target_is_the_v_of_the_samplers(alpha_bar):
    """float64: v_target matches the formula, and the samplers' v-prediction inversion recovers (x0, eps)."""
    from diffusion_viz.sampling import to_x0_and_eps
    from diffusion_viz.training.unet import v_target

    g = torch.Generator().manual_seed(7)
    x0 = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    v = v_target(x0, eps, torch.tensor(alpha_bar, dtype=torch.float64))
    assert v.dtype == torch.float64
    expected = np.sqrt(alpha_bar) * eps.numpy() - np.sqrt(1 - alpha_bar) * x0.numpy()
    np.testing.assert_allclose(v.numpy(), expected, rtol=1e-13, atol=1e-15)
    x_t = np.sqrt(alpha_bar) * x0 + np.sqrt(1 - alpha_bar) * eps
    x0_back, eps_back = to_x0_and_eps(v, x_t, alpha_bar, "v_prediction")
    torch.testing.assert_close(x0_back, x0, rtol=0, atol=1e-12)
    torch.testing.assert_close(eps_back, eps, rtol=0, atol=1e-12)


def test_the_training_step_regresses_the_unet_onto_v(monkeypatch, tmp_path):
    """One real training step, watched: whatever clean batch x0 (after augmentation), timesteps t and
    noisy input x_t the UNet gets, the loss's target is the v of that x0 and x_t: inverting it with the
    samplers' formula gives back x0, and noise that is standard normal."""
    import diffusion_viz.training.unet as train_mod
    from diffusion_viz.sampling import to_x0_and_eps
    from diffusion_viz.schedules import get_schedule

    seen = {}
    real_augment, real_build, real_mse = train_mod.augment, train_mod.build_unet, train_mod.F.mse_loss

    def augment(*args, **kwargs):
        seen["x0"] = real_augment(*args, **kwargs).detach().clone()
        return seen["x0"]

    def build_unet(*args, **kwargs):
        unet = real_build(*args, **kwargs)

        def record(module, args, kwargs):
            seen["x_t"], seen["t"] = args[0].detach().clone(), args[1].detach().clone()
        unet.register_forward_pre_hook(record, with_kwargs=True)
        return unet

    def mse_loss(pred, target, *args, **kwargs):
        seen["target"] = target.detach().clone()
        return real_mse(pred, target, *args, **kwargs)

    monkeypatch.setattr(train_mod, "augment", augment)
    monkeypatch.setattr(train_mod, "build_unet", build_unet)
    monkeypatch.setattr(train_mod, "F", types.SimpleNamespace(**{**vars(train_mod.F), "mse_loss": mse_loss}))
    cfg = TrainConfig.load(CONFIG)
    cfg.max_steps, cfg.sample_every = 1, 0
    assert cfg.prediction_type == "v_prediction"
    train(cfg, tmp_path, verbose=False)

    x0, x_t, t, v = (seen[k].double() for k in ("x0", "x_t", "t", "target"))
    assert x0.shape == x_t.shape == v.shape == (cfg.batch_size, 3, 32, 32) and len(set(t.tolist())) > 1
    abar = np.asarray(get_schedule(cfg.schedule).alphas_cumprod, np.float32)  # what the trainer indexes
    noise = []
    for i, ti in enumerate(t.long().tolist()):
        x0_back, eps_back = to_x0_and_eps(v[i], x_t[i], float(abar[ti]), "v_prediction")
        torch.testing.assert_close(x0_back, x0[i], rtol=0, atol=2e-5)
        noise.append(eps_back)
    noise = torch.stack(noise)
    assert abs(float(noise.mean())) < 0.05 and abs(float(noise.std()) - 1) < 0.05  # eps ~ N(0, 1)
    assert float((noise - x0).abs().mean()) > 0.5  # and not the picture
