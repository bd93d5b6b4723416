"""Start ``python app.py`` as its own process on 127.0.0.1 and stop it: shared by the benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(port: int, timeout: float = 90) -> tuple[subprocess.Popen, float]:
    """Launch the app and wait for its page; returns the process and seconds to an HTTP 200."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "DIFFUSION_VIZ_HOST": "127.0.0.1", "DIFFUSION_VIZ_PORT": str(port)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                if resp.status == 200:
                    return proc, time.perf_counter() - start
        except OSError:
            time.sleep(0.1)
    stop_app(proc)
    raise TimeoutError(f"no page after {timeout} s")


def stop_app(proc: subprocess.Popen) -> None:
    """Stop the process group of the app we started, and nothing else."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
