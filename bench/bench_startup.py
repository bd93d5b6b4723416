"""Time from ``python app.py`` (a fresh process) to the first HTTP 200 on the page, 3 times.

    DIFFUSION_VIZ_THREADS=1 python bench/bench_startup.py [--runs 3] [--timeout 90]

Each run starts the app on 127.0.0.1 on a free port, polls the page every 0.1 s, records the time to
the first 200, and stops the process (its own pid only). Prints each time and the median.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
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


def time_to_page(timeout: float) -> float:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "DIFFUSION_VIZ_HOST": "127.0.0.1", "DIFFUSION_VIZ_PORT": str(port)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while time.perf_counter() - start < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with code {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - start
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"no page after {timeout} s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the process group of the app we started, nothing else
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()
    times = []
    for k in range(args.runs):
        t = time_to_page(args.timeout)
        times.append(t)
        print(f"run {k + 1}: {t:.2f} s to a served page")
    print(f"median: {statistics.median(times):.2f} s over {len(times)} runs (goal <= 20 s)")


if __name__ == "__main__":
    main()
