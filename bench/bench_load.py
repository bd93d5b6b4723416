"""A classroom at once: 30 users press Generate together against a launched app.

    DIFFUSION_VIZ_THREADS=1 python bench/bench_load.py [--users 30] [--steps 50] [--timeout 180]

    DIFFUSION_VIZ_PROCESSES=0 ...   (every run in the server's own process, as before the sampling workers)
    ... --route-only [--repeat 4]   (only the player route's phases; the cold one 4 times, new seeds)

Starts ``python app.py`` on 127.0.0.1 on a free port (its own process, so the users below do not
share its interpreter), waits until its sampling worker processes have warmed up (``/dv/ready``,
ui/sampling_pool.py), then measures two ways in. CPU is printed for the app's process and, apart,
for its sampling workers.

The player's route (``/dv/run``, ui/run_route.py): what a page's player fetches at the click, as 30
plain HTTP clients (a browser's fetch costs the server the same). Latency is submit -> the finished
run's last line, i.e. every frame in the player; the first picture is printed too. Phases: lesson start
(30 users, the same default settings: one run is made, the rest wait for it or read the cache), cold
(30 different seeds: 30 real runs), cache hits (the same 30 again). Goal: 0 errors, p95 <= 1.5 s.

gradio's ``/generate`` through 30 ``gradio_client`` users (what an API script, and the rest of a page,
goes through). The clients run on the same 2 cores as the app (they used 2.6-3.0 s of CPU per phase):

0. lesson start: all users press Generate with the same default settings at once (the first runs
   are computed, the rest come from the result cache);
1. cold: every user asks for a different seed (no cache can help: 30 real runs, queued on the
   sampling workers), default model, 50 steps;
2. cache hits: the same 30 requests again (same model, prompt, seed, steps, sampler, schedule,
   guidance), served from the result cache.

Prints completions, errors, p50/p95 latency (submit -> final result) for each phase, the highest queue
position a user saw, and stops the app (its own process group only). Bounded: --users <= 100 and
every phase gives up after --timeout seconds. Goal for gradio's way on the 2-core machine: 0 errors,
p95 <= 10 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from app_process import free_port, start_app, stop_app  # noqa: E402


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (the app's sampling workers, ui/sampling_pool.py), from Linux /proc."""
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return kids


def cpu_seconds(pid: int | None, with_children: bool = False) -> float:
    """CPU time (user + system) used so far by a process (Linux /proc), or by this one; ``with_children``:
    and by its child processes that are running now."""
    if pid is not None and with_children:
        return cpu_seconds(pid) + sum(cpu_seconds(k) for k in children(pid))
    if pid is None:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def wait_for_workers(url: str, timeout: float) -> None:
    """Wait until the app's sampling worker processes have warmed up (``/dv/ready``, ui/sampling_pool.py):
    until then its runs are made in the server's own process, which is not what a class meets later."""
    import json
    import urllib.request

    start, state = time.monotonic(), None
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/dv/ready", timeout=5) as resp:
                state = json.load(resp)
        except OSError:  # (the routes are added a moment after the page answers)
            time.sleep(0.2)
            continue
        if state["ready"] >= state["workers"]:
            print(f"sampling worker processes: {state['workers']} (ready {time.monotonic() - start:.1f} s after the page)")
            return
        time.sleep(0.2)
    print(f"sampling worker processes: not ready after {timeout:.0f} s: {state}")


def run_users(name: str, threads, deadline: float, server_pid, latencies, errors) -> float:
    """Start every user's thread, wait for them (until ``deadline`` + 5 s), print completions and the CPU the
    app and these clients used; returns the phase's wall time."""
    cpu0, own0 = cpu_seconds(server_pid), cpu_seconds(None)
    all0 = cpu_seconds(server_pid, with_children=True) if server_pid else 0.0
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 5)
    wall = time.monotonic() - start
    server_cpu, own_cpu = cpu_seconds(server_pid) - cpu0, cpu_seconds(None) - own0
    workers_cpu = max(0.0, cpu_seconds(server_pid, with_children=True) - all0 - server_cpu) if server_pid else float("nan")
    print(f"\n{name}: {len(latencies)} completed, {len(errors)} errors, wall {wall:.1f} s")
    print(f"  CPU: app {server_cpu:.1f} s (its sampling workers {workers_cpu:.1f} s), these {len(threads)} clients "
          f"{own_cpu:.1f} s")
    return wall


def run_phase(name: str, clients, requests, timeout: float, server_pid: int | None = None) -> dict:
    """Every user submits at the same moment (a barrier); returns latencies, errors, max queue rank."""
    latencies, errors, ranks, pictures = [], [], [], []
    lock = threading.Lock()
    barrier = threading.Barrier(len(clients))
    deadline = time.monotonic() + timeout

    def user(client, args):
        barrier.wait()
        t0 = time.monotonic()
        try:
            job = client.submit(*args, api_name="/generate")
            picture = None
            while not job.done():
                if picture is None and any(isinstance(o, (list, tuple)) and len(o) > 2 and isinstance(o[2], dict)
                                           for o in job.outputs()):
                    picture = time.monotonic() - t0  # the finished picture is on screen (GIF/MP4 follow)
                if time.monotonic() > deadline:
                    job.cancel()
                    raise TimeoutError("no result before the phase's deadline")
                status = job.status()
                if status.rank is not None:
                    with lock:
                        ranks.append(status.rank)
                time.sleep(0.25)
            out = job.result()
            assert out[2]["frames"] == args[1], "wrong number of frames"
            with lock:
                latencies.append(time.monotonic() - t0)
                pictures.append(picture if picture is not None else latencies[-1])
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            with lock:
                errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    threads = [threading.Thread(target=user, args=(c, r), daemon=True) for c, r in zip(clients, requests)]
    wall = run_users(name, threads, deadline, server_pid, latencies, errors)
    if latencies:
        print(f"  latency p50 {pct(latencies, 0.5):.2f} s   p95 {pct(latencies, 0.95):.2f} s   "
              f"max {max(latencies):.2f} s   mean {statistics.mean(latencies):.2f} s")
        print(f"  time to the finished picture (before GIF/MP4) p50 {pct(pictures, 0.5):.2f} s   "
              f"p95 {pct(pictures, 0.95):.2f} s")
    if ranks:
        print(f"  queue position shown to waiting users: up to {max(ranks) + 1} (gradio status rank)")
    for e in sorted(set(errors))[:5]:
        print(f"  error: {e}")
    return {"latencies": latencies, "errors": errors, "wall": wall}


def route_phase(name: str, url: str, requests, timeout: float, server_pid: int | None = None) -> dict:
    """Every user asks the player's own route (what the page's player fetches at the click, ui/run_route.py)
    at the same moment; the latency is submit -> the finished run's last line (all frames in the player),
    and the time to the first line (the first picture). Plain HTTP: a browser's fetch, not a gradio client."""
    import http.client
    import json
    from urllib.parse import urlencode, urlsplit

    where = urlsplit(url)
    latencies, firsts, errors = [], [], []
    lock = threading.Lock()
    barrier = threading.Barrier(len(requests))

    def user(args):
        prompt, steps, seed, guidance, scheduler, schedule, model = args
        query = urlencode(dict(prompt=prompt, steps=steps, seed=seed, guidance=guidance, scheduler=scheduler,
                               schedule=schedule, model=model))
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=timeout)
        barrier.wait()
        t0 = time.monotonic()
        try:
            conn.request("GET", f"/dv/run?{query}")
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:120]!r}")
            first, last = None, None
            for line in resp:
                last = json.loads(line)
                if first is None and last.get("mode") != "start":  # (the start line only names the run)
                    first = time.monotonic() - t0
            if not last or last.get("mode") != "full" or len(last["columns"][0]["frames"]) != int(steps):
                raise RuntimeError(f"the last line is not the finished run: {str(last)[:120]}")
            with lock:
                latencies.append(time.monotonic() - t0)
                firsts.append(first)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            with lock:
                errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
        finally:
            conn.close()

    threads = [threading.Thread(target=user, args=(r,), daemon=True) for r in requests]
    wall = run_users(name, threads, time.monotonic() + timeout, server_pid, latencies, errors)
    if latencies:
        print(f"  whole run in the player p50 {pct(latencies, 0.5):.2f} s   p95 {pct(latencies, 0.95):.2f} s   "
              f"max {max(latencies):.2f} s;   first picture p50 {pct(firsts, 0.5):.2f} s   p95 {pct(firsts, 0.95):.2f} s")
    for e in sorted(set(errors))[:5]:
        print(f"  error: {e}")
    return {"latencies": latencies, "errors": errors, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description="30 concurrent users against a launched app.")
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--model", default="emoji-exact")
    parser.add_argument("--timeout", type=float, default=180.0, help="per phase, seconds")
    parser.add_argument("--url", help="use an app that is already running instead of starting one")
    parser.add_argument("--route-only", action="store_true", help="only the player route's phases")
    parser.add_argument("--repeat", type=int, default=1, help="run the route's cold phase this many times (new seeds)")
    args = parser.parse_args()
    users = max(1, min(args.users, 100))

    from gradio_client import Client

    proc, pid = None, None
    if args.url:
        url = args.url
    else:
        port = free_port()
        proc, seconds = start_app(port)
        print(f"app up in {seconds:.1f} s (pid {proc.pid})")
        pid = proc.pid
        url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_workers(url, args.timeout)
        # What a class's browsers do first: the player's route (ui/run_route.py). Other seeds than the gradio
        # phases below, so neither finds the other's runs in the result cache.
        same = [("cat", args.steps, 1, 1.0, "ddim", "cosine", args.model)] * users
        r_lesson = route_phase(f"player route, lesson start ({users} users, same default settings)", url, same,
                               args.timeout, pid)
        for rep in range(max(1, args.repeat)):
            requests = [("cat", args.steps, 2000 + 100 * rep + k, 1.0, "ddim", "cosine", args.model)
                        for k in range(users)]
            r_cold = route_phase(f"player route, cold ({users} different seeds, {args.steps} steps, {args.model})",
                                 url, requests, args.timeout, pid)
        r_hits = route_phase("player route, cache hits (the same requests again)", url, requests, args.timeout, pid)
        route_errors = len(r_lesson["errors"]) + len(r_cold["errors"]) + len(r_hits["errors"])
        worst = max(pct(r["latencies"], 0.95) if r["latencies"] else float("inf") for r in (r_lesson, r_cold, r_hits))
        print(f"\nsummary, player route: errors {route_errors}; p95 lesson start {pct(r_lesson['latencies'], 0.95):.2f} s,"
              f" cold {pct(r_cold['latencies'], 0.95):.2f} s, cache hits {pct(r_hits['latencies'], 0.95):.2f} s -> "
              f"{'OK' if not route_errors and worst <= 1.5 else 'over goal'} (goal: 0 errors, p95 <= 1.5 s)")
        if args.route_only:
            return

        # download_files=False: like a browser, a user fetches the GIF/MP4 only when clicking them.
        clients = [Client(url, verbose=False, download_files=False) for _ in range(users)]
        same = [("cat", args.steps, 0, 1.0, "ddim", "cosine", args.model)] * users
        lesson = run_phase(f"lesson start ({users} users press Generate with the same default settings)",
                           clients, same, args.timeout, pid)
        requests = [("cat", args.steps, 1000 + k, 1.0, "ddim", "cosine", args.model) for k in range(users)]
        cold = run_phase(f"cold ({users} users, {users} different seeds, {args.steps} steps, {args.model})",
                         clients, requests, args.timeout, pid)
        hits = run_phase(f"cache hits (the same {users} requests again)", clients, requests, args.timeout, pid)
        single = []
        for k in range(5):  # one user alone, a request the cache already holds
            t0 = time.monotonic()
            clients[0].predict(*requests[k], api_name="/generate")
            single.append(time.monotonic() - t0)
        print(f"\nsingle cache hit (one user alone, 5 requests): median {statistics.median(single) * 1000:.0f} ms")
        for c in clients:
            c.close()
        errors = len(lesson["errors"]) + len(cold["errors"]) + len(hits["errors"])
        ok = not errors and pct(lesson["latencies"], 0.95) <= 10
        print(f"\nsummary: completions {len(lesson['latencies'])}+{len(cold['latencies'])}+{len(hits['latencies'])}"
              f" of {3 * users}, errors {errors}; lesson start p50 {pct(lesson['latencies'], 0.5):.2f} s "
              f"p95 {pct(lesson['latencies'], 0.95):.2f} s -> {'OK' if ok else 'over goal'} (goal: 0 errors, "
              f"p95 <= 10 s); all-different cold p50 {pct(cold['latencies'], 0.5):.2f} s "
              f"p95 {pct(cold['latencies'], 0.95):.2f} s; cache hits under load p50 {pct(hits['latencies'], 0.5):.2f} s"
              f" p95 {pct(hits['latencies'], 0.95):.2f} s, alone {statistics.median(single) * 1000:.0f} ms")
    finally:
        if proc is not None:
            stop_app(proc)


if __name__ == "__main__":
    main()
