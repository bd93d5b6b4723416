"""Capture overhead for Stable Diffusion: captured loop (with linear previews) / plain pipeline call.

Same model, seed, scheduler and prompt, one process, interleaved repetitions, medians. Goal: <= 1.05.

By default it builds a tiny random-weight SD pipeline from config (offline, CPU). Give a checkpoint
folder (diffusers format) to measure a real model instead; on CPU expect seconds per step.

Usage: python bench/bench_sd_overhead.py [CHECKPOINT_DIR] [--steps 20] [--repeats 7]
       [--scheduler ddim] [--guidance 7.5] [--latent-size 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from diffusion_viz.runtime import configure_torch_threads  # noqa: E402
from diffusion_viz.sampling import SampleSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="diffusers checkpoint folder (default: tiny random model)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--scheduler", default="ddim")
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--latent-size", type=int, default=64,
                        help="tiny model only: latent side (64 = SD 1.5's 4x64x64)")
    parser.add_argument("--device", default=None, help="cpu / cuda / mps (default: best available)")
    args = parser.parse_args()

    from sd_timing import compare

    from diffusion_viz.models.stable_diffusion import StableDiffusionDenoiser

    threads = configure_torch_threads()
    if args.checkpoint:
        from diffusion_viz.models.sd_loading import load_pipeline

        denoiser = StableDiffusionDenoiser(load_pipeline(args.checkpoint, device=args.device), args.checkpoint)
        label = args.checkpoint
    else:
        from diffusion_viz.models.sd_tiny import tiny_sd_pipeline

        pipe = tiny_sd_pipeline(sample_size=args.latent_size).to(args.device or "cpu")
        denoiser = StableDiffusionDenoiser(pipe, "tiny-random-sd")
        label = f"tiny random SD pipeline, latent 4x{args.latent_size}x{args.latent_size}"
    settings = SampleSettings(prompt="a red cat", steps=args.steps, scheduler=args.scheduler,
                              guidance=args.guidance, seed=0).validated()
    r = compare(denoiser, settings, args.repeats)
    print(f"model: {label} on {denoiser.device} ({denoiser.dtype}), {threads} torch thread(s)")
    print(f"{args.scheduler}, {args.steps} steps, guidance {args.guidance}, {r['frames']} frames, "
          f"median of {args.repeats} interleaved runs")
    print(f"plain pipeline call : {r['plain_s'] * 1000:9.1f} ms  ({r['plain_s_per_step'] * 1000:.2f} ms/step)")
    print(f"captured + previews : {r['captured_s'] * 1000:9.1f} ms  ({r['captured_s_per_step'] * 1000:.2f} ms/step)")
    verdict = "ok" if r["ratio"] <= 1.05 else "ABOVE GOAL"
    print(f"overhead ratio      : {r['ratio']:.3f}  (goal <= 1.05: {verdict}); ratio of fastest runs "
          f"{r['min_ratio']:.3f} (less sensitive to a busy machine)")


if __name__ == "__main__":
    main()
