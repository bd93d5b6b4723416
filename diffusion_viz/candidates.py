"""Candidates: which training emoji the exact model's guess is an average of, at every step.

The exact denoiser's x0 guess is a weighted average of training emoji, with the posterior weights

    w_i = softmax_i( log p_i - ||x_t - sqrt(abar) x_i||^2 / (2 (1 - abar)) )

Early in a run hundreds of emoji share the weight (the guess is a blob), then a few (a shape), then one
(the picture): "coarse first, details last", made exact. ``effective`` = exp(entropy of w) counts them:
the whole prior's support (1,361 emoji without a prompt, 32 with one) down to 1.

The weights are computed after the run for all frames in one batched product (the model's own step does
the same product one frame at a time), so showing them costs little. With guidance above 1 the frames
come from the guided run and the weights are those of the prompt's posterior at those frames.
Only the exact emoji model has such a list: a trained network's guess is not a weighted average of
anything it can name.
"""

from __future__ import annotations

import numpy as np
import torch

from .sampling import Frame

TOP = 8


def has_candidates(model) -> bool:
    return hasattr(model, "posterior_weights") and hasattr(model, "dataset")


def frame_candidates(model, frames: list[Frame], prompt: str, top: int = TOP) -> list[dict]:
    """Per frame: {"top": [(dataset index, weight), ...] (largest first), "effective": exp(entropy)}."""
    if not frames:
        return []
    cond = model.encode_prompt(prompt)
    x = torch.from_numpy(np.stack([f.x_t for f in frames]))
    ab = torch.tensor([f.alpha_bar for f in frames], dtype=torch.float64)
    w = model.posterior_weights(x, ab, cond)  # (F, K) float64, rows sum to 1
    entropy = -(w * torch.log(w.clamp_min(1e-300))).sum(1)
    k = min(top, w.shape[1])
    values, order = torch.topk(w, k, dim=1)
    support = cond.support[order]  # dataset indices
    return [{"top": [(int(i), float(v)) for i, v in zip(support[r], values[r])],
             "effective": float(torch.exp(entropy[r]))} for r in range(len(frames))]
