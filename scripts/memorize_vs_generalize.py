"""Memorize vs generalize: for each prompt, the exact denoiser and the trained UNet, with the nearest
training emoji under each result. Writes one PNG (2x nearest-neighbour upscaled, rows = prompts):

    exact sample | its nearest training emoji | UNet sample | its nearest training emoji

    python scripts/memorize_vs_generalize.py "cat face" "red apple" rocket --seed 0 --out compare.png
"""

from __future__ import annotations

import argparse

import torch

from diffusion_viz.data import load_emoji
from diffusion_viz.models.emoji_unet import memorize_vs_generalize
from diffusion_viz.train import save_grid

DEFAULT_PROMPTS = ["cat face", "red apple", "rocket", "grinning face", "pizza", "snowman", "tiger face", "rainbow"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("prompts", nargs="*", default=DEFAULT_PROMPTS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance", type=float, default=3.0, help="for the UNet")
    p.add_argument("--out", default="memorize_vs_generalize.png")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    train = torch.from_numpy(load_emoji(32).as_model_space())
    tiles = []
    for prompt in args.prompts:
        exact, unet = memorize_vs_generalize(prompt, seed=args.seed, guidance=args.guidance)
        for r in (exact, unet):
            tiles += [torch.from_numpy(r["image"]), train[r["nearest_index"]]]
            print(f"{prompt!r:>18} {r['model']:>14}: nearest {r['nearest']} (RMS {r['nearest_rms']:.3f})")
    save_grid(torch.stack(tiles), args.out, ncol=4)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
