"""The shipped emoji-unet weights (assets/emoji_unet): they must exist, load and draw something."""

import numpy as np
import pytest
import torch

from diffusion_viz.models.emoji_unet import ASSET_DIR, emoji_unet_model
from diffusion_viz.models.registry import MODELS, get_model
from diffusion_viz.sampling import SampleSettings, sample


def test_shipped_weights_exist():
    assert (ASSET_DIR / "model.safetensors").exists(), "train and export: diffusion-viz train --export"
    assert (ASSET_DIR / "MODEL_CARD.md").exists()
    assert (ASSET_DIR / "model.safetensors").stat().st_size < 10 * 2**20  # fp16, a few MB


def test_registered():
    assert MODELS["emoji-unet"].default_schedule == "cosine"
    assert get_model("emoji-unet") is emoji_unet_model()


@pytest.fixture
def one_thread():
    """One torch thread for this test only; the session's setting is put back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def test_fixed_seed_sample_is_an_image(one_thread):
    """Finite, mostly in range, not blank white, not flat grey: a picture was drawn."""
    model = emoji_unet_model()
    assert model.sample_shape == (3, 32, 32)
    settings = SampleSettings(prompt="cat face", steps=20, scheduler="ddim", schedule="cosine", guidance=3.0, seed=0)
    a = sample(model, settings).final
    assert a.shape == (3, 32, 32) and np.isfinite(a).all()
    assert np.mean(np.abs(a) <= 1.2) > 0.95
    assert a.std() > 0.2 and a.mean() < 0.9 and np.mean(a < 0.5) > 0.05
    np.testing.assert_array_equal(a, sample(model, settings).final)  # same seed, same picture


def test_guidance_batch_matches_two_calls():
    model = emoji_unet_model()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    cond, uncond = model.encode_prompt("rocket"), model.encode_prompt("")
    u, c = model.predict_pair(x, 700.0, 0.2, uncond, cond)
    torch.testing.assert_close(c, model.predict(x, 700.0, 0.2, cond), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(u, model.predict(x, 700.0, 0.2, uncond), atol=1e-4, rtol=1e-4)
