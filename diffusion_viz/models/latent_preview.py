"""Looking at latents without the VAE: a per-family linear map to RGB, and the raw channels as tiles.

Stable Diffusion denoises a small latent (4 x 64 x 64 for a 512 x 512 picture), not pixels. The VAE
decoder turns it into an image, but costs ~10-100x a cheap preview. Each latent channel happens to
correlate with colour, so a fitted 4x3 (or 16x3) matrix gives a blurry, roughly right colour preview
at latent resolution for almost nothing. The numbers apply to the latent as the UNet sees it (already
multiplied by the VAE's ``scaling_factor``) and give RGB roughly in [-1, 1].
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError


@dataclass(frozen=True)
class LatentRGB:
    factors: tuple[tuple[float, ...], ...]  # rows = latent channels, columns = R, G, B
    bias: tuple[float, float, float]
    source: str


# Sources:
# - SD 1.x/2.x (same VAE): keturn's fit for SD 1.4 (Hugging Face forum, "Decoding latents to RGB without
#   upscaling", 2022). Numbers from the project's science reference (diffusion-science.md); they equal
#   the SD15 factors of early ComfyUI comfy/latent_formats.py (current ComfyUI uses a refit).
# - SDXL, SD3, Flux: ComfyUI comfy/latent_formats.py (classes SDXL, SD3, Flux), read at Comfy-Org/ComfyUI
#   commit 75399d78ddcc01f46f9b94521b29f1fe8a90ed53.
LATENT_RGB: dict[str, LatentRGB] = {
    "sd1": LatentRGB(
        ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473)),
        (0.0, 0.0, 0.0),
        "keturn 2022 (SD 1.4 VAE; SD 2.x uses the same VAE)",
    ),
    "sdxl": LatentRGB(
        ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362),
         (-0.3165, -0.2492, -0.2188)),
        (0.1084, -0.0175, -0.0011),
        "ComfyUI comfy/latent_formats.py, class SDXL",
    ),
    "sd3": LatentRGB(
        ((-0.0922, -0.0175, 0.0749), (0.0311, 0.0633, 0.0954), (0.1994, 0.0927, 0.0458),
         (0.0856, 0.0339, 0.0902), (0.0587, 0.0272, -0.0496), (-0.0006, 0.1104, 0.0309),
         (0.0978, 0.0306, 0.0427), (-0.0042, 0.1038, 0.1358), (-0.0194, 0.0020, 0.0669),
         (-0.0488, 0.0130, -0.0268), (0.0922, 0.0988, 0.0951), (-0.0278, 0.0524, -0.0542),
         (0.0332, 0.0456, 0.0895), (-0.0069, -0.0030, -0.0810), (-0.0596, -0.0465, -0.0293),
         (-0.1448, -0.1463, -0.1189)),
        (0.2394, 0.2135, 0.1925),
        "ComfyUI comfy/latent_formats.py, class SD3",
    ),
    "flux": LatentRGB(
        ((-0.0346, 0.0244, 0.0681), (0.0034, 0.0210, 0.0687), (0.0275, -0.0668, -0.0433),
         (-0.0174, 0.0160, 0.0617), (0.0859, 0.0721, 0.0329), (0.0004, 0.0383, 0.0115),
         (0.0405, 0.0861, 0.0915), (-0.0236, -0.0185, -0.0259), (-0.0245, 0.0250, 0.1180),
         (0.1008, 0.0755, -0.0421), (-0.0515, 0.0201, 0.0011), (0.0428, -0.0012, -0.0036),
         (0.0817, 0.0765, 0.0749), (-0.1264, -0.0522, -0.1103), (-0.0280, -0.0881, -0.0499),
         (-0.1262, -0.0982, -0.0778)),
        (-0.0329, -0.0718, -0.0851),
        "ComfyUI comfy/latent_formats.py, class Flux",
    ),
}


def register_family(name: str, spec: LatentRGB) -> None:
    """Add (or replace) a family's preview factors, e.g. ones fitted to a shipped VAE (emoji-ldm)."""
    LATENT_RGB[name] = spec
    _matrix.cache_clear()


def _as_chw(latent) -> np.ndarray:
    if hasattr(latent, "detach"):  # a torch tensor
        latent = latent.detach().to("cpu").float().numpy()
    latent = np.asarray(latent, dtype=np.float32)
    if latent.ndim == 4 and latent.shape[0] == 1:
        latent = latent[0]
    if latent.ndim != 3:
        raise InvalidInputError(f"Expected a (C, H, W) latent, got shape {latent.shape}.")
    return latent


@functools.lru_cache(maxsize=None)
def _matrix(family: str) -> tuple[np.ndarray, np.ndarray]:
    spec = LATENT_RGB.get(family)
    if spec is None:
        raise InvalidInputError(f"No latent preview for family {family!r}; known: {', '.join(LATENT_RGB)}.")
    return np.asarray(spec.factors, dtype=np.float32).T.copy(), np.asarray(spec.bias, dtype=np.float32)[:, None]


def latent_to_rgb(latent, family: str = "sd1") -> np.ndarray:
    """(C, H, W) latent -> (H, W, 3) uint8 at latent resolution: one (3 x C) @ (C x HW) product."""
    latent = _as_chw(latent)
    matrix, bias = _matrix(family)
    c, h, w = latent.shape
    if c != matrix.shape[1]:
        raise InvalidInputError(f"A {family} latent has {matrix.shape[1]} channels, this one has {c}.")
    rgb = matrix @ latent.reshape(c, h * w) + bias  # (3, H*W), roughly in [-1, 1]
    rgb = np.clip((rgb + 1.0) * 127.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb.reshape(3, h, w).transpose(1, 2, 0))


def preview_offset(family: str = "sd1") -> list[float]:
    """Where a zero latent lands in the 0..255 preview, per channel: 127.5 (bias + 1). The preview is
    linear, so x_t's preview follows from x0's and the noise's (ui/atlas.py uses this)."""
    _, bias = _matrix(family)
    return [float(127.5 * (b + 1.0)) for b in bias[:, 0]]


def latent_channels_image(latent, value_range: float = 3.0, gap: int = 2) -> np.ndarray:
    """The latent channels side by side as grey tiles (4 in a row; 16 as a 4x4 grid), (H', W', 3) uint8.

    One fixed scale for every channel and step (-value_range black .. +value_range white), so tiles
    can be compared: SD latents and the noise they start from both have roughly unit variance.
    """
    latent = _as_chw(latent)
    c, h, w = latent.shape
    cols = min(c, 4)
    rows = -(-c // cols)
    grey = np.clip((latent / value_range + 1.0) * 127.5, 0, 255).astype(np.uint8)
    sheet = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap), 255, dtype=np.uint8)
    for i in range(c):
        r, col = divmod(i, cols)
        sheet[r * (h + gap): r * (h + gap) + h, col * (w + gap): col * (w + gap) + w] = grey[i]
    return np.repeat(sheet[:, :, None], 3, axis=2)
