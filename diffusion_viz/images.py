"""Loading a user's photo safely: any common format in, an (H, W, 3) uint8 RGB array out.

Uploads come from strangers: a file may be empty, truncated, not an image, or a 20000x20000
"decompression bomb" that would eat all memory. Each case gets a clear ``ImageInputError``.

Memory is bounded before any pixel is decoded: the header's size and the image's own storage (1 byte a
pixel for grey or palette, 2 for 16-bit grey, 4 otherwise) must fit ``limits.LIMITS.image_mb``; JPEGs are
decoded at 1/2, 1/4 or 1/8 size straight away (``draft``). A large image is shrunk in its own mode and
converted to 8-bit RGB last, so a 16-bit photo never becomes a full-size float array. At most
``LIMITS.uploads_in_flight`` photos decode at once.
"""

from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageInputError
from .limits import LIMITS

MAX_SIDE = 1024  # larger photos are downscaled: the lesson needs no more, and it keeps the tab fast
MAX_PIXELS = LIMITS.image_pixels  # refuse to decode anything bigger: protects the server's memory
MAX_BYTES = 30 * 1024 * 1024  # a file given by path (the page's own limit per upload is LIMITS.upload_mb)
_DECODING = threading.BoundedSemaphore(LIMITS.uploads_in_flight)


def _bytes_per_pixel(mode: str) -> int:
    """How Pillow stores a pixel of this mode in memory."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4  # RGB is stored as RGBX; RGBA, CMYK, I, F, LA (as 4 bands) ...


def _check_memory(image: Image.Image) -> None:
    w, h = image.size
    need = w * h * _bytes_per_pixel(image.mode)
    if need > LIMITS.image_mb * 2**20:
        raise ImageInputError(
            f"The image is {w} x {h} pixels; opening it would need about {need / 2**20:.0f} MB of memory, more "
            f"than this server allows for one photo ({LIMITS.image_mb} MB). Please use a smaller photo.")


def _open(source, max_side: int = MAX_SIDE) -> Image.Image:
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
            if image.format == "JPEG":  # decode at the smallest DCT scale that still covers max_side
                image.draft("RGB", (max_side, max_side))
            _check_memory(image)
            image.load()
    except ImageInputError:
        raise
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
        a = a.astype(np.float32)
        a = a / 257.0 if a.max() > 255 else (a * 255.0 if a.max() <= 1.0 else a)  # 16-bit or 0..1 floats
        a = np.clip(np.round(a), 0, 255).astype(np.uint8)
    if a.shape[2] == 1:
        a = a[..., 0]
    return Image.fromarray(a)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode -> RGB. Transparency is composited on white (how a browser shows it)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(image, dtype=np.float32)
        scale = 257.0 if a.max() > 255 else 1.0
        image = Image.fromarray(np.clip(np.round(a / scale), 0, 255).astype(np.uint8))
    elif image.mode == "F":
        a = np.asarray(image, dtype=np.float32)
        a = a * 255.0 if np.nanmax(a) <= 1.0 else a
        image = Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, RGB


_EXIF_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                   4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                   7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def _orientation(image: Image.Image):
    """The transpose that shows the photo as the camera held it (EXIF orientation), or None."""
    try:
        return _EXIF_TRANSPOSE.get(image.getexif().get(0x0112))
    except Exception:  # a broken EXIF block should not lose the photo
        return None


# Modes whose ``reduce`` (box average) works on the image in place; alpha modes would first make a
# premultiplied full-size copy, palette, 1-bit and 16-bit grey have no reduce.
_REDUCE_IN_PLACE = {"L", "RGB", "CMYK", "YCbCr", "I", "F", "LAB", "HSV"}


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    """Downscale so the longer side is <= max_side, in the image's own mode: no float or RGBA copy of a
    big image is ever made.

    First to about twice the target without a full-size copy (``reduce``, a box average by an integer
    factor, where the mode allows it; nearest-neighbour otherwise), then LANCZOS on the small image
    (palette and 1-bit images are finished after their conversion to RGB)."""
    w, h = image.size
    if max(w, h) <= max_side:
        return image
    if max(w, h) > 2 * max_side:
        factor = max(w, h) // (2 * max_side)
        if image.mode in _REDUCE_IN_PLACE and factor >= 2:
            image = image.reduce(factor)
        else:
            s = 2 * max_side / max(w, h)
            image = image.resize((max(1, round(w * s)), max(1, round(h * s))), Image.NEAREST)
    if image.mode in ("1", "P"):
        return image
    s = max_side / max(image.size)
    if s < 1:
        image = image.resize((max(1, round(image.size[0] * s)), max(1, round(image.size[1] * s))), Image.LANCZOS)
    return image


def load_image(source, max_side: int = MAX_SIDE) -> np.ndarray:
    """Open, orient (EXIF), downscale so the longer side is <= max_side, and convert to RGB (in that order:
    the full-size image is never converted)."""
    with _DECODING:
        image = _open(source, max_side)
        if isinstance(source, Image.Image):
            _check_size(image)
        turn = _orientation(image)  # read before shrinking (a resized copy has no EXIF), applied after
        image = _to_rgb(_shrink(image, max_side))
        if turn is not None:
            image = image.transpose(turn)
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
