"""Turning frames into pictures: single images, contact sheets, GIFs and MP4s.

Model-space arrays are (C, H, W) in [-1, 1] (noise is unbounded). Display clips to [-1, 1]; predicted
noise is shown at 1/3 scale so that +-3 standard deviations fill the range. Upscaling is
nearest-neighbour so every pixel stays a crisp square on a projector.
"""

from __future__ import annotations

import functools

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import InvalidInputError
from .forward import to_pixels
from .sampling import Trajectory

NOISE_DISPLAY_SCALE = 1.0 / 3.0
# Layout (pixels). Cells are whole multiples of the 32/64-px pictures, upscaled nearest-neighbour: a
# GIF/MP4 frame is 2 x 256 + 8 = 520 px wide, a contact sheet 70 + 10 x 128 = 1350 px.
ANIMATION_CELL, CAPTION_H, ANIMATION_GAP = 256, 28, 8
SHEET_CELL, SHEET_LABEL_H, SHEET_ROW_LABEL_W = 128, 40, 70


def image_to_rgb(x: np.ndarray) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8; a stack (n, 3, H, W) -> (n, H, W, 3) in one call."""
    x = np.asarray(x)
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise InvalidInputError(f"Expected a (3, H, W) image or a stack of them, got shape {x.shape}.")
    return to_pixels(np.moveaxis(x, -3, -1))


def noise_to_rgb(eps: np.ndarray) -> np.ndarray:
    return image_to_rgb(np.asarray(eps) * NOISE_DISPLAY_SCALE)


def upscale(rgb: np.ndarray, size: int) -> Image.Image:
    """Nearest-neighbour upscale to size x size: pixels stay visible as squares."""
    return Image.fromarray(rgb).resize((size, size), Image.NEAREST)


@functools.lru_cache(maxsize=32)
def _font(size: int):
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def _wrap(draw, text: str, font, width: int) -> list[str]:
    lines = [""]
    for word in text.split():
        trial = (lines[-1] + " " + word).strip()
        if draw.textlength(trial, font=font) <= width or not lines[-1]:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines


def notice_image(text: str, height: int, width: int) -> np.ndarray:
    """A light grey picture with ``text`` written across it, wrapped to fit: stands in for a picture that
    must not be shown."""
    img = Image.new("RGB", (width, height), (225, 225, 225))
    draw = ImageDraw.Draw(img)
    font = _font(max(8, min(22, width // 14)))
    lines = _wrap(draw, text, font, width - 8)
    line_h = font.size + 4 if hasattr(font, "size") else 14
    y = max(2, (height - line_h * len(lines)) // 2)
    for line in lines:
        draw.text((4, y), line, fill=(40, 40, 40), font=font)
        y += line_h
    return np.asarray(img)


def pick_frames(n_frames: int, count: int) -> list[int]:
    """``count`` evenly spaced frame indices including the first and last."""
    if n_frames <= count:
        return list(range(n_frames))
    return sorted({round(i * (n_frames - 1) / (count - 1)) for i in range(count)})


def contact_sheet(traj: Trajectory, columns: int = 10, cell: int = SHEET_CELL,
                  to_rgb: Callable = image_to_rgb, latent: bool = False) -> Image.Image:
    """Two rows: x_t (top) and predicted x0 (bottom) at evenly spaced steps, each labelled with its step
    (k of N) and its alpha-bar (the share of the signal's power left). ``latent``: the pictures are
    ``to_rgb``'s cheap previews of latents, and the row labels say so."""
    idx = pick_frames(len(traj.frames), columns)
    label_h, row_label_w = SHEET_LABEL_H, SHEET_ROW_LABEL_W
    sheet = Image.new("RGB", (row_label_w + len(idx) * cell, label_h + 2 * cell), "white")
    draw, font = ImageDraw.Draw(sheet), _font(13)
    draw.text((4, label_h + cell // 2 - 8), "x_t", fill="black", font=font)
    draw.text((4, label_h + cell + cell // 2 - 8), "pred. x0", fill="black", font=font)
    if latent:
        for row in range(2):
            draw.text((4, label_h + row * cell + cell // 2 + 10), LATENT_PREVIEW, fill="black", font=_font(11))
    for col, i in enumerate(idx):
        f = traj.frames[i]
        x = row_label_w + col * cell
        draw.text((x + 4, 3), f"step {i + 1}/{len(traj.frames)}", fill="black", font=font)
        draw.text((x + 4, 20), f"ᾱ={f.alpha_bar:.3g}", fill="black", font=font)
        sheet.paste(upscale(to_rgb(f.x_t), cell), (x, label_h))
        sheet.paste(upscale(to_rgb(f.x0), cell), (x, label_h + cell))
    return sheet


def step_caption(f, steps: int) -> str:
    """What a step's picture shows: x_t at that step's noise level (t, and alpha-bar = power left)."""
    level = f"t={f.level:.1f}" if abs(f.level - f.timestep) > 0.05 else f"t={f.timestep:.0f}"
    return f"step {f.index + 1} of {steps}   {level}   ᾱ={f.alpha_bar:.3g}"


FINAL_CAPTION = "finished picture, after the last step"
LATENT_PREVIEW = "latent preview"
# latent models: the steps are cheap previews of the latent, the finished picture is the VAE's decode
FINAL_DECODED_CAPTION = "finished picture: the VAE decodes the last latent"


def animation_frames(traj: Trajectory, cell: int = ANIMATION_CELL, to_rgb: Callable = image_to_rgb,
                     final_rgb: np.ndarray | None = None) -> list[np.ndarray]:
    """Side-by-side x_t | predicted x0 per step, captioned; then one frame of the finished sample (both
    halves), captioned as such: the last step's x_t is still the model's noisy *input* to that step.
    ``final_rgb`` (H, W, 3) uint8: the finished picture as decoded (a latent model's VAE decode), shown
    instead of ``to_rgb`` of the last latent, which for such a model is only a cheap preview."""
    out, width = [], 2 * cell + ANIMATION_GAP
    # a latent model's steps are cheap previews of its latents (only the last frame is decoded): say so
    note = f"   {LATENT_PREVIEW}" if final_rgb is not None else ""

    def frame(left, right, caption, convert=to_rgb):
        canvas = Image.new("RGB", (width, cell + CAPTION_H), "white")
        canvas.paste(upscale(convert(left), cell), (0, CAPTION_H))
        canvas.paste(upscale(convert(right), cell), (cell + ANIMATION_GAP, CAPTION_H))
        draw = ImageDraw.Draw(canvas)
        size = max(12, min(20, cell // 12))
        while size > 9 and draw.textlength(caption, font=_font(size)) > width - 8:  # the whole caption fits
            size -= 1
        draw.text((4, 4), caption, fill="black", font=_font(size))
        return np.asarray(canvas)

    for f in traj.frames:
        out.append(frame(f.x_t, f.x0, step_caption(f, len(traj.frames)) + note))
    if final_rgb is not None:
        rgb = np.asarray(final_rgb, np.uint8)
        out.append(frame(rgb, rgb, FINAL_DECODED_CAPTION, convert=lambda picture: picture))
    elif traj.final is not None:
        out.append(frame(traj.final, traj.final, FINAL_CAPTION))
    return out


def write_output(traj: Trajectory, path: str | Path, to_rgb: Callable = image_to_rgb, fps: int = 12,
                 final_rgb: np.ndarray | None = None) -> Path:
    """Write a GIF, MP4 or PNG contact sheet, chosen by the file extension. ``final_rgb``: the decoded
    finished picture of a latent model (animation_frames); given, the steps are labelled as previews."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4", ".png"):
        raise InvalidInputError(f"Output must end in .gif, .mp4 or .png, got {path.name!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        contact_sheet(traj, to_rgb=to_rgb, latent=final_rgb is not None).save(path)
        return path
    frames = animation_frames(traj, to_rgb=to_rgb, final_rgb=final_rgb)
    frames += [frames[-1]] * fps  # hold the finished picture for a second
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



# ---- several runs side by side (the experiments: round trip, when decided, seed grid) -------------
def _positions(runs: list[Trajectory], align: str) -> int:
    """How many slider positions: the longest run, or (align "step") the last step index of any run + 1."""
    if align == "step":
        return max(r.frames[-1].index + 1 for r in runs if r.frames)
    return max(len(r.frames) for r in runs)


def _frame_at(run: Trajectory, pos: int, positions: int, align: str):
    """The frame a column shows at a slider position (as the app's player picks it)."""
    n = len(run.frames)
    if align == "step":
        return run.frames[max(0, min(pos - run.frames[0].index, n - 1))]
    return run.frames[round(pos / max(1, positions - 1) * (n - 1))] if positions > 1 else run.frames[0]


def columns_sheet(runs: list[Trajectory], titles: list[str], rows: int = 6, cell: int = SHEET_CELL,
                  to_rgb: Callable = image_to_rgb, align: str = "fraction") -> Image.Image:
    """One column per run, titled; rows: x_t at evenly spaced slider positions, then the finished picture."""
    positions = _positions(runs, align)
    picks = pick_frames(positions, rows)
    font = _font(13)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [_wrap(probe, t, font, cell - 8) for t in titles]
    title_h = 6 + 17 * max(len(w) for w in wrapped)
    row_label_w = 92
    sheet = Image.new("RGB", (row_label_w + len(runs) * cell, title_h + (len(picks) + 1) * cell), "white")
    draw = ImageDraw.Draw(sheet)
    for r, pos in enumerate(picks):
        y = title_h + r * cell
        draw.text((4, y + cell // 2 - 8), f"step {pos + 1}/{positions}", fill="black", font=font)
    draw.text((4, title_h + len(picks) * cell + cell // 2 - 8), "finished", fill="black", font=font)
    for c, (run, lines) in enumerate(zip(runs, wrapped)):
        x = row_label_w + c * cell
        for k, line in enumerate(lines):
            draw.text((x + 4, 3 + 17 * k), line, fill="black", font=font)
        for r, pos in enumerate(picks):
            sheet.paste(upscale(to_rgb(_frame_at(run, pos, positions, align).x_t), cell), (x, title_h + r * cell))
        if run.final is not None:
            sheet.paste(upscale(to_rgb(run.final), cell), (x, title_h + len(picks) * cell))
    return sheet


def write_columns(runs: list[Trajectory], titles: list[str], path: str | Path, to_rgb: Callable = image_to_rgb,
                  align: str = "fraction", fps: int = 12) -> Path:
    """A PNG sheet (``columns_sheet``) or a GIF: every column's x_t at the same slider position, captioned."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".png"):
        raise InvalidInputError(f"Output must end in .gif or .png, got {path.name!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        columns_sheet(runs, titles, to_rgb=to_rgb, align=align).save(path)
        return path
    cell = 160
    positions = _positions(runs, align)
    font = _font(13)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [_wrap(probe, t, font, cell - 8) for t in titles]
    title_h = 6 + 17 * max(len(w) for w in wrapped)
    frames = []
    for pos in list(range(positions)) + [None]:
        canvas = Image.new("RGB", (len(runs) * cell, title_h + cell + CAPTION_H), "white")
        draw = ImageDraw.Draw(canvas)
        for c, (run, lines) in enumerate(zip(runs, wrapped)):
            for k, line in enumerate(lines):
                draw.text((c * cell + 4, 3 + 17 * k), line, fill="black", font=font)
            picture = run.final if pos is None else _frame_at(run, pos, positions, align).x_t
            canvas.paste(upscale(to_rgb(picture), cell), (c * cell, title_h))
        caption = FINAL_CAPTION if pos is None else f"step {pos + 1} of {positions}"
        draw.text((4, title_h + cell + 6), caption, fill="black", font=font)
        frames.append(canvas.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))
    frames += [frames[-1]] * fps
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path
