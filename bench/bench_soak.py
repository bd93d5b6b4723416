"""Soak: does the server's memory come back? Many ordinary requests against a launched ``python app.py``.

    python bench/bench_soak.py [--calls 600] [--every 100] [--prompts 40]

Sends /generate calls one after another from one gradio_client (a new seed each time, prompts cycling
through --prompts different ones, so neither the result cache nor the prompt caches can hide growth),
plus a /forward_plots and a /compare call every 10th request. Prints the server process's resident memory
(RSS) after every --every calls, and the ratio RSS(end) / RSS(after the first --every calls).
Goal (issue: "600 calls grew it from 680 to 1,510 MB"): RSS after 600 calls within 10 % of after 100.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from app_process import free_port, start_app, stop_app  # noqa: E402

PROMPTS = ["cat", "dog", "rocket", "pizza", "tree", "red apple", "snowman", "rainbow", "cat face", "robot",
           "house", "car", "fish", "star", "moon", "sun", "heart", "flower", "ghost", "alien", "bird", "frog",
           "lion", "tiger", "horse", "cake", "banana", "grapes", "guitar", "ball", "book", "clock", "key", "bell",
           "boat", "train", "plane", "bike", "shoe", "hat"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--prompts", type=int, default=40)
    args = parser.parse_args()

    from gradio_client import Client

    port = free_port()
    proc, startup = start_app(port)
    rows = []
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        print(f"app up in {startup:.1f} s; RSS at start {rss_mb(proc.pid):.0f} MB", flush=True)
        start = time.perf_counter()
        columns = [{"scheduler": "ddim", "schedule": "cosine", "steps": 20},
                   {"scheduler": "euler", "schedule": "linear", "steps": 20}]
        for k in range(1, args.calls + 1):
            prompt = PROMPTS[k % min(args.prompts, len(PROMPTS))]
            client.predict(prompt, 50, 10_000 + k, 1.0, "ddim", "cosine", "emoji-exact", api_name="/generate")
            if k % 10 == 0:
                client.predict(300 + k % 600, ["linear", "cosine"], k, api_name="/forward_plots")
                client.predict(prompt, k, "emoji-exact", columns, api_name="/compare")
            if k % args.every == 0:
                rows.append((k, rss_mb(proc.pid)))
                print(f"after {k:4d} calls: RSS {rows[-1][1]:7.0f} MB   ({time.perf_counter() - start:.0f} s)",
                      flush=True)
    finally:
        stop_app(proc)
    if len(rows) >= 2:
        first, last = rows[0][1], rows[-1][1]
        print(f"RSS after {rows[-1][0]} calls / after {rows[0][0]}: {last / first:.3f} "
              f"({last - first:+.0f} MB; goal: within 10 %)")


if __name__ == "__main__":
    main()
