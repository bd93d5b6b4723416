"""emoji-ldm's optional stage 3: a smaller UNet that starts from the trained one's kept blocks and learns
from its predictions (training.distill), run end to end on tiny models."""

import argparse
import copy
import csv
import re

import pytest
import torch
from diffusers import DDPMScheduler

from diffusion_viz.models import emoji_ldm
from diffusion_viz.training import distill
from diffusion_viz.training import ldm as tl
from tiny_ldm import TINY_UNET, export_tiny_vae

TEACHER = dict(TINY_UNET, layers_per_block=2)


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    return export_tiny_vae(tmp_path_factory.mktemp("vae"))


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, vae_dir):
    """A tiny two-pairs-per-block UNet, trained two steps and exported as the shipped one is."""
    root = tmp_path_factory.mktemp("teacher")
    cfg = tl.LDMConfig(batch=2, warmup=1, vae_dir=str(vae_dir), unet=TEACHER)
    tl.train(root / "run", cfg, max_steps=2, log=lambda *_: None)
    tl.export(root / "run", root / "model")
    return root / "model"


def _rows(run):
    with open(run / "loss.csv") as f:
        return list(csv.DictReader(f))


def test_the_student_starts_from_the_teachers_kept_blocks():
    torch.manual_seed(0)
    teacher = emoji_ldm.build_unet(TEACHER)
    student = emoji_ldm.build_unet(distill.pruned_config(TEACHER, 1))
    left_out = distill.student_from_teacher(student, teacher)
    t_state, s_state = teacher.state_dict(), student.state_dict()
    # down blocks keep pair 0; up blocks (3 pairs in the teacher, 2 in the student) keep pair 0 and the last
    assert torch.equal(s_state["down_blocks.0.resnets.0.conv1.weight"], t_state["down_blocks.0.resnets.0.conv1.weight"])
    assert torch.equal(s_state["up_blocks.0.resnets.1.conv1.weight"], t_state["up_blocks.0.resnets.2.conv1.weight"])
    assert torch.equal(s_state["up_blocks.1.attentions.1.proj_out.weight"],
                       t_state["up_blocks.1.attentions.2.proj_out.weight"])
    assert torch.equal(s_state["mid_block.attentions.0.proj_in.weight"], t_state["mid_block.attentions.0.proj_in.weight"])
    for key, value in s_state.items():
        assert torch.equal(value, t_state[distill.teacher_key(key, 1, 2)]), key
    # what was left out is exactly the removed pairs: pair 1 of every down and up block
    removed = re.compile(r"^(down|up)_blocks\.\d\.(resnets|attentions)\.1\.")
    assert left_out == sorted(k for k in t_state if removed.match(k)) and left_out
    assert sum(p.numel() for p in student.parameters()) < 0.8 * sum(p.numel() for p in teacher.parameters())



def test_a_student_without_the_mid_block_keeps_everything_else_and_runs(tmp_path, vae_dir, teacher_dir):
    """--no-mid-block (BK-SDM-Small): every other weight is the teacher's, the mid block's are the ones left
    out, the up path reads the down path's last output directly, and the export loads as emoji-ldm."""
    torch.manual_seed(2)
    teacher = emoji_ldm.build_unet(TEACHER)
    student = emoji_ldm.build_unet(distill.pruned_config(TEACHER, 2, mid_block=False))
    assert student.mid_block is None
    left_out = distill.student_from_teacher(student, teacher)
    t_state = teacher.state_dict()
    assert left_out == sorted(k for k in t_state if k.startswith("mid_block.")) and left_out
    for key, value in student.state_dict().items():
        assert torch.equal(value, t_state[key]), key
    # not the teacher with its mid block skipped by accident: the outputs differ, and the student's equal
    # the teacher's forward pass with the mid block replaced by the identity
    z, t, c = torch.randn(2, 4, 8, 8), torch.tensor([10, 900]), torch.randn(2, 5, TEACHER["cross_attention_dim"])
    with torch.no_grad():
        s_out = student(z, t, encoder_hidden_states=c).sample
        t_out = teacher(z, t, encoder_hidden_states=c).sample
        teacher.mid_block = None
        skipped = teacher(z, t, encoder_hidden_states=c).sample
    assert not torch.allclose(s_out, t_out, atol=1e-4)
    assert torch.allclose(s_out, skipped, atol=1e-6)
    # from the command line, trained, resumed without the flag, exported and loaded
    args = argparse.Namespace(out=str(tmp_path / "run"), lr=1e-4, snr_gamma=None, teacher=str(teacher_dir),
                              layers_per_block=1, kd_weight=1.0, no_mid_block=True)
    cfg = tl.config_from(args)
    assert cfg.unet["mid_block_type"] is None and cfg.unet["layers_per_block"] == 1
    cfg.batch, cfg.vae_dir = 2, str(vae_dir)
    tl.train(tmp_path / "run", cfg, max_steps=1, log=lambda *_: None)
    resumed = tl.config_from(argparse.Namespace(**{**vars(args), "teacher": None, "layers_per_block": None,
                                                   "no_mid_block": False}))
    assert resumed.unet == cfg.unet
    card = tl.export(tmp_path / "run", tmp_path / "model")
    assert card["unet_config"]["mid_block_type"] is None
    # one step of its own, two of its teacher's: the scenes behind the weights are the teacher's two batches
    assert card["unet_step"] == 1 and sorted((d["first"], d["end"]) for d in card["data"]) == [(0, 1), (0, 2)]
    emoji_ldm.load_emoji_ldm.cache_clear()
    try:
        model = emoji_ldm.load_emoji_ldm(str(tmp_path / "model"))
        assert model.pipe.unet.mid_block is None
    finally:
        emoji_ldm.load_emoji_ldm.cache_clear()

def test_a_student_the_teacher_cannot_fill_is_a_clear_error():
    with pytest.raises(ValueError, match="layers_per_block must be 1..2"):
        distill.pruned_config(TEACHER, 3)
    with pytest.raises(ValueError, match="layers_per_block must be 1..2"):
        distill.pruned_config(TEACHER, 0)
    wider = emoji_ldm.build_unet(dict(TEACHER, block_out_channels=(16, 16)))
    with pytest.raises(ValueError, match="no teacher weight"):
        distill.student_from_teacher(wider, emoji_ldm.build_unet(TEACHER))


def test_the_distillation_loss_is_the_noise_error_plus_the_distance_to_the_teacher(vae_dir):
    """Against the sum written out; a student equal to its teacher has distance 0, so its loss is the task's."""
    torch.manual_seed(1)
    teacher = emoji_ldm.build_unet(TEACHER).requires_grad_(False)
    student = emoji_ldm.build_unet(TEACHER)
    vae, scaling = tl.load_vae(vae_dir)
    cfg = tl.LDMConfig(batch=6, vae_dir=str(vae_dir), unet=TEACHER)
    x, captions = tl.batch_at(5, cfg)
    sched = DDPMScheduler.from_config(emoji_ldm.SCHEDULER_CONFIG)
    text = emoji_ldm.text_parts()
    loss, row = tl.loss_of(student, vae, scaling, text, x, captions, 5, sched, teacher=teacher, kd_weight=0.5)
    g = torch.Generator().manual_seed(5)  # the same draws as loss_of, in the same order
    with torch.no_grad():
        z0 = vae.encode(x).latent_dist.sample(generator=g) * scaling
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, 1000, (len(z0),), generator=g)
        z_t = sched.add_noise(z0, noise, t)
        c = emoji_ldm.encode_prompts(*text, captions)
        s_out = student(z_t, t, encoder_hidden_states=c).sample
        t_out = teacher(z_t, t, encoder_hidden_states=c).sample
    task, kd = float(((s_out - noise) ** 2).mean()), float(((s_out - t_out) ** 2).mean())
    assert kd > 0.01
    assert row["loss"] == pytest.approx(task, rel=1e-5) and row["kd"] == pytest.approx(kd, rel=1e-5)
    assert loss.item() == pytest.approx(task + 0.5 * kd, rel=1e-5)
    same, row_same = tl.loss_of(copy.deepcopy(teacher), vae, scaling, text, x, captions, 5, sched, teacher=teacher)
    assert row_same["kd"] == 0.0 and same.item() == pytest.approx(row_same["loss"], rel=1e-6)


def test_a_distillation_run_resumes_on_its_curve_and_exports_a_loadable_student(tmp_path, vae_dir, teacher_dir):
    student_cfg = distill.pruned_config(TEACHER, 1)
    cfg = tl.LDMConfig(batch=3, warmup=2, save_every=2, vae_dir=str(vae_dir), unet=student_cfg,
                       teacher=str(teacher_dir))
    straight, split = tmp_path / "straight", tmp_path / "split"
    tl.train(straight, cfg, max_steps=4, log=lambda *_: None)
    tl.train(split, cfg, max_steps=2, log=lambda *_: None)
    tl.train(split, cfg, max_steps=4, log=lambda *_: None)
    a, b = _rows(straight), _rows(split)
    assert [int(r["step"]) for r in b] == [1, 2, 3, 4] and list(b[0]) == ["step", "loss", "kd"]
    for ra, rb in zip(a, b):
        for col in ("loss", "kd"):
            assert float(ra[col]) == pytest.approx(float(rb[col]), rel=1e-5)
    card = tl.export(split, tmp_path / "model")
    assert card["unet_config"]["layers_per_block"] == 1 and card["training"]["teacher"] == str(teacher_dir)
    emoji_ldm.load_emoji_ldm.cache_clear()
    try:
        model = emoji_ldm.load_emoji_ldm(str(tmp_path / "model"))
        assert model.pipe.unet.config.layers_per_block == 1
    finally:
        emoji_ldm.load_emoji_ldm.cache_clear()


def test_a_resumed_run_keeps_its_network_and_teacher(tmp_path, vae_dir, teacher_dir):
    """The command line of a resumed run need not repeat --teacher / --layers-per-block, and cannot change them."""
    args = argparse.Namespace(out=str(tmp_path / "run"), lr=1e-4, snr_gamma=None, teacher=str(teacher_dir),
                              layers_per_block=1, kd_weight=1.0)
    cfg = tl.config_from(args)
    assert cfg.unet["layers_per_block"] == 1 and cfg.unet["block_out_channels"] == list(TEACHER["block_out_channels"])
    cfg.batch, cfg.vae_dir = 2, str(vae_dir)
    tl.train(tmp_path / "run", cfg, max_steps=1, log=lambda *_: None)
    resumed = tl.config_from(argparse.Namespace(**{**vars(args), "teacher": None, "layers_per_block": None}))
    assert resumed.unet == cfg.unet and resumed.teacher == str(teacher_dir)


def test_a_distilled_runs_plot_draws_both_curves(tmp_path):
    """--plot on a distilled run draws the noise error (blue) and the distance to the teacher (orange)."""
    import numpy as np
    from PIL import Image

    from diffusion_viz.training.curves import plot_loss

    rows = ["step,loss,kd"] + [f"{s},{0.2 + 0.1 / s:.4f},{0.01 + 0.2 / s:.4f}" for s in range(1, 121)]
    (tmp_path / "loss.csv").write_text("\n".join(rows) + "\n")

    def count(png, rgb):
        pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
        return int((np.abs(pixels - np.array(rgb)).sum(axis=2) < 30).sum())

    both = plot_loss(tmp_path / "loss.csv", tmp_path / "both.png", "t", ["loss", "kd"])
    one = plot_loss(tmp_path / "loss.csv", tmp_path / "one.png", "t")
    blue, orange = (0x1F, 0x4E, 0x8C), (0xB0, 0x4A, 0x0C)
    assert count(both, blue) > 200 and count(both, orange) > 200
    assert count(one, blue) > 200 and count(one, orange) == 0
