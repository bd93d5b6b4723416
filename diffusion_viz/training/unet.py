"""Train a tiny text-conditioned pixel-space UNet on the emoji set (the model behind "emoji-unet").

Why this exists: the exact denoiser memorizes; a small network trained on the same 1,361 emoji has to
smooth and mix. Showing both side by side is the lesson.

    diffusion-viz train --config configs/emoji_unet_tiny.json --out runs/emoji_unet   # resumes if present
    diffusion-viz train --config configs/emoji_unet_tiny.json --out runs/emoji_unet --export assets/emoji_unet

Choices (and why):
- pixels in [-1, 1] at 32x32, cosine schedule, T = 1000: the schedule Nichol & Dhariwal tuned for small images.
- v-prediction: with cosine, abar at t = 999 is ~2e-9, where an epsilon-model's x0 = (x_t - s eps)/a
  blows up; v stays well-scaled from pure noise to clean images (Salimans & Ho 2022).
- conditioning: MiniLM token vectors (last_hidden_state, 384-d, with attention mask) of the emoji's
  name, precomputed once; during training the prompt is dropped to the empty prompt with probability
  `cond_drop` so the same network also predicts unconditionally (classifier-free guidance).
- augmentation: horizontal flips and small shifts padded with white (+1), the emoji background.
- pooled conditioning (optional, `pooled_conditioning`): the prompt's sentence vector (masked mean of
  the token vectors, unit length: how all-MiniLM-L6-v2 makes sentence embeddings) is projected and
  added to the timestep embedding, so every ResNet block sees the prompt (as SDXL does with its pooled
  text embedding). Cross-attention alone, at 8x8 only, learned "which emoji" slowly.
- warm start (optional, `init_from`): begin from another run's checkpoint; layers it lacks start at
  zero output, so step 0 computes exactly what that checkpoint computed.
- EMA of the weights is what gets exported: it samples better than the raw weights after short training.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models.emoji_unet import build_unet
from ..models.text_encoder import sentence_vectors, token_embeddings

MAX_TOKENS = 20  # the longest emoji name is 18 MiniLM tokens


@dataclass
class TrainConfig:
    """Everything that determines a run. Loaded from a JSON file; stored in every checkpoint."""

    size: int = 32
    block_out_channels: tuple = (32, 64, 64)
    down_block_types: tuple = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    layers_per_block: int = 1
    attention_head_dim: int = 32
    norm_num_groups: int = 16
    prediction_type: str = "v_prediction"
    schedule: str = "cosine"
    batch_size: int = 32
    lr: float = 5e-4
    warmup_steps: int = 200
    max_steps: int = 10000
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    cond_drop: float = 0.15
    max_shift: int = 2
    flip: bool = True
    seed: int = 0
    num_emoji: int = 0  # train on the first num_emoji only (0 = all): for fast tests
    pooled_conditioning: bool = False  # also add the sentence vector to the timestep embedding
    init_from: str = ""  # checkpoint.pt of an earlier run to start from (a second training stage)
    log_every: int = 50
    sample_every: int = 1000
    checkpoint_minutes: float = 3.0
    sample_prompts: list = field(default_factory=lambda: [
        "cat face", "red apple", "rocket", "grinning face", "rainbow", "pizza", "snowman", "tiger face"])

    @classmethod
    def load(cls, path) -> "TrainConfig":
        data = json.loads(Path(path).read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for k in ("block_out_channels", "down_block_types", "up_block_types"):
            if k in known:
                known[k] = tuple(known[k])
        return cls(**known)

    def unet_config(self) -> dict:
        """Keyword arguments for diffusers' UNet2DConditionModel."""
        return dict(
            sample_size=self.size, in_channels=3, out_channels=3,
            block_out_channels=list(self.block_out_channels),
            down_block_types=list(self.down_block_types), up_block_types=list(self.up_block_types),
            layers_per_block=self.layers_per_block, cross_attention_dim=384,
            attention_head_dim=self.attention_head_dim, norm_num_groups=self.norm_num_groups,
            **({"class_embed_type": "projection", "projection_class_embeddings_input_dim": 384}
               if self.pooled_conditioning else {}),
        )


# ---- text conditioning ----------------------------------------------------------------------------
def cached_name_tokens(names: list[str], cache: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Token embeddings of every emoji name plus the empty prompt (last row): computed once, then read."""
    if cache.exists():
        data = torch.load(cache)
        if data["names"] == names:
            return data["hidden"], data["mask"]
    hidden, mask = token_embeddings(names + [""], MAX_TOKENS)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"names": names, "hidden": hidden, "mask": mask}, cache)
    return hidden, mask


# ---- data -----------------------------------------------------------------------------------------
def augment(x: torch.Tensor, cfg: TrainConfig, g: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to max_shift pixels, padding with white (+1)."""
    b, _, s, _ = x.shape
    if cfg.flip:
        flip = (torch.rand(b, generator=g) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    m = cfg.max_shift
    if m > 0:
        padded = F.pad(x, (m, m, m, m), value=1.0)
        dx, dy = torch.randint(0, 2 * m + 1, (2, b), generator=g).tolist()
        x = torch.stack([padded[i, :, dy[i]:dy[i] + s, dx[i]:dx[i] + s] for i in range(b)])
    return x


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10 % at max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def v_target(x0: torch.Tensor, eps: torch.Tensor, alpha_bar) -> torch.Tensor:
    """The v-prediction target v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022) for
    x_t = sqrt(abar) x0 + sqrt(1 - abar) eps; ``alpha_bar`` broadcasts against x0 (e.g. (B, 1, 1, 1))."""
    alpha_bar = torch.as_tensor(alpha_bar, dtype=x0.dtype, device=x0.device)
    return alpha_bar.sqrt() * eps - (1 - alpha_bar).sqrt() * x0


# ---- sampling (batched DDIM, for grids during training) -------------------------------------------
@torch.no_grad()
def sample_batch(unet, cfg: TrainConfig, hidden, mask, uncond_hidden, uncond_mask,
                 steps: int = 25, guidance: float = 3.0, seed: int = 0) -> torch.Tensor:
    """Sample one image per conditioning row with DDIM + classifier-free guidance; returns (B, 3, S, S)."""
    from ..sampling import make_scheduler

    sched = make_scheduler("ddim", cfg.schedule, cfg.prediction_type)
    sched.set_timesteps(steps)
    b = hidden.shape[0]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((b, 3, cfg.size, cfg.size), generator=g)
    enc = torch.cat([uncond_hidden.expand(b, -1, -1), hidden])
    m = torch.cat([uncond_mask.expand(b, -1), mask])
    pooled = sentence_vectors(enc, m) if cfg.pooled_conditioning else None
    for t in sched.timesteps:
        out = unet(torch.cat([x, x]), t, encoder_hidden_states=enc, encoder_attention_mask=m,
                   class_labels=pooled).sample
        out_u, out_c = out.chunk(2)
        x = sched.step(out_u + guidance * (out_c - out_u), t, x).prev_sample
    return x.clamp(-1, 1)


def save_grid(images: torch.Tensor, path: Path, ncol: int = 8) -> None:
    from PIL import Image

    imgs = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    n, s = len(imgs), imgs.shape[1]
    rows = math.ceil(n / ncol)
    grid = np.full((rows * s, min(n, ncol) * s, 3), 255, np.uint8)
    for i, im in enumerate(imgs):
        r, c = divmod(i, ncol)
        grid[r * s:(r + 1) * s, c * s:(c + 1) * s] = im
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


# ---- checkpoints ----------------------------------------------------------------------------------
def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file then rename, so a kill mid-write never corrupts the last checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def export(run_dir: Path, out_dir: Path) -> Path:
    """EMA weights of the latest checkpoint -> out_dir/model.safetensors (fp16) + config.json."""
    from safetensors.torch import save_file

    ckpt = torch.load(Path(run_dir) / "checkpoint.pt", weights_only=False)
    cfg = TrainConfig(**ckpt["config"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().half().contiguous() for k, v in ckpt["ema"].items()}
    # A warm-started run continues earlier stages: count their steps and draw their losses too.
    stages, steps_per_stage, c = [Path(run_dir) / "loss.csv"], [ckpt["step"]], cfg
    while c.init_from and Path(c.init_from).exists():
        earlier = torch.load(c.init_from, weights_only=False, map_location="cpu")
        stages.insert(0, Path(c.init_from).parent / "loss.csv")
        steps_per_stage.insert(0, earlier["step"])
        c = TrainConfig(**earlier["config"])
    stages = [p for p in stages if p.exists()]
    save_file(weights, out_dir / "model.safetensors", metadata={"step": str(sum(steps_per_stage))})
    os.chmod(out_dir / "model.safetensors", 0o644)  # safetensors writes 0600
    meta = {"unet": cfg.unet_config(), "prediction_type": cfg.prediction_type, "schedule": cfg.schedule,
            "max_tokens": MAX_TOKENS, "text_encoder": "all-MiniLM-L6-v2 last_hidden_state",
            "step": sum(steps_per_stage), "steps_per_stage": steps_per_stage, "train_config": ckpt["config"]}
    (out_dir / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    plot_loss(stages, out_dir / "loss.png")
    return out_dir


def plot_loss(csv_paths: list[Path], png_path: Path) -> None:
    """Loss against step; several stages (first stage first) are drawn one after the other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    offset = 0
    for k, path in enumerate(csv_paths):
        # a resumed run logs again the steps after its last checkpoint: the later line wins
        loss = {int(r["step"]): float(r["loss"]) for r in csv.DictReader(open(path))}
        steps = [offset + st for st in sorted(loss)]
        ax.plot(steps, [loss[st] for st in sorted(loss)], lw=1, label=f"stage {k + 1}")
        offset = steps[-1] if steps else offset
    if len(csv_paths) > 1:
        ax.legend()
    ax.set(xlabel="training step", ylabel="v-prediction MSE", yscale="log", title="emoji-unet training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


# ---- the loop -------------------------------------------------------------------------------------
def train(cfg: TrainConfig, out_dir, max_minutes: float | None = None, device: str | None = None,
          verbose: bool = True, stop_step: int | None = None) -> dict:
    """Train (or resume) into out_dir; returns a summary.

    Stops at cfg.max_steps, after max_minutes, or at stop_step (a pause: the learning-rate schedule still
    runs to max_steps, so resuming later gives exactly the same weights as never stopping)."""
    from ..data import load_emoji
    from ..schedules import get_schedule

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)

    data = load_emoji(cfg.size)
    keep = slice(0, cfg.num_emoji or len(data))
    images = torch.from_numpy(data.as_model_space()[keep]).to(device)
    names = [str(n) for n in data.names[keep]]
    hidden, mask = cached_name_tokens(names, out / "name_tokens.pt")
    hidden, mask = hidden.to(device), mask.to(device)
    n = len(names)  # row n is the empty prompt
    abar = torch.tensor(get_schedule(cfg.schedule).alphas_cumprod, dtype=torch.float32, device=device)

    pooled = sentence_vectors(hidden, mask) if cfg.pooled_conditioning else None
    unet = build_unet(cfg.unet_config()).to(device)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    if cfg.init_from and not (out / "checkpoint.pt").exists():
        warm_start(unet, ema, Path(cfg.init_from), device, verbose)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)  # data order, augmentation, noise: one CPU stream
    step, elapsed = 0, 0.0
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False, map_location=device)
        unet.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        g.set_state(ckpt["rng"])
        step, elapsed = ckpt["step"], ckpt.get("elapsed", 0.0)
        if verbose:
            print(f"resumed from step {step}")
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")

    def checkpoint():
        save_checkpoint(ckpt_path, {"model": unet.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                                    "rng": g.get_state(), "step": step, "elapsed": elapsed,
                                    "config": asdict(cfg)})

    log_path = out / "loss.csv"
    new_log = not log_path.exists() or step == 0
    log = open(log_path, "w" if new_log else "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "loss", "lr", "elapsed_s"])

    begin = start = last_ckpt = time.time()
    running, losses = [], []
    params, ema_params = list(unet.parameters()), list(ema.parameters())
    unet.train()
    last = min(cfg.max_steps, stop_step or cfg.max_steps)
    while step < last:
        if max_minutes is not None and time.time() - begin > max_minutes * 60:
            break
        idx = torch.randint(0, n, (cfg.batch_size,), generator=g)
        x0 = augment(images[idx.to(device)], cfg, g)
        drop = torch.rand(cfg.batch_size, generator=g) < cfg.cond_drop
        cond = torch.where(drop, torch.full_like(idx, n), idx).to(device)
        t = torch.randint(0, len(abar), (cfg.batch_size,), generator=g).to(device)
        eps = torch.randn(x0.shape, generator=g).to(device)
        a = abar[t].sqrt()[:, None, None, None]
        s = (1 - abar[t]).sqrt()[:, None, None, None]
        x_t = a * x0 + s * eps
        target = v_target(x0, eps, abar[t][:, None, None, None]) if cfg.prediction_type == "v_prediction" else eps

        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        pred = unet(x_t, t, encoder_hidden_states=hidden[cond], encoder_attention_mask=mask[cond],
                    class_labels=None if pooled is None else pooled[cond]).sample
        loss = F.mse_loss(pred, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        with torch.no_grad():  # EMA with warm-up: early on follow the weights closely
            d = min(cfg.ema_decay, (1 + step) / (10 + step))
            torch._foreach_lerp_(ema_params, params, 1 - d)

        running.append(loss.item())
        losses.append(loss.item())
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            now = elapsed + time.time() - start
            writer.writerow([step, f"{np.mean(running):.5f}", f"{lr_at(step - 1, cfg):.3g}", f"{now:.1f}"])
            log.flush()
            if verbose:
                print(f"step {step} loss {np.mean(running):.4f} ({now / 60:.1f} min)", flush=True)
            running = []
        if cfg.sample_every and step % cfg.sample_every == 0:
            write_samples(ema, cfg, names, hidden.cpu(), mask.cpu(), out / f"samples_{step:06d}.png", device)
        if time.time() - last_ckpt > cfg.checkpoint_minutes * 60:
            elapsed += time.time() - start
            start = last_ckpt = time.time()
            checkpoint()
    elapsed += time.time() - start
    checkpoint()
    log.close()
    return {"step": step, "losses": losses, "elapsed_s": elapsed}


def warm_start(unet, ema, ckpt_path: Path, device, verbose: bool = True) -> None:
    """Load an earlier run's weights (raw into unet, EMA into ema). Layers the earlier run did not have
    (the pooled-conditioning projection) get a zero output layer, so nothing changes until they learn."""
    ckpt = torch.load(ckpt_path, weights_only=False, map_location=device)
    for net, key in ((unet, "model"), (ema, "ema")):
        missing, unexpected = net.load_state_dict(ckpt[key], strict=False)
        if unexpected or any(not k.startswith("class_embedding.") for k in missing):
            raise ValueError(f"{ckpt_path} does not fit this architecture: missing {missing}, unexpected {unexpected}")
        if net.class_embedding is not None:
            torch.nn.init.zeros_(net.class_embedding.linear_2.weight)
            torch.nn.init.zeros_(net.class_embedding.linear_2.bias)
    if verbose:
        print(f"warm start from {ckpt_path} (step {ckpt['step']})")


def write_samples(ema, cfg: TrainConfig, names, hidden, mask, path: Path, device="cpu") -> None:
    """Grid of the sample prompts (columns) for two seeds (rows), drawn with the EMA weights."""
    rows = [names.index(p) for p in cfg.sample_prompts if p in names]
    if not rows:
        return
    ema.eval()
    idx = torch.tensor(rows * 2)
    imgs = sample_batch(ema, cfg, hidden[idx].to(device), mask[idx].to(device),
                        hidden[-1:].to(device), mask[-1:].to(device), seed=0)
    save_grid(imgs.cpu(), path, ncol=len(rows))


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="diffusion-viz train", description=__doc__.split("\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def add_arguments(p) -> None:
    p.add_argument("--config", default="configs/emoji_unet_tiny.json", help="JSON training config")
    p.add_argument("--out", default="runs/emoji_unet", help="run folder (checkpoint, loss.csv, grids)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop (and checkpoint) after this long")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="don't train: write the run's EMA weights (fp16 safetensors) + config.json to DIR")


def run(args) -> int:
    torch.set_num_threads(max(1, args.threads))
    if args.export:
        print(f"exported to {export(Path(args.out), Path(args.export))}")
        return 0
    summary = train(TrainConfig.load(args.config), args.out, args.max_minutes, args.device)
    print(f"stopped at step {summary['step']} after {summary['elapsed_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
