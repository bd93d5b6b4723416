"""The exact emoji denoiser: its formula, its stability, and that it memorizes."""

import math

import numpy as np
import pytest
import torch

from diffusion_viz.models.emoji_exact import TOP_K, ExactEmojiDenoiser
from diffusion_viz.data import EmojiDataset, load_emoji
from diffusion_viz.sampling import SampleSettings, sample


def test_dataset_is_large_and_named():
    ds = load_emoji(64)
    assert len(ds) >= 1300 and ds.images.shape[1:] == (64, 64, 3) and ds.images.dtype == np.uint8
    names = set(ds.names.tolist())
    assert {"cat face", "red apple", "rabbit", "rocket"} <= names
    assert len(load_emoji(32)) == len(ds)
    assert (load_emoji(32).codepoints == ds.codepoints).all()


def brute_force_posterior_mean(images, log_prior, x_t, abar):
    """Independent float64 numpy reference: E[x0 | x_t] with explicit distances."""
    d2 = ((x_t[None] - math.sqrt(abar) * images) ** 2).sum(axis=1)
    logits = log_prior - d2 / (2 * (1 - abar))
    w = np.exp(logits - logits.max())
    w /= w.sum()
    return w @ images


@pytest.mark.parametrize("abar", [1e-9, 0.01, 0.3, 0.9, 0.999])
def test_posterior_mean_matches_brute_force(emoji_model_32, abar):
    model = emoji_model_32
    cond = model.encode_prompt("")
    images = model.images.double().numpy()
    rng = np.random.default_rng(0)
    x0 = images[17]
    x_t = math.sqrt(abar) * x0 + math.sqrt(1 - abar) * rng.standard_normal(x0.shape)
    ours = model.predict_x0(torch.tensor(x_t, dtype=torch.float32)[None], abar, cond)[0].numpy()
    ref = brute_force_posterior_mean(images, cond.log_prior.numpy(), x_t, abar)
    np.testing.assert_allclose(ours, ref, atol=2e-4)


def test_stable_at_the_ends(emoji_model_32):
    model, cond = emoji_model_32, emoji_model_32.encode_prompt("cat")
    x = torch.randn(1, *model.sample_shape) * 5
    for abar in (0.0, 1e-12, 1 - 1e-12, 1.0):
        out = model.predict(x, 0, abar, cond)
        assert torch.isfinite(out).all()
    at_zero = model.predict_x0(x, 0.0, cond)  # pure noise: the prior-weighted mean
    expected = (cond.log_prior.exp().float() @ cond.images).reshape(at_zero.shape)
    torch.testing.assert_close(at_zero, expected, atol=1e-5, rtol=0)
    clean = model.images[cond.support[0]].reshape(1, *model.sample_shape)
    torch.testing.assert_close(model.predict_x0(clean, 1.0, cond), clean)  # no noise: returns the image


def test_prior_follows_the_prompt(emoji_model):
    top = emoji_model.top_matches("kitty", k=3)
    assert "cat" in top[0][0]
    weights = [w for _, w in emoji_model.top_matches("rocket", k=TOP_K)]
    assert sum(weights) == pytest.approx(1.0) and weights == sorted(weights, reverse=True)
    uncond = emoji_model.encode_prompt("")
    assert len(uncond.support) == len(emoji_model.dataset)


@pytest.mark.parametrize("prompt, word", [("cat", "cat"), ("red apple", "apple"), ("rabbit", "rabbit"),
                                          ("rocket", "rocket"), ("kitty", "cat")])
@pytest.mark.parametrize("scheduler", ["ddim", "euler", "dpmpp_2m"])
def test_clear_prompts_give_their_emoji(emoji_model, prompt, word, scheduler):
    traj = sample(emoji_model, SampleSettings(prompt=prompt, steps=30, scheduler=scheduler, seed=0))
    index, rms = emoji_model.nearest(traj.final)
    assert rms < 0.01, "the exact denoiser must end on a training image"
    assert word in emoji_model.dataset.names[index]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unconditional_returns_training_images(emoji_model, seed):
    traj = sample(emoji_model, SampleSettings(prompt="", steps=25, scheduler="ddim", seed=seed))
    assert emoji_model.nearest(traj.final)[1] < 0.01


def test_guidance_extrapolates_beyond_the_conditional(emoji_model_32):
    s = SampleSettings(prompt="red apple", steps=10, seed=0, guidance=5.0)
    traj = sample(emoji_model_32, s)
    f = traj.frames[0]  # at high noise the two posteriors differ: "any emoji" vs "red apple"
    assert np.abs(f.x0_cond - f.x0_uncond).mean() > 0.05
    np.testing.assert_allclose(f.x0, f.x0_uncond + 5.0 * (f.x0_cond - f.x0_uncond), atol=1e-3)
    apple = emoji_model_32.images[emoji_model_32.encode_prompt("red apple").support[0]].numpy().reshape(f.x0.shape)
    # The guided guess lies further from the "any emoji" guess than the plain conditional one does.
    assert np.linalg.norm(f.x0 - f.x0_uncond) > 4 * np.linalg.norm(f.x0_cond - f.x0_uncond)
    assert np.linalg.norm(f.x0_cond - apple) < np.linalg.norm(f.x0_uncond - apple)
    # Late in the run both posteriors sit on the same apple, so guidance has nothing left to push.
    assert emoji_model_32.nearest(traj.final)[1] < 0.01


def test_a_two_image_dataset_gives_the_textbook_answer():
    """With two images and a uniform prior the posterior is a logistic function of the projection."""
    images = np.zeros((2, 2, 2, 3), dtype=np.uint8)
    images[1] = 255
    ds = EmojiDataset(images=images, names=np.array(["black", "white"]), codepoints=np.array([1, 2]))
    model = ExactEmojiDenoiser(ds)
    cond = model.encode_prompt("")
    x_t = torch.full((1, 3, 2, 2), 0.1)
    abar = 0.5
    a = math.sqrt(abar)
    # log w_white - log w_black = (||x_t + a||^2 - ||x_t - a||^2) / (2 (1 - abar)) = 2 a sum(x_t) / (1 - abar)
    logit = 2 * a * float(x_t.sum()) / (1 - abar)
    expected = (1 / (1 + math.exp(-logit))) * 2 - 1  # E[x0] = p_white * 1 + (1 - p_white) * (-1)
    assert float(model.predict_x0(x_t, abar, cond)[0, 0, 0, 0]) == pytest.approx(expected, abs=1e-5)
