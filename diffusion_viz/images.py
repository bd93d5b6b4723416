"""Loading a user's photo safely: any common format in, an (H, W, 3) uint8 RGB array out.

Uploads come from strangers: a file may be empty, truncated, not an image, or a 20000x20000
"decompression bomb" that would eat all memory. Each case gets a clear ``ImageInputError``.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageInputError

MAX_SIDE = 1024  # larger photos are downscaled: the lesson needs no more, and it keeps the tab fast
MAX_PIXELS = 50_000_000  # refuse to decode anything bigger (~7000 x 7000): protects the server's memory
MAX_BYTES = 30 * 1024 * 1024


def _open(source) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageInputError(f"No such image file: {path.name}.")
        if path.stat().st_size > MAX_BYTES:
            raise ImageInputError(f"The file is larger than {MAX_BYTES // 2**20} MB. Please use a smaller photo.")
        data = path.read_bytes()
    else:
        raise ImageInputError(f"Expected an image, got {type(source).__name__}.")
    if not data:
        raise ImageInputError("The file is empty.")
    if len(data) > MAX_BYTES:
        raise ImageInputError(f"The file is larger than {MAX_BYTES // 2**20} MB. Please use a smaller photo.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_size(image)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageInputError("That image is far too large to open safely. Please use a smaller photo.") from None
    except UnidentifiedImageError:
        raise ImageInputError("That file is not an image Pillow can read (try PNG or JPEG).") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageInputError(f"The image file is damaged or truncated ({exc}).") from None
    return image


def _check_size(image: Image.Image) -> None:
    w, h = image.size
    if w < 1 or h < 1:
        raise ImageInputError("The image has no pixels.")
    if w * h > MAX_PIXELS:
        raise ImageInputError(
            f"The image is {w} x {h} pixels, too large to open safely. Please use a smaller photo."
        )


def _from_array(array: np.ndarray) -> Image.Image:
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.size == 0:
        raise ImageInputError(f"Expected an image array (H, W[, 1|3|4]), got shape {a.shape}.")
    if a.dtype != np.uint8:
        if not np.isfinite(a).all():
            raise ImageInputError("The image contains NaN or infinite values.")
        a = a.astype(np.float64)
        a = a / 257.0 if a.max() > 255 else (a * 255.0 if a.max() <= 1.0 else a)  # 16-bit or 0..1 floats
        a = np.clip(np.round(a), 0, 255).astype(np.uint8)
    if a.shape[2] == 1:
        a = a[..., 0]
    return Image.fromarray(a)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode -> RGB. Transparency is composited on white (how a browser shows it)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(image, dtype=np.float64)
        scale = 257.0 if a.max() > 255 else 1.0
        image = Image.fromarray(np.clip(np.round(a / scale), 0, 255).astype(np.uint8))
    elif image.mode == "F":
        a = np.asarray(image, dtype=np.float64)
        a = a * 255.0 if np.nanmax(a) <= 1.0 else a
        image = Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, RGB


def load_image(source, max_side: int = MAX_SIDE) -> np.ndarray:
    """Open, orient (EXIF), convert to RGB and downscale so the longer side is <= max_side."""
    image = _open(source)
    if isinstance(source, Image.Image):
        _check_size(image)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not lose the photo
        pass
    image = _to_rgb(image)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.LANCZOS)
    return np.asarray(image, dtype=np.uint8).copy()


def square_crop(rgb: np.ndarray, size: int | None = None) -> np.ndarray:
    """Centre crop to a square (and optionally resize): keeps side-by-side panels the same shape."""
    h, w = rgb.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    out = rgb[top : top + s, left : left + s]
    if size is not None and size != s:
        out = np.asarray(Image.fromarray(out).resize((size, size), Image.LANCZOS))
    return out
