"""Turning frames into pictures: single images, contact sheets, GIFs and MP4s.

Model-space arrays are (C, H, W) in [-1, 1] (noise is unbounded). Display clips to [-1, 1]; predicted
noise is shown at 1/3 scale so that +-3 standard deviations fill the range. Upscaling is
nearest-neighbour so every pixel stays a crisp square on a projector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import InvalidInputError
from .forward import to_pixels
from .sampling import Trajectory

NOISE_DISPLAY_SCALE = 1.0 / 3.0


def image_to_rgb(x: np.ndarray) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[0] != 3:
        raise InvalidInputError(f"Expected a (3, H, W) image, got shape {x.shape}.")
    return to_pixels(x.transpose(1, 2, 0))


def noise_to_rgb(eps: np.ndarray) -> np.ndarray:
    return image_to_rgb(np.asarray(eps) * NOISE_DISPLAY_SCALE)


def upscale(rgb: np.ndarray, size: int) -> Image.Image:
    """Nearest-neighbour upscale to size x size: pixels stay visible as squares."""
    return Image.fromarray(rgb).resize((size, size), Image.NEAREST)


def _font(size: int):
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def pick_frames(n_frames: int, count: int) -> list[int]:
    """``count`` evenly spaced frame indices including the first and last."""
    if n_frames <= count:
        return list(range(n_frames))
    return sorted({round(i * (n_frames - 1) / (count - 1)) for i in range(count)})


def contact_sheet(traj: Trajectory, columns: int = 10, cell: int = 96, to_rgb: Callable = image_to_rgb) -> Image.Image:
    """Two rows: x_t (top) and predicted x0 (bottom) at evenly spaced steps, labelled with t."""
    idx = pick_frames(len(traj.frames), columns)
    label_h, row_label_w = 22, 70
    sheet = Image.new("RGB", (row_label_w + len(idx) * cell, label_h + 2 * cell), "white")
    draw, font = ImageDraw.Draw(sheet), _font(13)
    draw.text((4, label_h + cell // 2 - 8), "x_t", fill="black", font=font)
    draw.text((4, label_h + cell + cell // 2 - 8), "pred. x0", fill="black", font=font)
    for col, i in enumerate(idx):
        f = traj.frames[i]
        x = row_label_w + col * cell
        draw.text((x + 4, 4), f"t={f.timestep:.0f}", fill="black", font=font)
        sheet.paste(upscale(to_rgb(f.x_t), cell), (x, label_h))
        sheet.paste(upscale(to_rgb(f.x0), cell), (x, label_h + cell))
    return sheet


def animation_frames(traj: Trajectory, cell: int = 192, to_rgb: Callable = image_to_rgb) -> list[np.ndarray]:
    """Side-by-side x_t | predicted x0 per step, captioned, then the finished sample held at the end."""
    font = _font(max(12, cell // 12))
    out = []
    for f in traj.frames:
        canvas = Image.new("RGB", (2 * cell + 8, cell + 28), "white")
        canvas.paste(upscale(to_rgb(f.x_t), cell), (0, 28))
        canvas.paste(upscale(to_rgb(f.x0), cell), (cell + 8, 28))
        ImageDraw.Draw(canvas).text(
            (4, 4), f"step {f.index + 1}/{len(traj.frames)}  t={f.timestep:.0f}  abar={f.alpha_bar:.3f}",
            fill="black", font=font)
        out.append(np.asarray(canvas))
    return out


def write_output(traj: Trajectory, path: str | Path, to_rgb: Callable = image_to_rgb, fps: int = 12) -> Path:
    """Write a GIF, MP4 or PNG contact sheet, chosen by the file extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4", ".png"):
        raise InvalidInputError(f"Output must end in .gif, .mp4 or .png, got {path.name!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        contact_sheet(traj, to_rgb=to_rgb).save(path)
        return path
    frames = animation_frames(traj, to_rgb=to_rgb)
    frames += [frames[-1]] * fps  # hold the result for a second
    if suffix == ".gif":
        # Fast octree palette per frame, no dithering: ~8x faster than PIL's default median cut (which
        # dominated a classroom's worth of runs) and it looks the same on noisy 64x64 pictures.
        images = [Image.fromarray(f).quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
                  for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    else:
        import imageio.v2 as imageio

        # imageio-ffmpeg writes H.264 in yuv420p (plays everywhere), which needs even sizes.
        # veryfast on one thread: ~1.5x faster, same file size here, and no burst of encoder threads
        # competing with other users' runs on a small server.
        with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1,
                                ffmpeg_params=["-preset", "veryfast", "-threads", "1"]) as writer:
            for f in frames:
                h, w = f.shape[:2]
                writer.append_data(f[: h - h % 2, : w - w % 2])
    return path

