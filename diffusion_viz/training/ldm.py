"""Stage 2 of emoji-ldm: train the latent UNet on the frozen VAE's latents (resumable, with an EMA copy).

    diffusion-viz train-ldm --out runs/ldm [--minutes 30] [--plot ldm_loss.png] [--export assets/emoji_ldm]

Each step renders a fresh batch of captioned scenes (``diffusion_viz.scenes``, seeded by the step),
encodes them with the frozen VAE (a sample of q(z|x), times the stored scaling factor, as SD's training
does), noises them with Stable Diffusion's own schedule (scaled_linear, T = 1000) at uniformly drawn
timesteps, and minimises the mean squared error of the predicted noise:

    || eps - unet(sqrt(abar_t) z0 + sqrt(1 - abar_t) eps, t, text) ||^2

A share ``p_uncond`` of captions is replaced by the empty prompt, so the same network also predicts
without a prompt: classifier-free guidance needs both. The text is MiniLM's token vectors, encoded
exactly as the pipeline encodes a prompt at sampling time (``models.emoji_ldm.encode_prompts``).

With ``--nudge/--centre-nudge/--shade`` the scenes vary around their caption's exact layout
(``scenes.Variation``), and ``--seed`` picks another stream of scenes: stage 5 fine-tuned the shipped
UNet so (``--init``), and its export lists every stream behind the weights (``data``).

With ``--teacher FOLDER --layers-per-block 1`` the same loop distils a smaller, faster UNet from an
exported one (``training.distill``): the student starts from the teacher's kept blocks and also learns
the teacher's prediction for each noisy latent.

Checkpoints, resuming and the EMA: ``training.runs``; the export also fits the cheap latent -> RGB
preview (4x3 matrix + offset) on this VAE's latents and writes everything the loader needs to ldm.json.
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models.emoji_ldm import (ASSET_DIR, SCHEDULER_CONFIG, UNET_CONFIG, VAE_CONFIG, build_unet, build_vae,
                                encode_prompts, fit_preview, text_parts)
from ..scenes import Variation, render, scenes
from . import runs
from .vae import load_exported


@dataclass
class LDMConfig:
    batch: int = 32  # on 2 CPU cores more, smaller steps learn faster per second than fewer big ones
    lr: float = 6e-4
    warmup: int = 200  # linear learning-rate warm-up, in steps
    ema: float = 0.999  # reached after warm-up: decay min(ema, (1 + step) / (10 + step)), as diffusers' EMAModel
    p_uncond: float = 0.1  # share of captions replaced by "" (for classifier-free guidance)
    snr_gamma: float | None = None  # Min-SNR loss weighting (see loss_of); None: plain MSE
    save_every: int = 200
    seed: int = 0
    vae_dir: str = str(ASSET_DIR)  # the frozen, exported VAE
    unet: dict | None = None  # None: models.emoji_ldm.UNET_CONFIG
    teacher: str | None = None  # an exported folder: distil a smaller UNet from it (training.distill)
    kd_weight: float = 1.0  # weight of the distance to the teacher's prediction
    init: str | None = None  # the exported folder a fresh run warm-started from (its data is this UNet's too)
    # scenes.Variation of the training pictures: 0 0 0 is the exact layout of every caption
    nudge: int = 0
    centre_nudge: int = 0
    shade: int = 0


def load_vae(folder: str | Path):
    """The exported VAE (frozen, float32) and its scaling factor."""
    folder = Path(folder)
    info = json.loads((folder / "vae.json").read_text())
    vae = build_vae(info.get("config") or VAE_CONFIG)
    load_exported(vae, folder)
    return vae.eval().requires_grad_(False), float(info["scaling_factor"])


def scenes_at(step: int, cfg: LDMConfig) -> list:
    """The scenes of a step's batch: the training stream, the same for a resumed run (and for the
    benchmark's copy check, which compares samples with the scenes the model was trained on)."""
    return scenes(cfg.batch, seed=cfg.seed * 1_000_003 + 500_000_000 + step,
                  variation=Variation(cfg.nudge, cfg.centre_nudge, cfg.shade))


def batch_at(step: int, cfg: LDMConfig) -> tuple[torch.Tensor, list[str]]:
    """Pictures (B, 3, 64, 64) in [-1, 1] and captions of a step, "" for the dropped ones: the same for a
    resumed run."""
    batch = scenes_at(step, cfg)
    pictures = np.stack([render(s) for s in batch])
    keep = np.random.default_rng([cfg.seed, step]).random(cfg.batch) >= cfg.p_uncond
    captions = [s.caption if k else "" for s, k in zip(batch, keep)]
    return torch.from_numpy(pictures).permute(0, 3, 1, 2).float() / 127.5 - 1.0, captions


def loss_of(unet, vae, scaling: float, text, x: torch.Tensor, captions: list[str], step: int,
            noise_scheduler, snr_gamma: float | None = None, teacher=None,
            kd_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """(the loss to minimise, the step's loss row). The row's ``loss`` is the plain noise MSE either way, so
    the loss curve means the same with or without weighting and distillation; with a ``teacher`` the row
    also has ``kd``, the MSE to the teacher's prediction (``training.distill``).

    With ``snr_gamma`` each sample's loss is weighted by min(SNR_t, gamma) / SNR_t (Min-SNR, Hang et al.
    2023, as diffusers' training scripts do): the nearly clean timesteps, where predicting the noise is
    easy and teaches little about layout and objects, count less."""
    g = torch.Generator().manual_seed(step)
    with torch.no_grad():
        z0 = vae.encode(x).latent_dist.sample(generator=g) * scaling
        context = encode_prompts(*text, captions)
    noise = torch.randn(z0.shape, generator=g)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(z0),), generator=g)
    z_t = noise_scheduler.add_noise(z0, noise, t)
    if teacher is None:
        per_sample = F.mse_loss(unet(z_t, t, encoder_hidden_states=context).sample, noise,
                                reduction="none").mean(dim=(1, 2, 3))
        row = {"loss": per_sample.mean().item()}
    else:
        from .distill import distill_loss

        per_sample, task, kd = distill_loss(unet, teacher, z_t, t, context, noise, kd_weight)
        row = {"loss": task.mean().item(), "kd": kd.mean().item()}
    if snr_gamma is None:
        return per_sample.mean(), row
    from diffusers.training_utils import compute_snr

    snr = compute_snr(noise_scheduler, t)
    return (per_sample * snr.clamp(max=snr_gamma) / snr).mean(), row


def train(out: Path, cfg: LDMConfig, max_steps: int | None = None, minutes: float | None = None,
          log=print, init: Path | None = None, progress: bool = False) -> dict:
    """Train (or continue) in ``out``; stops after max_steps total steps or ``minutes``. Returns the state.

    ``init``: an exported folder (``unet.safetensors`` + ``ldm.json``) to warm-start from when ``out`` holds
    no checkpoint (a fresh machine keeps only what was exported to ``assets/``): its weights become both
    the model and its EMA and the step count continues from the export's. The optimiser starts afresh, so
    the learning rate warms up again from there."""
    from diffusers import DDPMScheduler

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    unet = build_unet(cfg.unet or UNET_CONFIG)
    ema = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    teacher = load_teacher(Path(cfg.teacher)) if cfg.teacher else None
    if init is not None:
        warm_start = lambda: load_exported_unet(unet, Path(init))  # noqa: E731
    elif teacher is not None:
        from .distill import student_from_teacher

        def warm_start() -> int:  # a fresh student starts from the teacher's kept blocks, at step 0
            student_from_teacher(unet, teacher)
            return 0
    else:
        warm_start = None
    step, warm_from = runs.start(out / "checkpoint.pt", unet, ema, opt, warm_start, log)
    vae, scaling = load_vae(cfg.vae_dir)
    text = text_parts()
    noise_scheduler = DDPMScheduler.from_config(SCHEDULER_CONFIG)

    def one_step(step: int) -> dict:
        x, captions = batch_at(step, cfg)
        loss, row = loss_of(unet, vae, scaling, text, x, captions, step, noise_scheduler, cfg.snr_gamma,
                            teacher, cfg.kd_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        return row

    return runs.run_steps(out, one_step, model=unet, ema=ema, opt=opt, step=step, warm_from=warm_from, cfg=cfg,
                          state=lambda k: _state(unet, ema, opt, k, cfg, warm_from), max_steps=max_steps,
                          minutes=minutes, columns=["loss", "kd"] if teacher is not None else ["loss"],
                          desc="emoji-ldm UNet" + (" (distilled)" if teacher is not None else ""),
                          progress=progress, log=log)


def load_teacher(folder: Path):
    """An exported UNet (``unet.safetensors`` + ``ldm.json``), frozen, float32: the one a student learns from."""
    teacher = build_unet(runs.read_json(Path(folder) / "ldm.json")["unet_config"])
    runs.load_weights(teacher, Path(folder) / "unet.safetensors")
    return teacher.eval().requires_grad_(False)


def load_exported_unet(unet, folder: Path) -> int:
    """Load ``folder/unet.safetensors`` (float16) into ``unet`` as float32; returns the step it was saved at."""
    runs.load_weights(unet, Path(folder) / "unet.safetensors")
    return int(runs.read_json(Path(folder) / "ldm.json")["unet_step"])


def _state(unet, ema, opt, step, cfg, warm_from: int = 0) -> dict:
    return {"model": unet.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
            "warm_from": warm_from, "config": asdict(cfg)}


@torch.no_grad()
def preview_fit(vae, scaling: float, n: int = 256) -> dict:
    """The cheap preview's 4x3 matrix + offset, fitted on scaled mean latents of ``n`` scenes against the
    pictures box-downsampled to latent size; with the fit's RMS error (pixels in [-1, 1])."""
    x = torch.from_numpy(np.stack([render(s) for s in scenes(n, seed=424_242)])).permute(0, 3, 1, 2).float() / 127.5 - 1
    z = (vae.encode(x).latent_dist.mean * scaling).numpy()
    small = F.avg_pool2d(x, x.shape[-1] // z.shape[-1]).permute(0, 2, 3, 1).numpy()
    matrix, offset, rms = fit_preview(z, small)
    return {"matrix": matrix.round(5).tolist(), "offset": offset.round(5).tolist(), "rms": round(rms, 4),
            "fitted_on": f"{n} training scenes (seed 424242), scaled mean latents vs 4x4 box-downsampled pixels"}


def streams_of(card: dict) -> list[dict]:
    """The training streams an exported UNet's card records (``data``); a card written before streams were
    recorded had one: its seed and batch, steps 0 .. data_steps, no variation."""
    if "data" in card:
        return card["data"]
    return [{"seed": card["training"]["seed"], "batch": card["training"]["batch"], "first": 0,
             "end": int(card.get("data_steps", card["unet_step"])), "nudge": 0, "centre_nudge": 0, "shade": 0}]


def data_behind(cfg: LDMConfig, step: int, warm_from: int = 0) -> list[dict]:
    """Every stream of training scenes that shaped a run's weights: its own (steps warm_from .. step of
    ``scenes_at``) and those of the export it warm-started from and of its teacher. The benchmark's copy
    check searches them all."""
    own = {"seed": cfg.seed, "batch": cfg.batch, "first": warm_from, "end": step, "nudge": cfg.nudge,
           "centre_nudge": cfg.centre_nudge, "shade": cfg.shade}
    data = [own] if step > warm_from else []
    for folder in (cfg.init, cfg.teacher):
        if folder and (Path(folder) / "ldm.json").exists():
            data += [d for d in streams_of(runs.read_json(Path(folder) / "ldm.json")) if d not in data]
    return data


def stream_scenes(stream: dict, limit: int | None = None) -> list:
    """The scenes of a recorded stream, batch after batch (at most ``limit`` batches), as ``scenes_at`` drew them."""
    cfg = LDMConfig(batch=stream["batch"], seed=stream["seed"], nudge=stream["nudge"],
                    centre_nudge=stream["centre_nudge"], shade=stream["shade"])
    end = stream["end"] if limit is None else min(stream["end"], stream["first"] + limit)
    return [s for step in range(stream["first"], end) for s in scenes_at(step, cfg)]


def export(run_dir: Path, out_dir: Path) -> dict:
    """EMA UNet -> out_dir/unet.safetensors (float16) + ldm.json (everything ``load_emoji_ldm`` reads).
    The VAE is the one the run trained on (``cfg.vae_dir``), copied if out_dir is another folder."""
    import shutil

    state = torch.load(Path(run_dir) / "checkpoint.pt", weights_only=False)
    cfg = LDMConfig(**state["config"])
    vae, scaling = load_vae(cfg.vae_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if Path(cfg.vae_dir).resolve() != out_dir.resolve():
        for name in ("vae.safetensors", "vae.json"):
            shutil.copyfile(Path(cfg.vae_dir) / name, out_dir / name)
    vae_info = json.loads((Path(cfg.vae_dir) / "vae.json").read_text())
    runs.save_weights(state["ema"], out_dir / "unet.safetensors", state["step"])
    data = data_behind(cfg, state["step"], state.get("warm_from", 0))
    card = {"unet_config": cfg.unet or UNET_CONFIG, "vae_config": vae_info.get("config") or VAE_CONFIG,
            "scheduler": SCHEDULER_CONFIG, "scaling_factor": scaling, "unet_step": state["step"],
            "data": data,
            "vae_step": vae_info["step"], "vae_psnr_heldout_db": vae_info.get("psnr_heldout_db"),
            "training": {k: v for k, v in asdict(cfg).items() if k not in ("unet", "vae_dir")},
            "preview": preview_fit(vae, scaling)}
    (out_dir / "ldm.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def add_arguments(p: argparse.ArgumentParser) -> None:
    runs.add_arguments(p, out="runs/ldm", lr=LDMConfig.lr)
    p.add_argument("--snr-gamma", type=float, default=None, help="Min-SNR loss weighting (e.g. 5)")
    p.add_argument("--teacher", default=None,
                   help="an exported folder: distil a smaller UNet from its UNet (block removal, training.distill)")
    p.add_argument("--layers-per-block", type=int, default=None,
                   help="the student's resnet + attention pairs per down block (the teacher's config otherwise)")
    p.add_argument("--no-mid-block", action="store_true",
                   help="with --teacher: the student has no mid block (BK-SDM-Small); the up path reads the down path")
    p.add_argument("--kd-weight", type=float, default=LDMConfig.kd_weight,
                   help="weight of the distance to the teacher's prediction")
    p.add_argument("--seed", type=int, default=LDMConfig.seed,
                   help="the training stream (another seed: other scenes, e.g. for a fine-tune)")
    p.add_argument("--nudge", type=int, default=0, help="move each of a pair's objects up to this many pixels")
    p.add_argument("--centre-nudge", type=int, default=0, help="move a lone object up to this many pixels")
    p.add_argument("--shade", type=int, default=0, help="shift the background colour up to this many levels")


def config_from(args) -> LDMConfig:
    """The run's config from the command line. A run folder that holds a checkpoint keeps the UNet
    architecture and teacher it was started with (a resumed run cannot change its network)."""
    ckpt = Path(args.out) / "checkpoint.pt"
    if ckpt.exists():
        stored = torch.load(ckpt, weights_only=False, mmap=True)["config"]  # (mmap: the weights stay on disk)
        unet, teacher = stored.get("unet"), stored.get("teacher")
    elif args.teacher:
        from .distill import pruned_config

        teacher = str(args.teacher)
        config = runs.read_json(Path(teacher) / "ldm.json")["unet_config"]
        unet = pruned_config(config, args.layers_per_block or config.get("layers_per_block", 2),
                             mid_block=not getattr(args, "no_mid_block", False))
    elif getattr(args, "init", None):  # a warm start keeps the exported UNet's architecture
        teacher = None
        unet = runs.read_json(Path(args.init) / "ldm.json")["unet_config"]
    else:
        teacher = None
        unet = dict(UNET_CONFIG, layers_per_block=args.layers_per_block) if args.layers_per_block else None
    return LDMConfig(lr=args.lr, snr_gamma=args.snr_gamma, unet=unet, teacher=teacher, kd_weight=args.kd_weight,
                     init=str(args.init) if getattr(args, "init", None) else None, seed=getattr(args, "seed", 0),
                     nudge=getattr(args, "nudge", 0), centre_nudge=getattr(args, "centre_nudge", 0),
                     shade=getattr(args, "shade", 0))


def run(args) -> int:
    from ..runtime import configure_torch_threads
    from .curves import plot_loss

    configure_torch_threads()
    cfg = config_from(args)
    train(Path(args.out), cfg, max_steps=args.steps, minutes=args.minutes,
          init=Path(args.init) if args.init else None, progress=True)
    if args.plot:
        if cfg.teacher:
            plot_loss(Path(args.out) / "loss.csv", Path(args.plot),
                      "emoji-ldm UNet, distilled: noise MSE (loss), MSE to the teacher (kd)", ["loss", "kd"])
        else:
            plot_loss(Path(args.out) / "loss.csv", Path(args.plot), "emoji-ldm UNet: noise-prediction MSE")
    if args.export:
        card = export(Path(args.out), Path(args.export))
        print(json.dumps({k: card[k] for k in ("unet_step", "scaling_factor")} | {"preview_rms": card["preview"]["rms"]}))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
