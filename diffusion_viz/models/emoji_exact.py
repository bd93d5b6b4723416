"""The exact denoiser over the emoji set: the best possible denoiser for that data, in closed form.

For a finite dataset {x_i} with prior weights p_i, the ideal prediction of the clean image is the
posterior mean

    E[x0 | x_t] = sum_i w_i x_i,   w_i = softmax_i( log p_i - ||x_t - sqrt(abar) x_i||^2 / (2 (1 - abar)) )

No training, no approximation: it is correct for every alpha_bar, so every schedule and sampler runs
exactly. It can only ever give back pictures it has seen: it *memorizes* (compare the trained UNet).

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

from ..data import EmojiDataset, load_emoji, name_embeddings
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

    @functools.lru_cache(maxsize=256)
    def encode_prompt(self, prompt: str) -> EmojiConditioning:
        prompt = check_prompt(prompt)
        n = len(self.dataset)
        if not prompt:
            log_prior = torch.full((n,), -math.log(n), dtype=torch.float64)
            return EmojiConditioning("", log_prior, torch.arange(n), self.images, self.sq_norms)
        logits = torch.from_numpy(self.prompt_similarity(prompt).astype(np.float64)) / self.temperature
        support = torch.topk(logits, min(TOP_K, n)).indices
        log_prior = torch.log_softmax(logits[support], dim=0)
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
        """Index of the closest training emoji to a (3, S, S) image in [-1, 1], and its RMS distance."""
        flat = torch.from_numpy(np.asarray(image, dtype=np.float32).reshape(1, -1))
        d2 = (self.sq_norms - 2.0 * (flat @ self.images.T).double()[0] + (flat.double() ** 2).sum())
        i = int(torch.argmin(d2))
        return i, math.sqrt(max(float(d2[i]), 0.0) / flat.shape[1])


@functools.lru_cache(maxsize=2)
def exact_emoji_model(size: int = 64) -> ExactEmojiDenoiser:
    """One shared instance per resolution and process."""
    return ExactEmojiDenoiser(load_emoji(size))
