"""emoji-unet: a tiny text-conditioned UNet trained on the emoji set (training: diffusion_viz/training/unet.py).

The contrast with the exact denoiser is the lesson (diffusion_viz/memorize.py): the exact model can only
return training emoji (it memorizes); this network, trained briefly with flips and shifts, makes new
pictures (it generalizes). Whether a network of its size *could* memorize the set is an empirical
question: 1.6 M fp16 weights are 26 Mbit, the 32-px emoji compress to ~12 Mbit.

Weights: assets/emoji_unet/model.safetensors (fp16 on disk, run in float32 on the CPU).
Prompts become MiniLM token vectors (the same encoder and padding as in training).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import ASSETS
from ..errors import ModelLoadError
from ..validation import check_prompt

ASSET_DIR = ASSETS / "emoji_unet"


def build_unet(unet_config: dict):
    """The network: diffusers' UNet2DConditionModel, cross-attending to MiniLM token vectors."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**unet_config)


@dataclass(frozen=True)
class UNetConditioning:
    prompt: str
    hidden: torch.Tensor  # (1, L, 384) MiniLM token vectors
    mask: torch.Tensor  # (1, L) bool, True for real tokens
    pooled: torch.Tensor | None = None  # (1, 384) sentence vector, for models trained with it


class EmojiUNetDenoiser:
    """The Denoiser protocol over a diffusers UNet2DConditionModel."""

    def __init__(self, unet, meta: dict):
        self.unet = unet.eval().requires_grad_(False)
        self.meta = meta
        self.prediction_type = meta["prediction_type"]
        self.max_tokens = int(meta["max_tokens"])
        size = int(meta["unet"]["sample_size"])
        self.sample_shape = (3, size, size)

    @classmethod
    def from_dir(cls, path: Path = ASSET_DIR) -> "EmojiUNetDenoiser":
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / "model.safetensors").exists():
            raise ModelLoadError(f"Missing {path / 'model.safetensors'}; train and export with `diffusion-viz train`.")
        meta = json.loads((path / "config.json").read_text())
        unet = build_unet(meta["unet"])
        weights = {k: v.float() for k, v in load_file(path / "model.safetensors").items()}
        unet.load_state_dict(weights)
        return cls(unet, meta)

    @property
    def steps_trained(self) -> int:
        return int(self.meta.get("step", 0))

    @functools.lru_cache(maxsize=256)
    def encode_prompt(self, prompt: str) -> UNetConditioning:
        """Token vectors of the prompt, padded as in training. The empty prompt is the unconditional one."""
        from .text_encoder import sentence_vectors, token_embeddings

        prompt = check_prompt(prompt)
        hidden, mask = token_embeddings([prompt], self.max_tokens)
        pooled = sentence_vectors(hidden, mask) if self.unet.config.class_embed_type == "projection" else None
        return UNetConditioning(prompt, hidden, mask, pooled)

    @torch.no_grad()
    def predict(self, x_t: torch.Tensor, t: float, alpha_bar: float, cond: UNetConditioning) -> torch.Tensor:
        b = x_t.shape[0]
        pooled = None if cond.pooled is None else cond.pooled.expand(b, -1)
        return self.unet(x_t.float(), torch.tensor(float(t)), encoder_hidden_states=cond.hidden.expand(b, -1, -1),
                         encoder_attention_mask=cond.mask.expand(b, -1), class_labels=pooled).sample

    @torch.no_grad()
    def predict_pair(self, x_t, t, alpha_bar, uncond: UNetConditioning, cond: UNetConditioning):
        """Unconditional and conditional predictions as one batch of two: half the calls with guidance."""
        out = self.unet(torch.cat([x_t, x_t]).float(), torch.tensor(float(t)),
                        encoder_hidden_states=torch.cat([uncond.hidden, cond.hidden]),
                        encoder_attention_mask=torch.cat([uncond.mask, cond.mask]),
                        class_labels=None if cond.pooled is None else torch.cat([uncond.pooled, cond.pooled])).sample
        return out[:1], out[1:]


@functools.lru_cache(maxsize=1)
def emoji_unet_model() -> EmojiUNetDenoiser:
    """One shared instance per process."""
    return EmojiUNetDenoiser.from_dir(ASSET_DIR)
