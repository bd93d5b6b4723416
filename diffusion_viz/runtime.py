"""Process-wide settings that must be chosen on purpose, not left to defaults."""

from __future__ import annotations

import os

import torch


def configure_torch_threads(threads: int | None = None) -> int:
    """Use a deliberate, small number of CPU threads.

    torch defaults to one thread per core for each process; with a web server, a test runner and a
    browser sharing two cores, that oversubscribes and slows everything 10-100x. Override with the
    environment variable DIFFUSION_VIZ_THREADS.
    """
    if threads is None:
        threads = int(os.environ.get("DIFFUSION_VIZ_THREADS", "0")) or min(2, os.cpu_count() or 1)
    torch.set_num_threads(max(1, threads))
    limit_blas_threads(threads)
    return torch.get_num_threads()


def limit_blas_threads(threads: int) -> None:
    """numpy's BLAS keeps one spinning thread per core unless told otherwise (app.py sets
    OPENBLAS_NUM_THREADS before numpy loads); threadpoolctl, where installed, limits it afterwards too."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(max(1, int(threads)), user_api="blas")


def native_bfloat16() -> bool:
    """Does this CPU compute bfloat16 in hardware (AVX512-BF16 or AMX)? There, convolutions in bfloat16 run
    about twice as fast as in float32; elsewhere they are emulated and slower. DIFFUSION_VIZ_BF16=0 or 1
    overrides the detection."""
    forced = os.environ.get("DIFFUSION_VIZ_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    cpu = getattr(torch, "cpu", None)
    checks = (getattr(cpu, "_is_avx512_bf16_supported", None), getattr(cpu, "_is_amx_tile_supported", None))
    return any(bool(check()) for check in checks if check is not None)
