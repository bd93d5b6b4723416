"""The trainer on a micro config (64 emoji, 8/16 channels): seconds on a CPU."""

import json

import numpy as np
import pytest
import torch

from diffusion_viz.models.emoji_unet import EmojiUNetDenoiser
from diffusion_viz.train import TrainConfig, build_unet, export, train

CONFIG = "configs/emoji_unet_test.json"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
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
