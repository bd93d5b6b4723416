"""Sampling-core benchmark: 50-step trajectories at 64 px with the exact emoji denoiser.

Prints medians over repeated runs (goals from the issue, on the 2-core CI machine):
    conditional prompt, full capture  <= 150 ms
    unconditional (whole dataset)     <= 400 ms
    capture on / capture off          <= 1.05 (a ratio: robust on a noisy machine)

Usage: python bench/bench_sampling.py [--repeats 15] [--scheduler ddim]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffusion_viz.models.emoji_exact import exact_emoji_model  # noqa: E402
from diffusion_viz.runtime import configure_torch_threads  # noqa: E402
from diffusion_viz.sampling import SampleSettings, iter_frames  # noqa: E402


def run_ms(model, settings, capture=True) -> float:
    start = time.perf_counter()
    for _ in iter_frames(model, settings, capture=capture):
        pass
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--scheduler", default="ddim")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()

    threads = configure_torch_threads()
    model = exact_emoji_model(64)
    cond = SampleSettings(prompt="cat", steps=args.steps, scheduler=args.scheduler, seed=0)
    uncond = SampleSettings(prompt="", steps=args.steps, scheduler=args.scheduler, seed=0)
    model.encode_prompt("cat")  # the text encoder loads once per process; not part of a run
    for s in (cond, uncond):
        run_ms(model, s)  # warm-up

    results = {"cond": [], "uncond": [], "cond_nocap": [], "uncond_nocap": []}
    for i in range(args.repeats):  # interleaved so machine noise hits every variant alike
        seeded = lambda s: SampleSettings(**{**s.__dict__, "seed": i})  # noqa: E731
        results["cond"].append(run_ms(model, seeded(cond)))
        results["cond_nocap"].append(run_ms(model, seeded(cond), capture=False))
        results["uncond"].append(run_ms(model, seeded(uncond)))
        results["uncond_nocap"].append(run_ms(model, seeded(uncond), capture=False))
    med = {k: statistics.median(v) for k, v in results.items()}

    print(f"exact emoji denoiser, 64 px, {args.steps} steps, {args.scheduler}, torch threads={threads}, "
          f"{args.repeats} repeats (medians)")
    print(f"  conditional ('cat'), full capture : {med['cond']:7.1f} ms   (goal <= 150)")
    print(f"  unconditional, full capture       : {med['uncond']:7.1f} ms   (goal <= 400)")
    print(f"  capture on/off, conditional       : {med['cond'] / med['cond_nocap']:7.3f}     (goal <= 1.05)")
    print(f"  capture on/off, unconditional     : {med['uncond'] / med['uncond_nocap']:7.3f}     (goal <= 1.05)")


if __name__ == "__main__":
    main()
