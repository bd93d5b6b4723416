"""Compare-tab benchmark: four 50-step columns, one model call per step vs one per column per step.

Usage: python bench/bench_compare.py [--repeats 5] [--prompt ""]
Prints medians and the speed-up ratio (robust on a noisy machine: both run interleaved).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffusion_viz.compare import sample_columns  # noqa: E402
from diffusion_viz.models.emoji_exact import exact_emoji_model  # noqa: E402
from diffusion_viz.runtime import configure_torch_threads  # noqa: E402
from diffusion_viz.sampling import SampleSettings, sample  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prompt", default="", help="empty = unconditional, the expensive case")
    args = parser.parse_args()
    threads = configure_torch_threads()
    model = exact_emoji_model(64)
    columns = [SampleSettings(prompt=args.prompt, steps=50, scheduler=sch, schedule=sched, seed=0)
               for sch, sched in [("ddim", "cosine"), ("ddim", "linear"), ("euler", "sigmoid"), ("dpmpp_2m", "laplace")]]
    sample_columns(model, columns)  # warm-up
    batched, sequential = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        sample_columns(model, columns)
        t1 = time.perf_counter()
        for s in columns:
            sample(model, s)
        t2 = time.perf_counter()
        batched.append((t1 - t0) * 1000)
        sequential.append((t2 - t1) * 1000)
    b, s = statistics.median(batched), statistics.median(sequential)
    print(f"4 columns x 50 steps, 64 px, prompt={args.prompt!r}, torch threads={threads}, {args.repeats} repeats")
    print(f"  one call per step (batched)  : {b:7.1f} ms")
    print(f"  one call per column per step : {s:7.1f} ms")
    print(f"  speed-up                     : {s / b:7.2f}x")


if __name__ == "__main__":
    main()
