"""Soak: does the server's memory come back? Many ordinary requests against a launched ``python app.py``.

    python bench/bench_soak.py [--calls 600] [--every 100] [--prompts 40]

Sends /generate calls one after another from one gradio_client (a new seed each time, prompts cycling
through --prompts different ones, so neither the result cache nor the prompt caches can hide growth),
plus a /forward_plots and a /compare call every 10th request. Faults and bad input are mixed in: every
25th request also sends a bad argument (from BAD, which the server must refuse with a message), every 50th
starts a heavy Compare and cancels it. Prints the server process's resident memory (RSS) after every
--every calls, the ratio RSS(end) / RSS(after the first --every calls), and at the end: the load held
(calls, errors), faults survived, bad inputs refused, peak (VmHWM) and final RSS.
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


# (endpoint, arguments): each must be refused with a message, never served, never crash the server
BAD = [("/generate", ("cat", 201, 0, 1.0, "ddim", "cosine", "emoji-exact")),
       ("/generate", ("cat", 5, 1.5, 1.0, "ddim", "cosine", "emoji-exact")),
       ("/generate", ("x" * 10_000, 5, 0, 1.0, "ddim", "cosine", "emoji-exact")),
       ("/generate", ("cat", 5, 0, float("nan"), "ddim", "cosine", "emoji-exact")),
       ("/generate", ("cat", 5, 0, 1.0, "ddim", "cosine", "../../etc/passwd")),
       ("/compare", ("cat", 0, "emoji-exact", [{"steps": 10}] * 5)),
       ("/compare", ("cat", 0, "emoji-exact", [{"scheduler": "heun", "steps": 200, "guidance": 2}] * 4)),
       ("/memorize", ("cat", 0, 201, 3.0))]
HEAVY = [{"scheduler": "ddim", "schedule": "cosine", "steps": 200, "guidance": 7.5}] * 4


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def workers_mb(pid: int) -> list[float]:
    """RSS of the app's sampling worker processes (ui/sampling_pool.py), from Linux /proc."""
    from bench_load import children

    kids = [k for k in children(pid) if "resource_tracker" not in _cmdline(k)]
    return [rss_mb(k) for k in kids]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


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
    calls = errors = faults = refused = served_bad = 0
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        print(f"app up in {startup:.1f} s; RSS at start {rss_mb(proc.pid):.0f} MB", flush=True)
        start = time.perf_counter()
        columns = [{"scheduler": "ddim", "schedule": "cosine", "steps": 20},
                   {"scheduler": "euler", "schedule": "linear", "steps": 20}]
        for k in range(1, args.calls + 1):
            prompt = PROMPTS[k % min(args.prompts, len(PROMPTS))]
            jobs = [(prompt, 50, 10_000 + k, 1.0, "ddim", "cosine", "emoji-exact", "/generate")]
            if k % 10 == 0:
                jobs += [(300 + k % 600, ["linear", "cosine"], k, "/forward_plots"),
                         (prompt, k, "emoji-exact", columns, "/compare")]
            for *job_args, api_name in jobs:
                calls += 1
                try:
                    client.predict(*job_args, api_name=api_name)
                except Exception:  # noqa: BLE001 - counted: the goal is none
                    errors += 1
            if k % 25 == 0:
                endpoint, bad_args = BAD[(k // 25) % len(BAD)]
                try:
                    client.predict(*bad_args, api_name=endpoint)
                    served_bad += 1
                except Exception:  # noqa: BLE001 - a refusal is what we want
                    refused += 1
            if k % 50 == 0:  # a heavy Compare, cancelled while it runs (a Stop, a closed tab)
                job = client.submit("cat", k, "emoji-unet", HEAVY, api_name="/compare")
                time.sleep(0.5)
                job.cancel()
                faults += 1
            if k % args.every == 0:
                rows.append((k, rss_mb(proc.pid), workers_mb(proc.pid)))
                print(f"after {k:4d} calls: RSS {rows[-1][1]:7.0f} MB, its sampling workers "
                      f"{' + '.join(f'{mb:.0f}' for mb in rows[-1][2]) or 'none'} MB   "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
        peak, final = rss_mb(proc.pid, "VmHWM"), rss_mb(proc.pid)
    finally:
        stop_app(proc)
    print(f"load held: {calls} calls, {errors} errors; faults survived: {faults} cancelled heavy Compares; "
          f"bad inputs: {refused} refused, {served_bad} served (goal 0); RSS peak {peak:.0f} MB, "
          f"final {final:.0f} MB")
    if len(rows) >= 2:
        first, last = rows[0][1], rows[-1][1]
        print(f"RSS after {rows[-1][0]} calls / after {rows[0][0]}: {last / first:.3f} "
              f"({last - first:+.0f} MB; goal: within 10 %)")
        if rows[0][2] and len(rows[0][2]) == len(rows[-1][2]):
            first, last = sum(rows[0][2]), sum(rows[-1][2])
            print(f"sampling workers together: {last / first:.3f} ({last - first:+.0f} MB; a replaced worker "
                  f"starts afresh)")


if __name__ == "__main__":
    main()
