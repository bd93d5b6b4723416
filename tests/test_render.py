"""Rendering decoded: contact-sheet cells, GIF and MP4 frames are the run's pictures, in order, the right
way up, for the right time. A synthetic run (no model): each step's x_t and predicted x0 are random
8x8 pictures from a small palette, so every frame differs, no frame is symmetric, and a GIF palette
holds them exactly."""

from __future__ import annotations

import types

import numpy as np
import pytest
from PIL import Image

from diffusion_viz.errors import InvalidInputError
from diffusion_viz.render import animation_frames, contact_sheet, image_to_rgb, noise_to_rgb, write_output
from diffusion_viz.sampling import Trajectory
from media_checks import (ANIM_CAPTION_H, ANIM_CELL, ANIM_GAP, SHEET_CELL, SHEET_LABEL_H, SHEET_ROW_LABEL_W, 
    animation_frame_count,
    animation_panels,
    mean_abs_diff,
    read_gif,
    read_mp4,
    sheet_cell,
    upscaled,
)

LEVELS = np.array([0, 51, 204, 255], np.uint8)


def fake_run(n_steps: int, seed: int = 0):
    """(trajectory, x_t pictures, x0 pictures, finished picture): as (8, 8, 3) uint8, what should be shown."""
    rng = np.random.default_rng(seed)
    frames, xt_rgb, x0_rgb = [], [], []
    for k in range(n_steps):
        a, b = LEVELS[rng.integers(0, 4, (8, 8, 3))], LEVELS[rng.integers(0, 4, (8, 8, 3))]
        xt_rgb.append(a)
        x0_rgb.append(b)
        to_model = lambda rgb: (rgb.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)  # noqa: E731
        t = 999.0 * (n_steps - 1 - k) / max(1, n_steps - 1)
        frames.append(types.SimpleNamespace(index=k, timestep=t, level=t, alpha_bar=(k + 1) / (n_steps + 1),
                                            x_t=to_model(a), x0=to_model(b)))
    final = LEVELS[rng.integers(0, 4, (8, 8, 3))]  # the finished sample: a picture of its own
    return Trajectory(frames, to_model(final), {}), xt_rgb, x0_rgb, final


def test_image_to_rgb_is_channel_last_and_scaled():
    x = -np.ones((3, 2, 4), np.float32)
    x[0, 0, 0] = 1.0  # red, top-left only
    x[2, 1, 3] = 0.0  # half blue, bottom-right only
    rgb = image_to_rgb(x)
    assert rgb.shape == (2, 4, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[1, 3]) == (0, 0, 128) and rgb.sum() == 255 + 128
    eps = np.array([3.0, -3.0, 1.5, 9.0], np.float32).reshape(1, 1, 4).repeat(3, 0)  # noise at 1/3 scale
    np.testing.assert_array_equal(noise_to_rgb(eps)[0, :, 0], [255, 0, round(1.5 * 127.5), 255])


@pytest.mark.parametrize("n_steps, shown", [
    (25, [0, 3, 5, 8, 11, 13, 16, 19, 21, 24]),  # 10 evenly spaced steps, first and last included
    (4, [0, 1, 2, 3]),  # fewer steps than columns: all of them
])
def test_contact_sheet_cells_are_the_steps_they_label(tmp_path, n_steps, shown):
    traj, xt_rgb, x0_rgb, _ = fake_run(n_steps, seed=n_steps)
    path = write_output(traj, tmp_path / "sheet.png")
    sheet = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(sheet, np.asarray(contact_sheet(traj)))  # the file is the sheet
    assert sheet.shape == (SHEET_LABEL_H + 2 * SHEET_CELL, SHEET_ROW_LABEL_W + len(shown) * SHEET_CELL, 3)
    for col, k in enumerate(shown):
        np.testing.assert_array_equal(sheet_cell(sheet, col, 0), upscaled(xt_rgb[k], SHEET_CELL), err_msg=f"x_t {col}")
        np.testing.assert_array_equal(sheet_cell(sheet, col, 1), upscaled(x0_rgb[k], SHEET_CELL), err_msg=f"x0 {col}")
        label = sheet[:SHEET_LABEL_H, SHEET_ROW_LABEL_W + col * SHEET_CELL:SHEET_ROW_LABEL_W + (col + 1) * SHEET_CELL]
        assert (label < 100).any(), f"column {col} has no t= label"
    assert (sheet[SHEET_LABEL_H:, :SHEET_ROW_LABEL_W] < 100).any()  # the row names


def test_animation_frames_put_x_t_left_and_x0_right():
    traj, xt_rgb, x0_rgb, final = fake_run(5, seed=1)
    frames = animation_frames(traj, cell=ANIM_CELL)
    assert len(frames) >= 5 and len(frames) == animation_frame_count(5, fps=0)
    captions = set()
    for k in range(5):
        assert frames[k].shape == (ANIM_CELL + ANIM_CAPTION_H, 2 * ANIM_CELL + ANIM_GAP, 3)
        left, right = animation_panels(frames[k])
        np.testing.assert_array_equal(left, upscaled(xt_rgb[k], ANIM_CELL))
        np.testing.assert_array_equal(right, upscaled(x0_rgb[k], ANIM_CELL))
        caption = frames[k][:28]
        assert (caption < 100).any()
        captions.add(caption.tobytes())
    assert len(captions) == 5  # each step is captioned with its own step number and t
    for extra in frames[5:]:  # after the steps: the finished sample, on both halves, captioned anew
        left, right = animation_panels(extra)
        np.testing.assert_array_equal(left, upscaled(final, ANIM_CELL))
        np.testing.assert_array_equal(right, upscaled(final, ANIM_CELL))
        assert extra[:28].tobytes() not in captions


def test_a_latent_models_finished_frame_is_its_decoded_picture(tmp_path):
    """A latent model's steps are cheap previews; its finished frame shows the decoded picture given, on
    both halves, captioned as the decode, not the preview of the last latent."""
    traj, xt_rgb, x0_rgb, final = fake_run(4, seed=5)
    decoded = LEVELS[np.random.default_rng(9).integers(0, 4, (16, 16, 3))]  # larger than the latent, as a VAE's
    frames = animation_frames(traj, cell=ANIM_CELL, final_rgb=decoded)
    assert len(frames) == animation_frame_count(4, fps=0)
    for k in range(4):  # the steps are unchanged
        np.testing.assert_array_equal(animation_panels(frames[k])[0], upscaled(xt_rgb[k], ANIM_CELL))
    left, right = animation_panels(frames[-1])
    np.testing.assert_array_equal(left, upscaled(decoded, ANIM_CELL))
    np.testing.assert_array_equal(right, upscaled(decoded, ANIM_CELL))
    plain = animation_frames(traj, cell=ANIM_CELL)[-1]
    assert frames[-1][:28].tobytes() != plain[:28].tobytes()  # its own caption
    gif, _, _ = read_gif(write_output(traj, tmp_path / "run.gif", fps=2, final_rgb=decoded))
    np.testing.assert_allclose(animation_panels(gif[-1])[1], upscaled(decoded, ANIM_CELL), atol=2)


def test_a_latent_models_step_frames_say_they_are_previews(tmp_path):
    """Only the last frame of a latent model's GIF is decoded: each step's caption says "latent preview",
    whole (drawn smaller where it would not fit), and the contact sheet's row labels say so too."""
    from PIL import ImageDraw

    from diffusion_viz.render import LATENT_PREVIEW, _font, step_caption

    traj, _, _, _ = fake_run(4, seed=5)
    decoded = LEVELS[np.random.default_rng(9).integers(0, 4, (16, 16, 3))]
    frames = animation_frames(traj, final_rgb=decoded)
    width = frames[0].shape[1]
    for k, f in enumerate(traj.frames):
        caption = f"{step_caption(f, len(traj.frames))}   {LATENT_PREVIEW}"
        drawn = []
        for size in range(20, 8, -1):
            alone = Image.new("RGB", (width, ANIM_CAPTION_H), "white")
            ImageDraw.Draw(alone).text((4, 4), caption, fill="black", font=_font(size))
            drawn.append(np.asarray(alone))
        assert any(np.array_equal(frames[k][:ANIM_CAPTION_H], d) for d in drawn), k
        ink = np.nonzero((frames[k][:ANIM_CAPTION_H] < 128).any(axis=(0, 2)))[0]
        assert ink.max() < width - 2  # nothing cut off at the right
    plain = animation_frames(traj)
    assert frames[0][:ANIM_CAPTION_H].tobytes() != plain[0][:ANIM_CAPTION_H].tobytes()
    latent, pixel = np.asarray(contact_sheet(traj, latent=True)), np.asarray(contact_sheet(traj))
    labels = slice(0, SHEET_ROW_LABEL_W)
    assert not np.array_equal(latent[:, labels], pixel[:, labels])
    np.testing.assert_array_equal(latent[:, SHEET_ROW_LABEL_W:], pixel[:, SHEET_ROW_LABEL_W:])
    sheet = np.asarray(Image.open(write_output(traj, tmp_path / "run.png", final_rgb=decoded)).convert("RGB"))
    np.testing.assert_array_equal(sheet, latent)


def test_gif_plays_every_step_in_order_then_holds_the_result(tmp_path):
    n, fps = 5, 4
    traj, xt_rgb, x0_rgb, _ = fake_run(n, seed=2)
    frames, durations, info = read_gif(write_output(traj, tmp_path / "run.gif", fps=fps))
    per_frame = int(1000 / fps)
    assert info.get("loop") == 0  # loops forever
    assert len(frames) >= n and all(f.shape == (ANIM_CELL + ANIM_CAPTION_H, 2 * ANIM_CELL + ANIM_GAP, 3) for f in frames)
    for k in range(n):  # the palette holds the 64 picture colours exactly (+-1 for rounding)
        left, right = animation_panels(frames[k])
        np.testing.assert_allclose(left, upscaled(xt_rgb[k], ANIM_CELL), atol=2, err_msg=f"x_t of step {k}")
        np.testing.assert_allclose(right, upscaled(x0_rgb[k], ANIM_CELL), atol=2, err_msg=f"x0 of step {k}")
    # Identical consecutive frames are merged by the GIF writer: the held copies lengthen the last frame.
    assert durations[:-1] == [per_frame] * (len(frames) - 1)
    assert sum(durations) == animation_frame_count(n, fps) * per_frame
    assert durations[-1] == (animation_frame_count(n, fps) - len(frames) + 1) * per_frame > per_frame


def test_mp4_has_every_frame_at_the_asked_rate(tmp_path):
    n, fps = 5, 4
    traj, xt_rgb, x0_rgb, _ = fake_run(n, seed=3)
    frames, meta = read_mp4(write_output(traj, tmp_path / "run.mp4", fps=fps))
    assert meta["fps"] == fps and tuple(meta["size"]) == (2 * ANIM_CELL + ANIM_GAP, ANIM_CELL + ANIM_CAPTION_H) and meta["codec"] == "h264"
    assert len(frames) >= n and len(frames) == animation_frame_count(n, fps)
    assert all(f.shape == (ANIM_CELL + ANIM_CAPTION_H, 2 * ANIM_CELL + ANIM_GAP, 3) for f in frames)
    expected = animation_frames(traj)
    for k in range(n):  # H.264 is lossy: each frame is close to its own step and far from the others
        left, right = animation_panels(frames[k])
        assert mean_abs_diff(left, upscaled(xt_rgb[k], ANIM_CELL)) < 8, k
        assert mean_abs_diff(right, upscaled(x0_rgb[k], ANIM_CELL)) < 8, k
        others = [mean_abs_diff(frames[k], expected[j]) for j in range(n) if j != k]
        assert mean_abs_diff(frames[k], expected[k]) < 8 < min(others), (k, others)
    for f in frames[len(expected):]:  # the hold: the last picture stays on screen
        assert mean_abs_diff(f, expected[-1]) < 8


def test_write_output_refuses_other_formats_and_makes_folders(tmp_path):
    traj, _, _, _ = fake_run(2)
    with pytest.raises(InvalidInputError, match=".gif, .mp4 or .png"):
        write_output(traj, tmp_path / "run.bmp")
    assert not (tmp_path / "run.bmp").exists()
    out = write_output(traj, tmp_path / "new" / "folder" / "RUN.PNG")  # suffix case does not matter
    assert out.is_file() and Image.open(out).size == (SHEET_ROW_LABEL_W + 2 * SHEET_CELL, SHEET_LABEL_H + 2 * SHEET_CELL)


def test_downloads_are_big_enough_for_a_class_and_say_which_step(tmp_path):
    """GIF/MP4 frames at least 512 px on the long side, nearest-neighbour, each captioned with its step
    (k of N) and alpha-bar: the caption strip is exactly the caption drawn on its own."""
    from PIL import ImageDraw

    from diffusion_viz.render import _font, step_caption

    traj, xt_rgb, _, _ = fake_run(4, seed=9)
    frames = animation_frames(traj)
    assert max(frames[0].shape[:2]) >= 512
    font = _font(min(20, ANIM_CELL // 12))
    for k, f in enumerate(traj.frames):
        caption = step_caption(f, len(traj.frames))
        assert caption.startswith(f"step {k + 1} of 4") and "ᾱ=" in caption
        alone = Image.new("RGB", (frames[k].shape[1], ANIM_CAPTION_H), "white")
        ImageDraw.Draw(alone).text((4, 4), caption, fill="black", font=font)
        np.testing.assert_array_equal(frames[k][:ANIM_CAPTION_H], np.asarray(alone))
    sheet = np.asarray(contact_sheet(traj))
    assert sheet.shape[1] >= 512 and (sheet[:SHEET_LABEL_H] < 100).any()
