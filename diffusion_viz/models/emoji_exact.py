"""The exact denoiser over the emoji set: the best possible denoiser for that data, in closed form.

For a finite dataset {x_i} with prior weights p_i, the ideal prediction of the clean image is the
posterior mean

    E[x0 | x_t] = sum_i w_i x_i,   w_i = softmax_i( log p_i - ||x_t - sqrt(abar) x_i||^2 / (2 (1 - abar)) )

No training, no approximation: the *denoiser* is exact at every alpha_bar. A sampler built on it still
takes finitely many steps from a start it assumes (pure noise), so where a run ends depends on the
sampler, the step count and the schedule. It can only give back pictures it has seen, or blends of them
when a sampler takes too few steps: it *memorizes* (compare the trained UNet).

The prompt sets the prior p_i: the MiniLM similarity of the prompt to each emoji's Unicode name,
sharpened by a temperature, over the TOP_K best-matching names (zero elsewhere). An empty prompt gives
the uniform prior over all emoji (unconditional generation).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data import EmojiDataset, load_emoji, name_embeddings, nearest_emoji
from ..validation import check_prompt

# A prompt's prior covers its TOP_K best-matching emoji names. This is the model's definition (the
# denoiser stays exact for it), and it keeps conditional sampling ~40x cheaper than the whole set.
TOP_K = 32
DEFAULT_TEMPERATURE = 0.05


@dataclass(frozen=True)
class EmojiConditioning:
    """The prior over emoji that a prompt induces. ``support`` lists the emoji with non-negligible prior."""

    prompt: str
    log_prior: torch.Tensor  # (K,) float64, normalised over the support
    support: torch.Tensor  # (K,) long indices into the dataset
    images: torch.Tensor  # (K, D) float32, the support's images (gathered once, not every step)
    sq_norms: torch.Tensor  # (K,) float64, their ||x_i||^2

    @property
    def is_unconditional(self) -> bool:
        return not self.prompt


class ExactEmojiDenoiser:
    """Closed-form posterior-mean denoiser. Returns v-predictions (stable from abar = 0 to abar = 1)."""

    prediction_type = "v_prediction"

    def __init__(self, dataset: EmojiDataset, temperature: float = DEFAULT_TEMPERATURE):
        self.dataset = dataset
        self.temperature = temperature
        self.sample_shape = (3, dataset.size, dataset.size)
        self.images = torch.from_numpy(dataset.as_model_space().reshape(len(dataset), -1))  # (N, D)
        self.sq_norms = (self.images.double() ** 2).sum(1)  # ||x_i||^2, (N,)
        self._name_embeddings = None

    # ---- the prompt -> prior ----------------------------------------------------------------------
    def prompt_similarity(self, prompt: str) -> np.ndarray:
        """Cosine similarity of the prompt to every emoji name, (N,)."""
        from .text_encoder import embed_texts

        if self._name_embeddings is None:
            self._name_embeddings = name_embeddings()
        return self._name_embeddings @ embed_texts([prompt])[0]

    def encode_prompt(self, prompt: str) -> EmojiConditioning:
        """The prompt's prior (cached per prompt: the text encoder is the slow part) with its emoji gathered
        for the matrix products (kept for the last few prompts only: 1.5 MB each at 64 px)."""
        prompt = check_prompt(prompt)
        log_prior, support = self._prior(prompt)
        if not prompt:
            return EmojiConditioning("", log_prior, support, self.images, self.sq_norms)
        return self._gathered(prompt, log_prior, support)

    @functools.lru_cache(maxsize=512)
    def _prior(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self.dataset)
        if not prompt:
            return torch.full((n,), -math.log(n), dtype=torch.float64), torch.arange(n)
        logits = torch.from_numpy(self.prompt_similarity(prompt).astype(np.float64)) / self.temperature
        support = torch.topk(logits, min(TOP_K, n)).indices
        return torch.log_softmax(logits[support], dim=0), support

    @functools.lru_cache(maxsize=8)
    def _gathered(self, prompt: str, log_prior: torch.Tensor, support: torch.Tensor) -> EmojiConditioning:
        return EmojiConditioning(prompt, log_prior, support, self.images[support].contiguous(),
                                 self.sq_norms[support])

    def top_matches(self, prompt: str, k: int = 5) -> list[tuple[str, float]]:
        """The emoji a prompt points to, with their prior weights: makes the text conditioning visible."""
        cond = self.encode_prompt(prompt)
        weights = cond.log_prior.exp()
        order = torch.argsort(weights, descending=True)[:k]
        return [(self.dataset.label(int(cond.support[j])), float(weights[j])) for j in order]

    # ---- the denoiser ------------------------------------------------------------------------------
    # alpha_bar may be one number or one per row of x_t: the side-by-side comparison sends several
    # columns, each at its own noise level, in one call (see diffusion_viz.compare).
    supports_batched_alpha_bar = True

    def posterior_weights(self, x_t: torch.Tensor, alpha_bar, cond: EmojiConditioning) -> torch.Tensor:
        """w_i for each image in the support, (B, K) float64, by log-sum-exp with the max subtracted."""
        flat = x_t.reshape(x_t.shape[0], -1).float()
        ab = torch.as_tensor(alpha_bar, dtype=torch.float64).reshape(-1, 1)
        # ||x_t - a x_i||^2 = ||x_t||^2 - 2 a <x_t, x_i> + a^2 ||x_i||^2; the first term is the same for
        # every i and cancels in the softmax.
        cross = (flat @ cond.images.T).double()
        sq_dist = -2.0 * ab.sqrt() * cross + ab * cond.sq_norms
        noise_var = (1.0 - ab).clamp_min(1e-20)  # at abar = 1 the softmax becomes nearest-neighbour
        logits = cond.log_prior - sq_dist / (2.0 * noise_var)
        return torch.softmax(logits, dim=1)

    def predict_x0(self, x_t: torch.Tensor, alpha_bar, cond: EmojiConditioning) -> torch.Tensor:
        weights = self.posterior_weights(x_t, alpha_bar, cond).float()
        # Once the posterior has settled, almost every weight is ~0. Summing only the images with
        # weight > 1e-12 of the largest changes x0 by < 1e-8 and saves reading the whole dataset.
        keep = torch.nonzero((weights > weights.amax(1, keepdim=True) * 1e-12).any(0)).flatten()
        if len(keep) < 0.5 * weights.shape[1]:
            return (weights[:, keep] @ cond.images[keep]).reshape(x_t.shape)
        return (weights @ cond.images).reshape(x_t.shape)

    def predict(self, x_t: torch.Tensor, t, alpha_bar, cond: EmojiConditioning) -> torch.Tensor:
        """v = (sqrt(abar) x_t - x0) / sqrt(1 - abar); the loop turns it back into x0 and eps."""
        x0 = self.predict_x0(x_t, alpha_bar, cond)
        ab = torch.as_tensor(alpha_bar, dtype=torch.float64).reshape(-1, *[1] * (x_t.dim() - 1))
        a, s = ab.sqrt().float(), (1.0 - ab).clamp_min(1e-20).sqrt().float()
        return (a * x_t - x0) / s

    def nearest(self, image: np.ndarray) -> tuple[int, float]:
        """Index of the closest training emoji to a (3, S, S) image in [-1, 1], and its RMS distance
        (``data.nearest_emoji``, the same for every model)."""
        n = nearest_emoji(image)
        return n.index, n.rms


@functools.lru_cache(maxsize=2)
def exact_emoji_model(size: int = 64) -> ExactEmojiDenoiser:
    """One shared instance per resolution and process."""
    return ExactEmojiDenoiser(load_emoji(size))
