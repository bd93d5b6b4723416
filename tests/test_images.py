"""Uploads from strangers: odd formats are handled, broken or hostile files get a clear typed error."""

import io

import numpy as np
import pytest
from PIL import Image

from diffusion_viz.errors import ImageInputError
from diffusion_viz.images import load_image, square_crop


def encode(image, fmt="PNG", **kw):
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def test_rgba_is_composited_on_white():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    img.putpixel((0, 0), (0, 0, 255, 255))
    out = load_image(encode(img))
    assert out.shape == (4, 4, 3) and tuple(out[0, 0]) == (0, 0, 255) and tuple(out[1, 1]) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "LA", "I;16", "I", "F"])
def test_modes_become_rgb(mode):
    img = Image.new("RGB", (8, 6), (200, 100, 50)).convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I", "F", "I;16") else "PNG"
    out = load_image(encode(img, fmt))
    assert out.shape == (6, 8, 3) and out.dtype == np.uint8


def test_16_bit_values_are_scaled_not_clipped():
    a = np.full((4, 4), 40000, dtype=np.uint16)
    out = load_image(encode(Image.fromarray(a), "PNG"))
    assert abs(int(out[0, 0, 0]) - round(40000 / 257)) <= 1


def test_exif_rotation_is_honoured():
    img = Image.new("RGB", (20, 10), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    out = load_image(encode(img, "JPEG", exif=exif))
    assert out.shape == (20, 10, 3)


def test_large_images_are_downscaled():
    out = load_image(encode(Image.new("RGB", (3000, 1500), (1, 2, 3)), "JPEG"))
    assert max(out.shape[:2]) == 1024 and out.shape[:2] == (512, 1024)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"this is not an image at all", "not an image"),
    (None, "truncated"),  # filled in below
])
def test_broken_files(data, message):
    if data is None:
        data = encode(Image.new("RGB", (64, 64), (9, 9, 9)), "JPEG")[:200]
    with pytest.raises(ImageInputError, match=message):
        load_image(data)


def test_decompression_bomb_is_refused_quickly():
    bomb = encode(Image.new("1", (20000, 20000)), "PNG")  # ~60 KB on disk, 400 megapixels decoded
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageInputError, match="too large"):
        load_image(bomb)


def test_arrays_and_paths(tmp_path):
    floats = np.random.default_rng(0).random((5, 5, 3))
    assert load_image(floats).dtype == np.uint8
    with pytest.raises(ImageInputError):
        load_image(np.full((5, 5, 3), np.nan))
    with pytest.raises(ImageInputError, match="No such"):
        load_image(tmp_path / "missing.png")
    path = tmp_path / "ok.png"
    Image.new("RGB", (3, 3)).save(path)
    assert load_image(path).shape == (3, 3, 3)


def test_square_crop():
    a = np.zeros((10, 20, 3), dtype=np.uint8)
    assert square_crop(a).shape == (10, 10, 3) and square_crop(a, 4).shape == (4, 4, 3)
