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


ORANGE = (200, 100, 50)
GREY = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)  # ITU-R 601 luma of ORANGE: what an L image stores


@pytest.mark.parametrize("mode, expected, tol", [
    ("L", (GREY,) * 3, 0), ("LA", (GREY,) * 3, 0), ("I;16", (GREY,) * 3, 0), ("I", (GREY,) * 3, 0),
    ("F", (GREY,) * 3, 0),
    ("CMYK", ORANGE, 3),  # CMYK round trip keeps the colour
    ("P", ORANGE, 12),  # the web palette's nearest colour (dithered): close to the colour on average
    ("1", (GREY,) * 3, 20),  # black/white dots whose average is the grey level
])
def test_modes_become_rgb(mode, expected, tol):
    img = Image.new("RGB", (8, 6), ORANGE).convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I", "F", "I;16") else "PNG"
    out = load_image(encode(img, fmt))
    assert out.shape == (6, 8, 3) and out.dtype == np.uint8
    np.testing.assert_allclose(out.reshape(-1, 3).mean(axis=0), expected, atol=tol + 0.5)
    if mode == "1":
        assert set(np.unique(out)) == {0, 255}  # a bilevel picture stays bilevel


def test_16_bit_values_are_scaled_not_clipped():
    a = np.full((4, 4), 40000, dtype=np.uint16)
    out = load_image(encode(Image.fromarray(a), "PNG"))
    assert abs(int(out[0, 0, 0]) - round(40000 / 257)) <= 1


RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def quadrants(w=40, h=20) -> np.ndarray:
    """A stored (not yet rotated) picture, w x h: red top-left, green top-right, blue bottom-left,
    white bottom-right quadrant. No rotation or mirror maps it onto itself."""
    a = np.empty((h, w, 3), np.uint8)
    a[: h // 2, : w // 2], a[: h // 2, w // 2:] = RED, GREEN
    a[h // 2:, : w // 2], a[h // 2:, w // 2:] = BLUE, WHITE
    return a


def with_orientation(a: np.ndarray, orientation: int, fmt: str) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    kw = {"quality": 95} if fmt == "JPEG" else {}
    return encode(Image.fromarray(a), fmt, exif=exif, **kw)


def corner_colours(out: np.ndarray) -> dict:
    """The colour a viewer sees in each corner (sampled a little inside, away from JPEG edge blur)."""
    h, w = out.shape[:2]
    dy, dx = h // 5, w // 5
    spots = {"top-left": (dy, dx), "top-right": (dy, w - 1 - dx), "bottom-left": (h - 1 - dy, dx),
             "bottom-right": (h - 1 - dy, w - 1 - dx)}
    names = {RED: "red", GREEN: "green", BLUE: "blue", WHITE: "white"}
    seen = {}
    for where, (y, x) in spots.items():
        colour = min(names, key=lambda c: np.abs(out[y, x].astype(int) - c).sum())
        assert np.abs(out[y, x].astype(int) - colour).max() < 40, (where, out[y, x])
        seen[where] = names[colour]
    return seen


# What a viewer sees for each EXIF orientation (TIFF/EXIF spec), written as numpy on the stored pixels:
# 6 = "rotate 90 degrees clockwise to view" (a phone held upright, home button on the right),
# 8 = "rotate 90 degrees counter-clockwise to view", 3 = upside down, 2/4 = mirrored, 5/7 = transposed.
DISPLAY = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),  # clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=1),  # counter-clockwise
}


@pytest.mark.parametrize("orientation", sorted(DISPLAY))
def test_exif_orientation_shows_the_picture_as_the_camera_meant(orientation):
    stored = quadrants()
    out = load_image(with_orientation(stored, orientation, "PNG"))  # lossless: compare every pixel
    np.testing.assert_array_equal(out, DISPLAY[orientation](stored))


@pytest.mark.parametrize("orientation, corners", [
    # stored: red top-left, green top-right, blue bottom-left, white bottom-right (40 wide, 20 tall)
    (6, {"top-left": "blue", "top-right": "red", "bottom-left": "white", "bottom-right": "green"}),
    (8, {"top-left": "green", "top-right": "white", "bottom-left": "red", "bottom-right": "blue"}),
    (3, {"top-left": "white", "top-right": "blue", "bottom-left": "green", "bottom-right": "red"}),
])
def test_exif_rotation_of_a_phone_jpeg_puts_the_corners_where_a_viewer_sees_them(orientation, corners):
    out = load_image(with_orientation(quadrants(), orientation, "JPEG"))
    assert out.shape == ((40, 20, 3) if orientation in (6, 8) else (20, 40, 3))
    assert corner_colours(out) == corners


def test_a_broken_exif_block_keeps_the_photo():
    img = Image.fromarray(quadrants())
    exif = Image.Exif()
    exif[0x0112] = 99  # not an orientation: shown as stored
    out = load_image(encode(img, "PNG", exif=exif))
    np.testing.assert_array_equal(out, quadrants())


def halves(w: int, h: int) -> Image.Image:
    """Left half red, right half blue; a green band along the top tenth (orientation of both axes)."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2], a[:, w // 2:] = RED, BLUE
    a[: h // 10] = GREEN
    return Image.fromarray(a)


def close(pixel, colour, tol=8) -> bool:
    return int(np.abs(np.asarray(pixel, int) - colour).max()) <= tol


@pytest.mark.parametrize("w, h", [(3000, 1500), (1500, 3000), (2000, 1300), (1025, 7)])
def test_large_images_are_downscaled_keeping_shape_and_orientation(w, h):
    out = load_image(encode(halves(w, h), "PNG"))
    scale = 1024 / max(w, h)
    assert max(out.shape[:2]) == 1024
    assert abs(out.shape[1] - w * scale) <= 1 and abs(out.shape[0] - h * scale) <= 1  # aspect ratio kept
    oh, ow = out.shape[:2]
    if oh >= 20:  # the picture is still the same way up and the same way round
        y = oh // 2 + oh // 4
        assert close(out[y, ow // 8], RED) and close(out[y, ow - 1 - ow // 8], BLUE)
        assert close(out[oh // 40, ow // 8], GREEN) and close(out[oh - 1, ow // 8], RED)


def test_max_side_is_honoured_and_small_images_are_not_enlarged():
    assert load_image(encode(halves(400, 100), "PNG"), max_side=100).shape == (25, 100, 3)
    small = np.asarray(halves(50, 30))
    np.testing.assert_array_equal(load_image(encode(Image.fromarray(small), "PNG")), small)  # untouched
    exactly = load_image(encode(halves(1024, 600), "PNG"))
    assert exactly.shape == (600, 1024, 3)


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
    out = load_image(floats)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.round(floats * 255).astype(np.uint8))  # 0..1 floats -> 0..255
    sixteen = np.array([[0, 257 * 100, 65535]], np.uint16)
    np.testing.assert_array_equal(load_image(sixteen)[0, :, 0], [0, 100, 255])  # 16-bit -> 8-bit
    with pytest.raises(ImageInputError):
        load_image(np.full((5, 5, 3), np.nan))
    with pytest.raises(ImageInputError, match="No such"):
        load_image(tmp_path / "missing.png")
    path = tmp_path / "ok.png"
    stored = quadrants(6, 4)
    Image.fromarray(stored).save(path)
    np.testing.assert_array_equal(load_image(path), stored)


def coordinates(h: int, w: int) -> np.ndarray:
    """Each pixel stores where it came from: R = row, G = column (so a crop says which part it kept)."""
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = np.arange(h)[:, None]
    a[..., 1] = np.arange(w)[None, :]
    return a


@pytest.mark.parametrize("h, w, top, left", [
    (10, 20, 0, 5),  # wide: the middle 10 columns
    (20, 10, 5, 0),  # tall: the middle 10 rows
    (10, 13, 0, 1),  # odd margin: the extra column is dropped on the right
    (7, 7, 0, 0),  # already square: unchanged
])
def test_square_crop_keeps_the_centre(h, w, top, left):
    a = coordinates(h, w)
    out = square_crop(a)
    s = min(h, w)
    assert out.shape == (s, s, 3)
    np.testing.assert_array_equal(out[..., 0], np.arange(top, top + s)[:, None].repeat(s, 1))
    np.testing.assert_array_equal(out[..., 1], np.arange(left, left + s)[None, :].repeat(s, 0))


def test_square_crop_with_resize_keeps_the_orientation():
    a = np.asarray(halves(40, 20))  # the centre 20x20: red left, blue right, green band on top
    out = square_crop(a, 8)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert close(out[5, 1], RED) and close(out[5, 6], BLUE)  # Lanczos: a level or two of ringing
    assert out[0, :, 1].min() > 100 and out[-1, :, 1].max() == 0  # the band is still at the top
    np.testing.assert_array_equal(square_crop(a, 20), a[:, 10:30])  # same size: no resampling
