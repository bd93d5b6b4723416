"""What both emoji-ldm stages share: a run folder that can stop and continue, an EMA copy, warm starts.

A run folder holds ``checkpoint.pt`` (weights, EMA, optimiser, step, config) and ``loss.csv`` (one row a
step). ``run_steps`` is the loop around a stage's own ``one_step``: it sets the learning rate (linear
warm-up, again after a warm start), keeps the EMA, writes the loss rows, saves every ``save_every`` steps
and stops after ``max_steps`` total steps or ``minutes``. Data and noise of a step are seeded by the
step inside ``one_step``, so a run that stopped and continued gives the same loss curve as one that did
not.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Callable

import torch


def save(path: Path, state: dict) -> None:
    """Write atomically: a run stopped mid-save keeps its last good checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def ema_decay(step: int, target: float) -> float:
    """diffusers' EMAModel warm-up: min(target, (1 + step) / (10 + step)); early on the EMA follows closely."""
    return min(target, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, step: int, target: float) -> None:
    decay = ema_decay(step, target)
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1 - decay)


def save_weights(state_dict: dict, path: Path, step: int) -> None:
    """float16 safetensors (half the size; the app computes in float32), readable by everyone."""
    from safetensors.torch import save_file

    save_file({k: v.half().contiguous() for k, v in state_dict.items()}, path, metadata={"step": str(step)})
    os.chmod(path, 0o644)


def load_weights(module: torch.nn.Module, path: Path) -> None:
    """The inverse of ``save_weights``: float16 file -> float32 module."""
    from safetensors.torch import load_file

    module.load_state_dict({k: v.float() for k, v in load_file(path).items()})


def start(ckpt_path: Path, model, ema, opt, init: Callable[[], int] | None, log=print) -> tuple[int, int]:
    """Continue from the run folder's checkpoint, or warm-start (``init`` loads exported weights into
    ``model`` and returns their step), or start from scratch. Returns (step, warm_from): the step the
    learning-rate warm-up counts from is 0, or the warm start's step (its optimiser starts afresh)."""
    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        log(f"resumed at step {state['step']}")
        return state["step"], state.get("warm_from", 0)
    if init is not None:
        step = init()
        ema.load_state_dict(model.state_dict())
        log(f"warm-started at step {step}")
        return step, step
    return 0, 0


def run_steps(out: Path, one_step: Callable[[int], dict], *, model, ema, opt, step: int, warm_from: int, cfg,
              state: Callable[[int], dict], max_steps: int | None, minutes: float | None, columns: list[str],
              desc: str, shown: str | None = None, progress: bool = False, log=print) -> dict:
    """The loop: ``one_step(step)`` computes the loss, steps ``opt`` and returns this step's loss row
    ({column: value}; ``shown``, by default the first column, on the progress bar and in the log). ``cfg`` has ``lr``, ``warmup``,
    ``ema`` and ``save_every``; the learning rate applies on a resumed run too (a run may go on lower).
    ``state(step)``: the checkpoint to save. Returns the last state (also saved)."""
    ckpt_path = Path(out) / "checkpoint.pt"
    shown = shown or columns[0]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=max_steps, initial=step, unit="step", desc=desc)
    begun = time.monotonic()
    with open(Path(out) / "loss.csv", "a", newline="") as f:
        writer = csv.writer(f)
        if f.tell() == 0:
            writer.writerow(["step", *columns])
        while (max_steps is None or step < max_steps) and (minutes is None or time.monotonic() - begun < 60 * minutes):
            for group in opt.param_groups:
                group["lr"] = cfg.lr * min(1.0, (step - warm_from + 1) / max(1, cfg.warmup))
            row = one_step(step)
            update_ema(ema, model, step, cfg.ema)
            step += 1
            writer.writerow([step, *(f"{row[c]:.6f}" for c in columns)])
            if bar is not None:
                bar.update(1)
                bar.set_postfix({shown: f"{row[shown]:.4f}"})
            if step % cfg.save_every == 0:
                f.flush()
                save(ckpt_path, state(step))
                log(f"step {step}: {shown} {row[shown]:.4f}, {time.monotonic() - begun:.0f} s")
    if bar is not None:
        bar.close()
    last = state(step)
    save(ckpt_path, last)
    return last


def add_arguments(p: argparse.ArgumentParser, out: str, lr: float) -> None:
    p.add_argument("--out", default=out, help="run folder (continued if it holds a checkpoint)")
    p.add_argument("--minutes", type=float, default=None, help="stop after this many minutes")
    p.add_argument("--steps", type=int, default=None, help="stop at this total step count")
    p.add_argument("--export", default=None, help="write the weights here when done (e.g. assets/emoji_ldm)")
    p.add_argument("--init", default=None, help="warm-start from an exported folder when --out is empty")
    p.add_argument("--plot", default=None, help="save the loss curve as this PNG")
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate (also for a continued run)")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
