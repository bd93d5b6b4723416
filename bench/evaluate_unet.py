"""Memorize vs generalize, in two numbers: prompt adherence and the share of samples that are not copies.

    nice -n 15 python bench/evaluate_unet.py                 # emoji-unet and the exact denoiser (32 px)
    python bench/evaluate_unet.py --models emoji-unet --guidance 3 --json out.json --grid grid.png

Fixed definitions (chosen before looking at results; keep them fixed so numbers stay comparable):
- Prompts: 50 emoji names, picked deterministically: names of at most two words, without the generic
  symbol words in SYMBOL_WORDS (clearly namable animals, food, objects, faces), evenly spaced in dataset
  order. The prompt is the name itself, e.g. "crocodile"; seed = the prompt's position (0..49).
- Sampler: DDIM, 50 steps, cosine schedule, 32x32. UNet guidance 3 (its default); the exact denoiser
  runs at guidance 1 (its prompt prior is already sharp).
- Feature space for "nearest training emoji": pixels in [-1, 1] averaged over 2x2 blocks (16x16x3).
  Pooling forgives pixel-level noise and sub-pixel misalignment; it has no learned part, so it favours
  neither model. Nearest neighbours are searched over the training images and their mirror images
  (training used flips).
- Adherent: the nearest emoji is the prompt's emoji, or has the same name once the generic words
  {face, sign, symbol} are removed ("cat" ~ "cat face").
- Near-copy: RMS distance in full 32x32 pixel space ([-1, 1]) to the closest training image, over its
  mirror image and shifts of up to 2 px (white padding, as in training), below 0.1 (about 5 % of the
  pixel range: indistinguishable at 32 px).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

SYMBOL_WORDS = ("sign", "symbol", "squared", "circled", "keycap", "clock", "regional", "latin", "digit",
                "flag", "negative", "black", "white", "button", "mark", "arrow", "input", "large", "small",
                "medium", "triangle", "square", "circle", "diamond", "ideograph", "vertical", "combining")
GENERIC = {"face", "sign", "symbol"}
COPY_RMS = 0.1
SHIFT = 2


def eval_prompts(names: list[str], n: int = 50) -> list[int]:
    """Indices of the n evaluation emoji (deterministic)."""
    pool = [i for i, x in enumerate(names) if len(x.split()) <= 2 and not any(w in x for w in SYMBOL_WORDS)]
    return [pool[int(j)] for j in np.linspace(0, len(pool) - 1, n).round()]


def core_name(name: str) -> str:
    return " ".join(w for w in name.split() if w not in GENERIC)


def features(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) in [-1, 1] -> (B, 3 * (S/2)^2): 2x2 average pooling, flattened."""
    return F.avg_pool2d(x, 2).flatten(1)


class Judge:
    """Nearest training emoji (feature space) and distance to the closest training copy (pixel space)."""

    def __init__(self, size: int = 32):
        from diffusion_viz.data import load_emoji

        data = load_emoji(size)
        self.names = [str(n) for n in data.names]
        x = torch.from_numpy(data.as_model_space())
        self.train = torch.cat([x, x.flip(-1)])  # originals then mirror images
        self.n = len(x)
        self.feats = features(self.train)
        self.flat = self.train.flatten(1)

    def nearest(self, img: torch.Tensor) -> int:
        d = torch.cdist(features(img[None]), self.feats)[0]
        return int(torch.argmin(d)) % self.n

    def copy_rms(self, img: torch.Tensor) -> float:
        s, m = img.shape[-1], SHIFT
        padded = F.pad(img[None], (m, m, m, m), value=1.0)[0]
        shifted = torch.stack([padded[:, dy:dy + s, dx:dx + s] for dy in range(2 * m + 1) for dx in range(2 * m + 1)])
        d2 = torch.cdist(shifted.flatten(1), self.flat).min()
        return float(d2) / math.sqrt(img.numel())

    def adherent(self, target: int, got: int) -> bool:
        return got == target or core_name(self.names[got]) == core_name(self.names[target])


def run_model(name: str, guidance: float, judge: Judge, prompts: list[int], steps: int = 50, unet_dir=None):
    from diffusion_viz.models.registry import get_model
    from diffusion_viz.sampling import SampleSettings, iter_frames

    if name == "emoji-unet" and unet_dir:  # weights exported from a run in progress
        from diffusion_viz.models.emoji_unet import EmojiUNetDenoiser

        model = EmojiUNetDenoiser.from_dir(unet_dir)
    else:
        model = get_model(name)
    rows, t0 = [], time.time()
    for seed, i in enumerate(prompts):
        prompt = judge.names[i]
        settings = SampleSettings(prompt=prompt, steps=steps, scheduler="ddim", schedule="cosine",
                                  guidance=guidance, seed=seed)
        final = [f for f in iter_frames(model, settings, capture=False)][-1]
        img = torch.from_numpy(final).clamp(-1, 1)
        got = judge.nearest(img)
        rows.append(dict(prompt=prompt, nearest=judge.names[got], adherent=judge.adherent(i, got),
                         copy_rms=judge.copy_rms(img), image=img))
    adherence = float(np.mean([r["adherent"] for r in rows]))
    non_copy = float(np.mean([r["copy_rms"] >= COPY_RMS for r in rows]))
    summary = dict(model=name, guidance=guidance, prompts=len(rows), adherence=adherence, non_copy=non_copy,
                   median_copy_rms=float(np.median([r["copy_rms"] for r in rows])),
                   seconds=round(time.time() - t0, 1))
    return summary, rows


def write_grid(path: str, judge: Judge, results: dict) -> None:
    """Rows of (sample, nearest training emoji) pairs per model; 10 prompts per row."""
    from diffusion_viz.training.unet import save_grid

    tiles = []
    for _, rows in results.values():
        for r in rows:
            tiles += [r["image"], judge.train[judge.nearest(r["image"])]]
    save_grid(torch.stack(tiles), path, ncol=20)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["emoji-unet", "emoji-exact-32"])
    p.add_argument("--guidance", type=float, default=3.0, help="guidance for emoji-unet")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--unet-dir", default=None, help="evaluate emoji-unet weights from this folder (an --export)")
    p.add_argument("--json", default=None, help="write the summaries here")
    p.add_argument("--grid", default=None, help="write sample / nearest-emoji pairs here (PNG)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every prompt")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    judge = Judge(32)
    prompts = eval_prompts(judge.names, args.n)
    results = {}
    for name in args.models:
        g = args.guidance if name == "emoji-unet" else 1.0
        summary, rows = run_model(name, g, judge, prompts, unet_dir=args.unet_dir)
        results[name] = (summary, rows)
        if args.verbose:
            for r in rows:
                print(f"  {r['prompt']:>24} -> {r['nearest']:<28} {'ok ' if r['adherent'] else 'MISS'} "
                      f"copy_rms {r['copy_rms']:.3f}")
        print(f"{name:>15} (guidance {g:g}): adherence {summary['adherence']:.0%}, "
              f"not near-copies {summary['non_copy']:.0%} (median RMS to closest training image "
              f"{summary['median_copy_rms']:.3f}; {summary['seconds']} s)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([s for s, _ in results.values()], f, indent=2)
    if args.grid:
        write_grid(args.grid, judge, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
