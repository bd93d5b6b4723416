"""Inference budget for emoji-unet: a 50-step run at 32x32 must take <= 2 s on the 2-core CPU.

    python bench/bench_unet.py            # threads = 2, as the app uses; prints medians

Measures the whole sampling loop (prompt encoding cached, as in the app), with classifier-free guidance
(one batch-of-two UNet call per step) and without it. Other processes on the machine inflate timings:
run it on an idle machine and look at the median, not the mean.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from diffusion_viz.models.emoji_unet import emoji_unet_model
from diffusion_viz.runtime import configure_torch_threads
from diffusion_viz.sampling import SampleSettings, iter_frames


def time_run(model, settings: SampleSettings) -> float:
    t0 = time.perf_counter()
    for _ in iter_frames(model, settings):
        pass
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps", type=int, default=50)
    args = p.parse_args(argv)
    configure_torch_threads(args.threads)
    model = emoji_unet_model()
    for guidance in (3.0, 1.0):
        settings = SampleSettings(prompt="cat face", steps=args.steps, scheduler="ddim", schedule="cosine",
                                  guidance=guidance, seed=0)
        time_run(model, settings)  # warm-up: prompt encodings cached, kernels loaded
        times = [time_run(model, settings) for _ in range(args.repeats)]
        print(f"emoji-unet {args.steps} steps, 32x32, guidance {guidance:g}, {torch.get_num_threads()} threads: "
              f"median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, "
              f"n={len(times)})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
