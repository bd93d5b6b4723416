"""The command line renders files a teacher can use, and refuses bad input clearly."""

import numpy as np
import pytest
from PIL import Image

from diffusion_viz.cli import build_parser, main
from media_checks import (ANIM_CAPTION_H, ANIM_CELL, ANIM_GAP, SHEET_CELL, SHEET_LABEL_H, SHEET_ROW_LABEL_W, animation_frame_count, animation_panels, mean_abs_diff, read_gif, read_mp4, sheet_cell,
                          upscaled)


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["render", "--help"])
    out = capsys.readouterr().out
    for option in ("--prompt", "--steps", "--scheduler", "--schedule", "--seed", "--out", "--guidance",
                   "--karras", "--zero-terminal-snr", "--model", "--fps"):
        assert option in out


def assert_frames_in_order(decoded, traj):
    """Frame k of the file shows step k: x_t on the left, predicted x0 on the right. The GIF palette and
    H.264 change colours (mean error here: up to ~11 levels on the noisy x_t, ~2 on x0, against >= 19
    between neighbouring steps' x_t), so each decoded frame must be close to its own step and nearest
    to it."""
    from diffusion_viz.render import image_to_rgb

    xt = [upscaled(image_to_rgb(f.x_t), ANIM_CELL) for f in traj.frames]
    x0 = [upscaled(image_to_rgb(f.x0), ANIM_CELL) for f in traj.frames]
    for k in range(len(traj.frames)):
        left, right = animation_panels(decoded[k])
        diffs = [mean_abs_diff(left, a) for a in xt]
        assert int(np.argmin(diffs)) == k and diffs[k] < 15, (k, diffs)
        assert mean_abs_diff(right, x0[k]) < 5, k


def _same_run():
    """The run the render command below makes (runs are deterministic for their settings)."""
    from diffusion_viz.models.registry import get_model
    from diffusion_viz.sampling import SampleSettings, sample

    settings = SampleSettings(prompt="cat", steps=6, scheduler="ddim", schedule="cosine", seed=0).validated()
    return sample(get_model("emoji-exact-32"), settings)


@pytest.mark.parametrize("suffix", ["png", "gif", "mp4"])
def test_render_writes_files(tmp_path, suffix):
    from diffusion_viz.render import image_to_rgb

    out = tmp_path / f"cat.{suffix}"
    fps = 5  # not the default 12: the option must reach the file
    assert main(["render", "--prompt", "cat", "--steps", "6", "--scheduler", "ddim", "--schedule", "cosine",
                 "--seed", "0", "--model", "emoji-exact-32", "--fps", str(fps), "--out", str(out)]) == 0
    assert out.exists() and out.stat().st_size > 1000
    traj = _same_run()
    assert len(traj.frames) == 6  # DDIM: one frame per step
    if suffix == "png":  # two rows of 6 pictures (fewer steps than columns: every step is shown)
        sheet = np.asarray(Image.open(out).convert("RGB"))
        assert sheet.shape == (SHEET_LABEL_H + 2 * SHEET_CELL, SHEET_ROW_LABEL_W + 6 * SHEET_CELL, 3)
        for col, frame in enumerate(traj.frames):
            np.testing.assert_array_equal(sheet_cell(sheet, col, 0), upscaled(image_to_rgb(frame.x_t), SHEET_CELL))
            np.testing.assert_array_equal(sheet_cell(sheet, col, 1), upscaled(image_to_rgb(frame.x0), SHEET_CELL))
        assert sheet_cell(sheet, 5, 1).std() > 10  # the finished picture is a picture, not a flat colour
    if suffix == "gif":
        frames, durations, _ = read_gif(out)
        assert len(frames) >= 6
        assert sum(durations) == animation_frame_count(6, fps) * int(1000 / fps)
        assert_frames_in_order(frames, traj)
    if suffix == "mp4":
        frames, meta = read_mp4(out)
        assert meta["fps"] == fps and tuple(meta["size"]) == (2 * ANIM_CELL + ANIM_GAP, ANIM_CELL + ANIM_CAPTION_H)
        assert len(frames) >= 6 and len(frames) == animation_frame_count(6, fps)
        assert_frames_in_order(frames, traj)


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "Steps"), (["--guidance", "nan"], "Guidance"), (["--seed", "-5"], "Seed"),
    (["--out", "x.bmp"], ".gif, .mp4 or .png"), (["--prompt", "x" * 1001], "limit is 1000"),
    (["--scheduler", "ddim", "--karras"], "Karras"),
])
def test_bad_input_exits_with_a_message(tmp_path, capsys, args, message):
    argv = ["render", "--model", "emoji-exact-32", "--steps", "3", "--out", str(tmp_path / "o.png")]
    assert main(argv + args) == 2
    assert message in capsys.readouterr().err


def test_unknown_scheduler_is_rejected_by_argparse(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["render", "--scheduler", "nope"])
    assert "invalid choice" in capsys.readouterr().err


def test_render_a_stable_diffusion_folder(tmp_path):
    """A checkpoint folder (here a tiny random one) renders with latent previews plus a full decode."""
    from diffusion_viz.models.sd_tiny import tiny_sd_pipeline

    folder = tmp_path / "tiny-sd"
    pipe = tiny_sd_pipeline(sample_size=8)
    pipe.save_pretrained(folder)
    out = tmp_path / "sd.png"
    assert main(["render", "--model", str(folder), "--prompt", "a red apple", "--steps", "4",
                 "--scheduler", "euler", "--guidance", "3", "--out", str(out)]) == 0
    assert out.exists()
    final = np.asarray(Image.open(tmp_path / "sd-final.png"))
    side = 8 * pipe.vae_scale_factor  # the VAE decodes the 8x8x4 latent to pixels (SD 1.5: 64 -> 512)
    assert final.shape == (side, side, 3) and final.std() > 0


def test_missing_checkpoint_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["render", "--model", str(tmp_path / "nope"), "--steps", "2", "--out", str(tmp_path / "x.png")]) == 2
    assert "error:" in capsys.readouterr().err


# ---- the experiments: a PNG sheet (one column per run) or a GIF (all columns, step by step) --------
def _sheet_rows(sheet, title_h, n_rows, col, cell=SHEET_CELL, label_w=92):
    return [sheet[title_h + r * cell: title_h + (r + 1) * cell, label_w + col * cell: label_w + (col + 1) * cell]
            for r in range(n_rows)]


def test_round_trip_sheet_shows_each_column_from_its_start(tmp_path, capsys):
    from diffusion_viz.data import load_emoji
    from diffusion_viz.models.registry import get_model
    from diffusion_viz.render import image_to_rgb
    from diffusion_viz.round_trip import round_trip
    from diffusion_viz.sampling import SampleSettings

    out = tmp_path / "rt.png"
    assert main(["round-trip", "--emoji", "rocket", "--levels", "100,999", "--steps", "10", "--seed", "4",
                 "--model", "emoji-exact-32", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "nearest training emoji rocket" in printed.splitlines()[0] and f"wrote {out}" in printed
    data = load_emoji(32)
    rocket = data.images[list(data.names).index("rocket")]
    rt = round_trip(get_model("emoji-exact-32"), rocket,
                    SampleSettings(steps=10, scheduler="ddim", schedule="cosine", seed=4), [100, 999])
    sheet = np.asarray(Image.open(out).convert("RGB"))
    rows = 7  # 6 evenly spaced steps of the 10 + the finished picture
    title_h = sheet.shape[0] - rows * SHEET_CELL
    assert sheet.shape[1] == 92 + 2 * SHEET_CELL and 20 < title_h < 120
    first, last = _sheet_rows(sheet, title_h, rows, 0), _sheet_rows(sheet, title_h, rows, 1)
    # column 1 starts at step 10 of 10 (t = 99): until then it shows its start, the noised rocket
    np.testing.assert_array_equal(first[0], upscaled(image_to_rgb(rt.runs[0].frames[0].x_t), SHEET_CELL))
    np.testing.assert_array_equal(first[-1], upscaled(image_to_rgb(rt.runs[0].final), SHEET_CELL))
    np.testing.assert_array_equal(last[0], upscaled(image_to_rgb(rt.runs[1].frames[0].x_t), SHEET_CELL))
    np.testing.assert_array_equal(last[-1], upscaled(image_to_rgb(rt.runs[1].final), SHEET_CELL))


def test_seed_grid_gif_has_every_step_and_the_finish(tmp_path, capsys):
    out = tmp_path / "grid.gif"
    assert main(["seed-grid", "--prompt", "animal", "--count", "3", "--steps", "5", "--model", "emoji-exact-32",
                 "--out", str(out)]) == 0
    assert "prior: dog 71 %" in capsys.readouterr().out
    frames, durations, _ = read_gif(out)
    assert len(frames) == 5 + 1 and frames[0].shape[1] == 3 * 160  # 5 steps, then the finished pictures
    assert sum(durations) == pytest.approx((5 + 1 + 12) * 83, abs=40)  # (held a second; GIFs count 10 ms)
    first, last = frames[0], frames[-1]
    assert mean_abs_diff(first, last) > 20  # static became pictures


@pytest.mark.parametrize("argv, message", [
    (["seed-grid", "--count", "9"], "1 to 8 seeds"),
    (["when-decided", "--fractions", "0,2"], "between 0 and 1"),
    (["when-decided", "--mode", "reseed", "--scheduler", "ddim"], "ddpm or euler_a"),
    (["round-trip", "--levels", "5000"], "t must be between"),
    (["round-trip", "--emoji", "unicorn-cat-xyz"], "no training emoji"),
    (["round-trip", "--out", "x.mp4"], ".png or .gif"),
])
def test_experiments_refuse_bad_input(tmp_path, capsys, argv, message):
    if not any(a == "--out" for a in argv):
        argv = argv + ["--out", str(tmp_path / "o.png")]
    assert main(argv + ["--model", "emoji-exact-32", "--steps", "3"]) == 2
    assert message in capsys.readouterr().err
