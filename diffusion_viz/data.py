"""The embedded emoji dataset (rendered from Noto Color Emoji; see assets/emoji/README.md and LICENSE)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InvalidInputError, ModelLoadError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
EMOJI_DIR = ASSETS / "emoji"
SIZES = (32, 64)
NAME_EMBEDDINGS = EMOJI_DIR / "name_embeddings_minilm.npz"


@dataclass(frozen=True)
class EmojiDataset:
    images: np.ndarray  # (N, S, S, 3) uint8
    names: np.ndarray  # (N,) lower-case Unicode names, e.g. "cat face"
    codepoints: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.names)

    @property
    def size(self) -> int:
        return self.images.shape[1]

    def as_model_space(self) -> np.ndarray:
        """(N, 3, S, S) float32 in [-1, 1]: pixel p -> p / 127.5 - 1."""
        return self.images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0

    def char(self, i: int) -> str:
        return chr(int(self.codepoints[i]))

    def label(self, i: int) -> str:
        return f"{self.char(i)} {self.names[i]}"


@functools.lru_cache(maxsize=len(SIZES))
def load_emoji(size: int = 64) -> EmojiDataset:
    if size not in SIZES:
        raise InvalidInputError(f"Emoji size must be one of {SIZES}, got {size!r}.")
    path = EMOJI_DIR / f"emoji_{size}.npz"
    if not path.exists():
        raise ModelLoadError(f"Missing {path}; rebuild it with scripts/build_emoji_dataset.py.")
    with np.load(path, allow_pickle=False) as data:
        return EmojiDataset(images=data["images"], names=data["names"], codepoints=data["codepoints"])


@dataclass(frozen=True)
class Nearest:
    """The training emoji closest to a picture: which one, and how far (RMS per value, pixels in [-1, 1])."""

    index: int
    label: str  # "<emoji> <name>"
    name: str
    rms: float


@functools.lru_cache(maxsize=len(SIZES))
def _flat_model_space(size: int) -> tuple[np.ndarray, np.ndarray]:
    flat = load_emoji(size).as_model_space().reshape(len(load_emoji(size)), -1)
    return flat, (flat.astype(np.float64) ** 2).sum(1)


def nearest_emoji(image) -> Nearest | None:
    """The closest training emoji to a (3, S, S) picture in [-1, 1], for any model that draws emoji-sized
    pictures (S = 32 or 64), by RMS distance. None for anything else (a latent, another size): there is
    no training emoji to compare it with."""
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] != 3 or x.shape[1] != x.shape[2] or x.shape[1] not in SIZES:
        return None
    if not np.isfinite(x).all():
        return None
    flat, sq = _flat_model_space(x.shape[1])
    v = x.reshape(-1)
    d2 = sq - 2.0 * (flat @ v).astype(np.float64) + float((v.astype(np.float64) ** 2).sum())
    i = int(np.argmin(d2))
    data = load_emoji(x.shape[1])
    return Nearest(i, data.label(i), str(data.names[i]), float(np.sqrt(max(d2[i], 0.0) / v.size)))


@functools.lru_cache(maxsize=1)
def name_embeddings() -> np.ndarray:
    """MiniLM embeddings of the emoji names, (N, 384) float32, in dataset order.

    Shipped precomputed (scripts/embed_emoji_names.py) so the app starts fast; computed and cached on
    first use if the file is missing or out of date.
    """
    names = load_emoji(64).names
    if NAME_EMBEDDINGS.exists():
        with np.load(NAME_EMBEDDINGS, allow_pickle=False) as data:
            if data["names"].shape == names.shape and (data["names"] == names).all():
                return data["embeddings"].astype(np.float32)
    from .models.text_encoder import embed_texts

    return embed_texts([str(n) for n in names])


def write_name_embeddings() -> Path:
    from .models.text_encoder import embed_texts

    names = load_emoji(64).names
    emb = embed_texts([str(n) for n in names])
    np.savez_compressed(NAME_EMBEDDINGS, names=names, embeddings=emb.astype(np.float16))
    return NAME_EMBEDDINGS
