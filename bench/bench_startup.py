"""Time from ``python app.py`` (a fresh process) to the first HTTP 200 on the page, 3 times.

    DIFFUSION_VIZ_THREADS=1 python bench/bench_startup.py [--runs 3] [--timeout 90]

Each run starts the app on 127.0.0.1 on a free port, polls the page every 0.1 s, records the time to
the first 200, and stops the process (its own pid only). Prints each time and the median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from app_process import free_port, start_app, stop_app  # noqa: E402


def time_to_page(timeout: float) -> float:
    proc, seconds = start_app(free_port(), timeout)
    stop_app(proc)
    return seconds


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
