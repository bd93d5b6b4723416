"""Shared timing code for the Stable Diffusion benchmarks: plain pipeline call vs. captured loop.

Both sides do the same work: encode the prompt (and the empty prompt for guidance), run the same
scheduler from the same seed, stop at the final latent (no VAE decode). The captured side also reads
every frame's x_t and predicted x0 and makes their linear RGB previews, as the app does.
"""

from __future__ import annotations

import statistics
import time

import torch

from diffusion_viz.models.stable_diffusion import StableDiffusionDenoiser, scheduler_for
from diffusion_viz.sampling import Frame, SampleSettings, iter_frames


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def plain_seconds(denoiser: StableDiffusionDenoiser, settings: SampleSettings) -> float:
    pipe = denoiser.pipe
    pipe.scheduler = scheduler_for(denoiser, settings.scheduler)
    _sync(denoiser.device)
    start = time.perf_counter()
    pipe(settings.prompt, num_inference_steps=settings.steps, guidance_scale=settings.guidance,
         generator=torch.Generator("cpu").manual_seed(settings.seed), output_type="latent",
         height=denoiser.height, width=denoiser.width)
    _sync(denoiser.device)
    return time.perf_counter() - start


def captured_seconds(denoiser: StableDiffusionDenoiser, settings: SampleSettings, previews: bool = True):
    """Seconds for a captured run, and its frame count."""
    denoiser._encode.cache_clear()  # the plain pipeline encodes the prompt every call: so do we
    _sync(denoiser.device)
    start = time.perf_counter()
    frames = 0
    for item in iter_frames(denoiser, settings, scheduler=scheduler_for(denoiser, settings.scheduler)):
        if isinstance(item, Frame):
            frames += 1
            if previews:
                denoiser.to_rgb(item.x_t)
                denoiser.to_rgb(item.x0)
    _sync(denoiser.device)
    return time.perf_counter() - start, frames


def compare(denoiser, settings: SampleSettings, repeats: int, warmup: int = 1) -> dict:
    """Interleaved repetitions (machine noise hits both sides alike); medians and their ratio."""
    for _ in range(warmup):
        plain_seconds(denoiser, settings)
        captured_seconds(denoiser, settings)
    plain, captured, frames = [], [], 0
    for _ in range(repeats):
        plain.append(plain_seconds(denoiser, settings))
        seconds, frames = captured_seconds(denoiser, settings)
        captured.append(seconds)
    p, c = statistics.median(plain), statistics.median(captured)
    return {"plain_s": p, "captured_s": c, "ratio": c / p, "min_ratio": min(captured) / min(plain),
            "frames": frames,
            "plain_s_per_step": p / max(frames, 1), "captured_s_per_step": c / max(frames, 1)}
