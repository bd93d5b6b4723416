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
        "A tiny neural UNet (1.6M weights) trained for about 3 CPU-hours on the same emoji at 32x32: it generalizes (smooths "
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


def _requested(environ=None) -> list[str]:
    import os

    raw = (os.environ if environ is None else environ).get("DIFFUSION_VIZ_MODELS", "")
    return [n.strip() for n in raw.split(",") if n.strip()]


def _emoji_ldm():
    from .emoji_ldm import load_emoji_ldm

    return load_emoji_ldm(str(_emoji_ldm_dir()))


def _emoji_ldm_dir():
    from .emoji_ldm import model_dir

    return model_dir()


EMOJI_LDM_INFO = ModelInfo(
    "emoji-ldm",
    "Stable Diffusion's architecture in miniature: a VAE (64x64 pictures <-> 4x16x16 latents), a latent UNet "
    "reading MiniLM's token vectors through cross-attention, SD's scaled_linear schedule. Trained here on "
    "generated scenes of one or two emoji (106 words, 4 backgrounds): figures in assets/emoji_ldm/README.md.",
    "scaled_linear",
    _emoji_ldm,
)


def _register_emoji_ldm(environ=None) -> None:
    """emoji-ldm is offered when the operator lists it in DIFFUSION_VIZ_MODELS ("emoji-ldm" or "all") and
    its weights are there, as the Stable Diffusion presets are. It meets its issue's goals (95 % of prompts
    drawn right, 99 % of pictures not a training scene, 1.1-1.4 s per guided run on a 2-core CPU:
    assets/emoji_ldm/README.md has the figures)."""
    from .emoji_ldm import shipped

    names = _requested(environ)
    if ("emoji-ldm" in names or "all" in names) and shipped():
        MODELS["emoji-ldm"] = EMOJI_LDM_INFO
    else:
        MODELS.pop("emoji-ldm", None)


def offered_presets(environ=None) -> list[str]:
    """The Stable Diffusion presets the operator offers: DIFFUSION_VIZ_MODELS, a comma-separated list of
    preset names ("sd15,sd-turbo") or "all". None by default: which models a page offers (and so what a
    student's click may download) is the operator's choice, not the student's."""

    from .sd_loading import load_presets

    names = [n for n in _requested(environ) if n != "emoji-ldm"]  # offline, not a preset: see below
    presets = load_presets()
    if "all" in names:
        return list(presets)
    unknown = [n for n in names if n not in presets]
    if unknown:
        raise UnknownNameError("Stable Diffusion preset in DIFFUSION_VIZ_MODELS", unknown[0], presets)
    return names


def _register_stable_diffusion() -> None:
    """The offered Stable Diffusion presets (models/presets.toml, DIFFUSION_VIZ_MODELS) and the checkpoint of
    DIFFUSION_VIZ_MODEL. Nothing loads until used; a checkpoint that cannot load raises ModelLoadError and
    the other models keep working. Downloads need the operator's permission (sd_loading)."""
    from .sd_loading import env_model, load_presets

    presets = load_presets()
    for name in offered_presets():
        preset = presets[name]
        MODELS[preset.name] = ModelInfo(preset.name, preset.description, "scaled_linear",
                                        _stable_diffusion(preset.name))
    custom = env_model()
    if custom and custom not in MODELS:
        MODELS[custom] = ModelInfo(custom, f"Stable Diffusion checkpoint from DIFFUSION_VIZ_MODEL: {custom}",
                                   "scaled_linear", _stable_diffusion(custom))


_register_stable_diffusion()
_register_emoji_ldm()

DEFAULT_MODEL = "emoji-exact"


def get_model(name: str = DEFAULT_MODEL):
    if name not in MODELS:
        from .emoji_ldm import shipped
        from .sd_loading import looks_like_checkpoint

        if name == "emoji-ldm" and shipped():  # asked for by name (the command line): not offered, but there
            return EMOJI_LDM_INFO.load()

        if looks_like_checkpoint(name):  # a local SD folder / .safetensors file, or an allowed hub id
            return _stable_diffusion(name)()
        raise UnknownNameError("model", name, MODELS)
    return MODELS[name].load()
