"""GPU benchmark for a real Stable Diffusion checkpoint: seconds per step and capture overhead.

Reports, for one checkpoint folder (diffusers format, e.g. a downloaded sd15 snapshot or the output of
``pipe.save_pretrained``): the plain pipeline's seconds per step, the captured loop's (with linear
previews of x_t and x0 at every step), their ratio (goal <= 1.05), one full VAE decode, one linear
preview, and peak GPU memory. Same seed, scheduler and prompt on both sides, interleaved repetitions.

Usage: python bench/gpu_bench.py CHECKPOINT_DIR [--steps 30] [--repeats 5] [--scheduler ddim]
       [--guidance 7.5] [--size 512] [--dtype float16] [--cpu-offload] [--device cpu]
(--device cpu smoke-tests the script, e.g. on a tiny pipeline saved to a folder; CPU numbers are slow.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _timed(fn, device, repeats: int = 3) -> float:
    from sd_timing import _sync

    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="diffusers checkpoint folder (or a preset name, if downloaded)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scheduler", default="ddim")
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--size", type=int, default=None, help="width = height in pixels (default: model's)")
    parser.add_argument("--dtype", default=None, help="float16 / bfloat16 / float32 (default: fp16 on GPU)")
    parser.add_argument("--device", default=None, help="cuda / mps / cpu (default: best available)")
    parser.add_argument("--cpu-offload", action="store_true", help="model CPU offload (needs accelerate)")
    args = parser.parse_args()

    import torch
    from sd_timing import compare

    from diffusion_viz.models.sd_loading import load_pipeline
    from diffusion_viz.models.stable_diffusion import StableDiffusionDenoiser
    from diffusion_viz.runtime import configure_torch_threads
    from diffusion_viz.sampling import SampleSettings

    configure_torch_threads()
    start = time.perf_counter()
    pipe = load_pipeline(args.checkpoint, device=args.device, dtype=args.dtype, cpu_offload=args.cpu_offload)
    load_s = time.perf_counter() - start
    denoiser = StableDiffusionDenoiser(pipe, args.checkpoint, args.size, args.size)
    device = denoiser.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        name = torch.cuda.get_device_name(device)
    else:
        name = device.type
    settings = SampleSettings(prompt="a photograph of an astronaut riding a horse", steps=args.steps,
                              scheduler=args.scheduler, guidance=args.guidance, seed=0).validated()
    r = compare(denoiser, settings, args.repeats)
    latent = torch.randn(denoiser.sample_shape).numpy()
    decode_s = _timed(lambda: denoiser.decode(latent), device)
    preview_s = _timed(lambda: denoiser.to_rgb(latent), device, repeats=20)

    c, h, w = denoiser.sample_shape
    print(f"checkpoint : {args.checkpoint} ({type(pipe).__name__}, {denoiser.prediction_type})")
    print(f"device     : {name}, {denoiser.dtype}, offload={args.cpu_offload}, loaded in {load_s:.1f} s")
    print(f"image      : {denoiser.width}x{denoiser.height}, latent {c}x{h}x{w}")
    print(f"run        : {args.scheduler}, {args.steps} steps ({r['frames']} frames), guidance {args.guidance}, "
          f"median of {args.repeats}")
    print(f"plain      : {r['plain_s']:.3f} s  = {r['plain_s_per_step']:.4f} s/step")
    print(f"captured   : {r['captured_s']:.3f} s  = {r['captured_s_per_step']:.4f} s/step (with linear previews)")
    print(f"overhead   : {r['ratio']:.3f}  (goal <= 1.05: {'ok' if r['ratio'] <= 1.05 else 'ABOVE GOAL'}), "
          f"fastest runs {r['min_ratio']:.3f}")
    print(f"VAE decode : {decode_s * 1000:.1f} ms   linear preview: {preview_s * 1e6:.0f} us")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
