"""Decoding what render.write_output writes (GIF, MP4, PNG contact sheet), for the tests that check it.

Not a test module: imported by test_render.py and test_cli.py.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Layout of render.contact_sheet and render.animation_frames (pixels): render's own constants.
from diffusion_viz.render import (ANIMATION_CELL as ANIM_CELL, ANIMATION_GAP as ANIM_GAP,  # noqa: E402
                                  CAPTION_H as ANIM_CAPTION_H, SHEET_CELL, SHEET_LABEL_H, SHEET_ROW_LABEL_W)


def animation_frame_count(n_steps: int, fps: int) -> int:
    """How many frames a GIF/MP4 of an ``n_steps``-frame run plays: one per step, then one frame of the
    finished picture (render.animation_frames), then that frame held for one second (write_output
    appends ``fps`` copies of the last frame). ``fps=0``: the frames animation_frames returns.

    The one place to change if render changes how the end of a run is shown or held."""
    return n_steps + 1 + fps


def read_gif(path) -> tuple[list[np.ndarray], list[int], dict]:
    """(distinct RGB frames, each frame's duration in ms, info). Pillow's GIF writer merges identical
    consecutive frames into one with the summed duration, so held frames show up as a longer duration."""
    frames, durations = [], []
    with Image.open(path) as gif:
        info = dict(gif.info)
        for k in range(gif.n_frames):
            gif.seek(k)
            durations.append(int(gif.info["duration"]))
            frames.append(np.asarray(gif.convert("RGB")))
    return frames, durations, info


def read_mp4(path) -> tuple[list[np.ndarray], dict]:
    """(every decoded RGB frame, ffmpeg's metadata: fps, size, codec...)."""
    import imageio.v2 as imageio

    with imageio.get_reader(str(path), "ffmpeg") as reader:
        meta = dict(reader.get_meta_data())
        frames = [np.asarray(f) for f in reader]
    return frames, meta


def upscaled(rgb: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upscale by an integer factor, written independently of render.upscale."""
    h, w = rgb.shape[:2]
    assert size % h == 0 and size % w == 0, "pick sizes that divide evenly"
    return np.repeat(np.repeat(rgb, size // h, axis=0), size // w, axis=1)


def sheet_cell(sheet: np.ndarray, col: int, row: int, cell: int = SHEET_CELL) -> np.ndarray:
    """One picture of a contact sheet: row 0 = x_t, row 1 = predicted x0."""
    y, x = SHEET_LABEL_H + row * cell, SHEET_ROW_LABEL_W + col * cell
    return sheet[y:y + cell, x:x + cell]


def animation_panels(frame: np.ndarray, cell: int = ANIM_CELL) -> tuple[np.ndarray, np.ndarray]:
    """(x_t panel, predicted-x0 panel) of one animation frame (below the caption)."""
    body = frame[ANIM_CAPTION_H:ANIM_CAPTION_H + cell]
    return body[:, :cell], body[:, cell + ANIM_GAP:2 * cell + ANIM_GAP]


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean())
