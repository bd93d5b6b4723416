"""The command line renders files a teacher can use, and refuses bad input clearly."""

import numpy as np
import pytest
from PIL import Image

from diffusion_viz.cli import build_parser, main


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["render", "--help"])
    out = capsys.readouterr().out
    for option in ("--prompt", "--steps", "--scheduler", "--schedule", "--seed", "--out", "--guidance",
                   "--karras", "--zero-terminal-snr", "--model", "--fps"):
        assert option in out


@pytest.mark.parametrize("suffix", ["png", "gif", "mp4"])
def test_render_writes_files(tmp_path, suffix):
    out = tmp_path / f"cat.{suffix}"
    assert main(["render", "--prompt", "cat", "--steps", "6", "--scheduler", "ddim", "--schedule", "cosine",
                 "--seed", "0", "--model", "emoji-exact-32", "--out", str(out)]) == 0
    assert out.exists() and out.stat().st_size > 1000
    if suffix == "png":
        sheet = np.asarray(Image.open(out))
        assert sheet.shape[0] > 100 and sheet.std() > 10  # two rows of real pictures, not a blank sheet
    if suffix == "gif":
        gif = Image.open(out)
        assert gif.n_frames >= 6


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
