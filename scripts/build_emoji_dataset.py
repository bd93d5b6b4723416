#!/usr/bin/env python3
"""Build the small embedded emoji image dataset used by diffusion-viz.

Why: the app trains and demonstrates a tiny diffusion model and needs a
thousand-plus colourful, instantly recognisable, labelled images that ship
inside the repository (no download at run time). Emoji rendered from the
Noto Color Emoji font are exactly that, and their Unicode names double as
text labels for conditioning demos.

Usage:
    python scripts/build_emoji_dataset.py [--font PATH] [--out assets/emoji]

Outputs (in --out):
    emoji_64.npz, emoji_32.npz   keys: images uint8 (N,S,S,3) RGB on white,
                                 codepoints int64 (N,), names (N,) unicode str
    preview.png                  contact sheet of the first 400 emoji at 32 px

The result is deterministic for a given font file and Python version
(entries are sorted by codepoint; names come from Python's unicodedata).
"""

from __future__ import annotations

import argparse
import os
import unicodedata

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DEFAULT_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
# Noto Color Emoji is a CBDT bitmap font with a single strike: 109 px is the
# only size FreeType will load it at.
FONT_SIZE = 109
CANVAS = 200  # larger than the 136x128 bitmaps, so nothing gets clipped
FILL = 0.90  # glyph occupies ~90% of the square: a small white margin
SIZES = (64, 32)
PREVIEW_COUNT, PREVIEW_COLS, PREVIEW_SIZE = 400, 20, 32
VS16 = "\ufe0f"  # emoji presentation selector
UNASSIGNED = "\u0378"  # unassigned codepoint: renders as the font's .notdef

# Blocks / codepoints where emoji live (superset; the font's cmap and the
# exclusions below narrow it down).
EMOJI_RANGES = [
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049),
    (0x2122, 0x2122), (0x2139, 0x2139), (0x2190, 0x21FF), (0x2300, 0x23FF),
    (0x24C2, 0x24C2), (0x25A0, 0x25FF), (0x2600, 0x27BF), (0x2900, 0x297F),
    (0x2B00, 0x2BFF), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297),
    (0x3299, 0x3299), (0x1F000, 0x1FAFF),
]

# Codepoints that are emoji *components* rather than standalone pictures.
EXCLUDED_RANGES = [
    (0x1F1E6, 0x1F1FF),  # regional indicators: only meaningful as flag pairs
    (0x1F3FB, 0x1F3FF),  # skin-tone modifiers: just colour swatches
    (0xFE00, 0xFE0F),    # variation selectors
    (0x200D, 0x200D),    # zero width joiner
    (0x20E3, 0x20E3),    # combining enclosing keycap
    (0xE0000, 0xE007F),  # tag characters (subdivision flags)
]
# Keycap bases (digits, '#', '*') are plain ASCII: outside EMOJI_RANGES anyway.


def in_ranges(cp: int, ranges) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def font_cmap(font_path: str) -> set[int] | None:
    """Codepoints the font maps to a glyph, or None if fontTools is missing."""
    try:
        from fontTools.ttLib import TTFont
    except ImportError:
        return None
    return set(TTFont(font_path, lazy=True).getBestCmap())


def candidate_codepoints(cmap: set[int] | None) -> list[int]:
    """Emoji-range codepoints with a Unicode name (and a cmap entry if known)."""
    pool = cmap if cmap is not None else (
        cp for lo, hi in EMOJI_RANGES for cp in range(lo, hi + 1))
    out = []
    for cp in pool:
        if not in_ranges(cp, EMOJI_RANGES) or in_ranges(cp, EXCLUDED_RANGES):
            continue
        if not unicodedata.name(chr(cp), ""):
            continue  # newer than this Python's Unicode database: no label
        out.append(cp)
    return sorted(out)


def render_rgba(text: str, font) -> Image.Image:
    """Draw text centred on a transparent canvas in its embedded colours."""
    img = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    ImageDraw.Draw(img).text((CANVAS // 2, CANVAS // 2), text, font=font,
                             embedded_color=True, anchor="mm")
    return img


def to_square_on_white(img: Image.Image) -> Image.Image | None:
    """Crop to the alpha bounding box, centre in a padded square, flatten
    onto white. Returns None for an empty (blank) render."""
    bbox = img.getchannel("A").getbbox()
    if bbox is None:
        return None
    glyph = img.crop(bbox)
    side = int(round(max(glyph.size) / FILL))
    square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    off = ((side - glyph.width) // 2, (side - glyph.height) // 2)
    square.alpha_composite(glyph, off)
    return square.convert("RGB")


def render_emoji(cp: int, font, notdef: bytes) -> Image.Image | str:
    """Render one codepoint; retry with VS16 only if the bare render is
    blank or the .notdef box. Returns the large white-background square,
    or a reason string ("tofu" = no glyph in the font, "blank" = empty)."""
    reason = "tofu"
    for text in (chr(cp), chr(cp) + VS16):
        rgba = render_rgba(text, font)
        if rgba.tobytes() == notdef:
            continue
        square = to_square_on_white(rgba)
        if square is not None and np.asarray(square).min() < 250:
            return square
        reason = "blank"
    return reason


def contact_sheet(images: np.ndarray) -> Image.Image:
    """Grid of images so a human can eyeball the dataset."""
    n = len(images)
    rows = (n + PREVIEW_COLS - 1) // PREVIEW_COLS
    s = images.shape[1]
    sheet = Image.new("RGB", (PREVIEW_COLS * s, rows * s), (255, 255, 255))
    for i, im in enumerate(images):
        sheet.paste(Image.fromarray(im), ((i % PREVIEW_COLS) * s, (i // PREVIEW_COLS) * s))
    return sheet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--font", default=DEFAULT_FONT, help="path to NotoColorEmoji.ttf")
    ap.add_argument("--out", default="assets/emoji", help="output directory")
    args = ap.parse_args()

    font = ImageFont.truetype(args.font, FONT_SIZE)
    cmap = font_cmap(args.font)
    print("glyph check:", "font cmap (fontTools)" if cmap is not None
          else "render comparison against .notdef")
    notdef = render_rgba(UNASSIGNED, font).tobytes()

    cps, names, per_size = [], [], {s: [] for s in SIZES}
    skipped = {"tofu": [], "blank": []}
    for cp in candidate_codepoints(cmap):
        square = render_emoji(cp, font, notdef)
        if isinstance(square, str):
            skipped[square].append(cp)
            continue
        cps.append(cp)
        names.append(unicodedata.name(chr(cp)).lower())
        for s in SIZES:  # each size resized from the large render directly
            per_size[s].append(np.asarray(square.resize((s, s), Image.LANCZOS)))
    # Without a cmap every named codepoint in the ranges is tried, so many
    # "tofu" skips are expected; blank renders would point at a real problem.
    print(f"skipped {len(skipped['tofu'])} codepoints without a glyph (tofu)")
    if skipped["blank"]:
        print("skipped blank renders:", " ".join(f"U+{c:04X}" for c in skipped["blank"]))

    os.makedirs(args.out, exist_ok=True)
    codepoints = np.array(cps, dtype=np.int64)
    names_arr = np.array(names, dtype=str)
    print(f"N = {len(cps)}")
    for s in SIZES:
        path = os.path.join(args.out, f"emoji_{s}.npz")
        images = np.stack(per_size[s]).astype(np.uint8)
        np.savez_compressed(path, images=images, codepoints=codepoints, names=names_arr)
        print(f"{path}: images {images.shape}, {os.path.getsize(path)} bytes")

    path = os.path.join(args.out, "preview.png")
    preview = np.stack(per_size[PREVIEW_SIZE][:PREVIEW_COUNT])
    contact_sheet(preview).save(path, optimize=True)
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
