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
}

DEFAULT_MODEL = "emoji-exact"


def model_names() -> list[str]:
    return list(MODELS)


def get_model(name: str = DEFAULT_MODEL):
    if name not in MODELS:
        raise UnknownNameError("model", name, MODELS)
    return MODELS[name].load()
