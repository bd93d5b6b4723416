"""The experiments' benchmark: round trip, when decided, seed grid, and the cost of the candidates.

Prints medians over repeated runs with the exact emoji denoiser at 64 px (goals from the issue, 2-core CPU):
    round trip, 5 levels x 50 steps, conditional          <= 1.0 s to the last frame
    when decided, 5 columns x 50 steps                    <= 1.0 s
    seed grid, 8 seeds x 50 steps                         <= 1.0 s (one batched model call per step)
    candidates on / off for a 50-step run                 <= 1.10 (a ratio: robust on a noisy machine)
Unconditional variants are printed too (the model then reads all 1,361 emoji at every step).

Usage: python bench/bench_experiments.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffusion_viz.candidates import frame_candidates  # noqa: E402
from diffusion_viz.data import load_emoji  # noqa: E402
from diffusion_viz.models.emoji_exact import exact_emoji_model  # noqa: E402
from diffusion_viz.round_trip import round_trip  # noqa: E402
from diffusion_viz.runtime import configure_torch_threads  # noqa: E402
from diffusion_viz.sampling import SampleSettings, sample  # noqa: E402
from diffusion_viz.seed_grid import seed_grid  # noqa: E402
from diffusion_viz.when_decided import when_decided  # noqa: E402


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    threads = configure_torch_threads()
    model = exact_emoji_model(64)
    data = load_emoji(64)
    photo = data.images[list(data.names).index("cat")]
    for p in ("cat", "rocket", "animal", ""):
        model.encode_prompt(p)  # the text encoder loads once per process: not part of a run

    def settings(prompt, seed=0):
        return SampleSettings(prompt=prompt, steps=50, scheduler="ddim", schedule="cosine", seed=seed)

    def with_candidates(prompt, seed):
        run = sample(model, settings(prompt, seed))
        frame_candidates(model, run.frames, prompt)

    cases = {
        "round trip, 5 levels, 'cat'": lambda i: round_trip(model, photo, settings("cat", i)),
        "round trip, 5 levels, no prompt": lambda i: round_trip(model, photo, settings("", i)),
        "when decided, 5 columns, cat -> rocket": lambda i: when_decided(
            model, settings("cat", i), "rocket", fractions=(0, 0.1, 0.25, 0.5, 0.75)),
        "seed grid, 8 seeds, 'animal'": lambda i: seed_grid(model, settings("animal"), range(8 * i, 8 * i + 8)),
        "seed grid, 8 seeds, no prompt": lambda i: seed_grid(model, settings(""), range(8 * i, 8 * i + 8)),
        "one run, no prompt": lambda i: sample(model, settings("", i)),
        "one run + candidates, no prompt": lambda i: with_candidates("", i),
        "one run, 'cat'": lambda i: sample(model, settings("cat", i)),
        "one run + candidates, 'cat'": lambda i: with_candidates("cat", i),
    }
    for fn in cases.values():
        fn(0)  # warm-up
    times = {name: [] for name in cases}
    for i in range(1, args.repeats + 1):  # interleaved so machine noise hits every case alike
        for name, fn in cases.items():
            times[name].append(seconds(lambda: fn(i)))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"exact emoji denoiser, 64 px, DDIM 50 steps, cosine, torch threads={threads}, "
          f"{args.repeats} repeats (medians)")
    for name, s in med.items():
        print(f"  {name:40s}: {s * 1000:7.0f} ms")
    for prompt in ("no prompt", "'cat'"):
        ratio = med[f"one run + candidates, {prompt}"] / med[f"one run, {prompt}"]
        print(f"  candidates on / off, {prompt:10s}            : {ratio:.3f}   (goal <= 1.10)")


if __name__ == "__main__":
    main()
