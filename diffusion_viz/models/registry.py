"""Model names -> denoisers. Every model is loaded once per process and shared across requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import UnknownNameError


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    default_schedule: str  # the schedule the model was built (or trained) for
    load: Callable[[], object]


def _exact(size: int):
    def load():
        from .emoji_exact import exact_emoji_model

        return exact_emoji_model(size)

    return load


def _emoji_unet():
    from .emoji_unet import emoji_unet_model

    return emoji_unet_model()


MODELS: dict[str, ModelInfo] = {
    "emoji-exact": ModelInfo(
        "emoji-exact",
        "Exact denoiser over 1,361 emoji at 64x64 (memorizes: returns training emoji). Offline, instant.",
        "cosine",
        _exact(64),
    ),
    "emoji-exact-32": ModelInfo(
        "emoji-exact-32",
        "The same exact denoiser at 32x32: bigger pixels, 4x faster.",
        "cosine",
        _exact(32),
    ),
    "emoji-unet": ModelInfo(
        "emoji-unet",
        "A tiny neural UNet (1.6M weights, under-trained) trained on the same emoji at 32x32: it generalizes (smooths "
        "and mixes) where the exact model memorizes. Runs live on a CPU.",
        "cosine",
        _emoji_unet,
    ),
}


def _stable_diffusion(name_or_path: str):
    def load():
        from .stable_diffusion import load_denoiser

        return load_denoiser(name_or_path)

    return load


def _register_stable_diffusion() -> None:
    """Stable Diffusion presets (models/presets.toml) and DIFFUSION_VIZ_MODEL. Nothing loads until used;
    a checkpoint that cannot load raises ModelLoadError and the other models keep working."""
    from .sd_loading import env_model, load_presets

    for preset in load_presets().values():
        MODELS[preset.name] = ModelInfo(preset.name, preset.description, "scaled_linear",
                                        _stable_diffusion(preset.name))
    custom = env_model()
    if custom and custom not in MODELS:
        MODELS[custom] = ModelInfo(custom, f"Stable Diffusion checkpoint from DIFFUSION_VIZ_MODEL: {custom}",
                                   "scaled_linear", _stable_diffusion(custom))


_register_stable_diffusion()

DEFAULT_MODEL = "emoji-exact"


def get_model(name: str = DEFAULT_MODEL):
    if name not in MODELS:
        from .sd_loading import looks_like_checkpoint

        if looks_like_checkpoint(name):  # a local SD folder / .safetensors file, or an allowed hub id
            return _stable_diffusion(name)()
        raise UnknownNameError("model", name, MODELS)
    return MODELS[name].load()
