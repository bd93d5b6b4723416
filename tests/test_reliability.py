"""One careless or hostile user cannot hurt the class: the probes of the robustness audit, replayed
against ``python app.py`` started as its own process (as a teacher or a Space would run it).

- cancelled and disconnected work stops: the server's CPU time stops growing within 2 s;
- the concurrency limit bounds the work actually running (in-process, where the gate can be read);
- limit violations get the limit in the message; the server keeps serving;
- parallel 16-bit uploads keep the server's peak memory bounded (its high-water mark, VmHWM).

Measures CPU seconds and bytes, never wall-clock speed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from app_process import free_port, start_app, stop_app  # noqa: E402

pytestmark = pytest.mark.reliability
# Heavy work that is cheap to ask for: 4 columns x 200 steps of the trained UNet with guidance
# (1,600 model calls, exactly the per-request limit): ~60 s of CPU if nobody stops it.
HEAVY = [{"scheduler": "ddim", "schedule": "cosine", "steps": 200, "guidance": 7.5}] * 4


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def settles(pid: int, within: float = 2.0, window: float = 2.0, idle: float = 0.3) -> float:
    """Wait ``within`` s, then return the CPU seconds the server used over the next ``window`` s."""
    time.sleep(within)
    before = cpu_seconds(pid)
    time.sleep(window)
    return cpu_seconds(pid) - before


@pytest.fixture(scope="module")
def app():
    port = free_port()
    proc, _ = start_app(port)
    try:
        yield proc, f"http://127.0.0.1:{port}/"
    finally:
        stop_app(proc)


def client_for(url: str) -> Client:
    """A patient client: a busy 2-core server answers slowly, which is not what these tests are about."""
    return Client(url, verbose=False, httpx_kwargs={"timeout": 120})


def wait_idle(pid: int, limit: float = 60) -> None:
    """Earlier work (another test's) must be over before a measurement starts."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(1)
        if cpu_seconds(pid) - before < 0.15:
            return
    raise AssertionError("the server never went idle")


def test_cancelled_compare_memorize_and_downloads_free_the_cpu(app):
    proc, url = app
    wait_idle(proc.pid)
    client = client_for(url)
    jobs = [client.submit("cat", k, "emoji-unet", HEAVY, api_name="/compare") for k in range(4)]
    jobs += [client.submit("rocket", k, 200, 7.5, api_name="/memorize") for k in range(2)]
    jobs += [client.submit("", 200, k, 1.0, "heun", "cosine", "emoji-unet", api_name="/downloads")
             for k in range(2)]
    start = cpu_seconds(proc.pid)
    try:
        time.sleep(3)
        assert cpu_seconds(proc.pid) - start > 1.0, "the jobs were not running"
    finally:
        for job in jobs:
            job.cancel()
    used = settles(proc.pid)
    print(f"8 cancelled jobs: the server used {used:.2f} CPU s in the 2 s starting 2 s after the last cancel")
    assert used < 0.3, f"the server still used {used:.2f} CPU s in 2 s, 2 s after the last cancel"
    # and it still serves
    assert client.predict("cat", 5, 0, 1.0, "ddim", "cosine", "emoji-exact-32", api_name="/generate")[2]["frames"] == 5


CLIENT = textwrap.dedent("""
    import sys, time
    from gradio_client import Client
    c = Client(sys.argv[1], verbose=False, httpx_kwargs={"timeout": 120})
    cols = [{"scheduler": "ddim", "schedule": "cosine", "steps": 200, "guidance": 7.5}] * 4
    jobs = [c.submit("cat", k, "emoji-unet", cols, api_name="/compare") for k in range(3)]
    jobs.append(c.submit("", 200, 1, 1.0, "heun", "cosine", "emoji-unet", api_name="/generate"))
    print("submitted", flush=True)
    time.sleep(600)
""")


def test_a_killed_client_leaves_no_work_behind(app):
    proc, url = app
    wait_idle(proc.pid)
    client = subprocess.Popen([sys.executable, "-c", CLIENT, url], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert client.stdout.readline().strip() == "submitted"
        start = cpu_seconds(proc.pid)
        time.sleep(3)
        assert cpu_seconds(proc.pid) - start > 1.0, "the jobs were not running"
    finally:
        os.killpg(client.pid, signal.SIGKILL)  # the tab closes, the laptop lid shuts
        client.wait()
    used = settles(proc.pid, within=3.0)
    print(f"a killed client: the server used {used:.2f} CPU s in the 2 s starting 3 s after its death")
    assert used < 0.3, f"the server still used {used:.2f} CPU s in 2 s, 3 s after the client died"


@pytest.mark.parametrize("endpoint, args, words", [
    ("/generate", ("cat", 201, 0, 1.0, "ddim", "cosine", "emoji-exact"), "maximum value 200"),
    ("/compare", ("cat", 0, "emoji-exact", [{"steps": 10}] * 5), "at most 4 columns"),
    ("/compare", ("cat", 0, "emoji-exact", [{"scheduler": "heun", "steps": 200, "guidance": 2}] * 4),
     "needs 3,192 model calls; one request may use at most 1,600"),
    ("/compare", ("cat", 0, "emoji-exact", [{"steps": 201}]), "between 1 and 200"),
    ("/memorize", ("cat", 0, 201, 3.0), "between 1 and 200"),
    ("/downloads", ("cat", 1000, 0, 1.0, "ddim", "cosine", "emoji-exact"), "maximum value 200"),
    ("/generate", ("cat", 5, 1.5, 1.0, "ddim", "cosine", "emoji-exact"), "whole number"),
    ("/generate", ("cat", 5, 0, 1.0, "ddim", "cosine", "sd15"), "not in the list of choices"),
    ("/compare", ("cat", 0, "sd15", [{"steps": 10}]), "Unknown model 'sd15'"),
])
def test_limits_are_refused_with_the_limit_in_the_message(app, endpoint, args, words):
    _, url = app
    client = client_for(url)
    with pytest.raises(AppError) as exc:
        client.predict(*args, api_name=endpoint)
    message = str(exc.value)
    assert words in message and "&#x27;" not in message and "&lt;" not in message


def test_parallel_16_bit_uploads_keep_peak_memory_bounded(app, tmp_path):
    """Eight students upload a 111 KB 16-bit 7000x7000 PNG at once (before: +1.5 GB each, 8 at once
    7.6-9.0 GB and a cut-off response). Two decode at a time, each under 150 MB; what else grows is the
    eight sessions' photo and noise (~16 MB each) and up to four forward computations at once (~50 MB
    each): under 700 MB in all."""
    proc, url = app
    side = 7000
    x = np.arange(side, dtype=np.uint32)[None, :].repeat(side, 0)
    path = tmp_path / "sixteen.png"
    Image.fromarray(((x * 65535) // side).astype(np.uint16)).save(path)
    del x
    assert path.stat().st_size < 200_000
    wait_idle(proc.pid)
    clients = [client_for(url) for _ in range(8)]
    base_hwm = status_mb(proc.pid, "VmHWM")
    base_rss = status_mb(proc.pid, "VmRSS")
    results, errors = [], []

    def upload(c):
        try:
            out = c.predict(handle_file(str(path)), 300, ["linear"], 0, -1, -1, api_name="/forward_noise")
            results.append(out[5]["size"])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and results == [{"width": 1024, "height": 1024}] * 8
    grew = status_mb(proc.pid, "VmHWM") - max(base_hwm, base_rss)
    assert grew < 2 * 150 + 8 * 16 + 4 * 50 + 70, f"peak memory grew by {grew:.0f} MB"
    print(f"8 parallel 16-bit uploads: peak memory +{grew:.0f} MB")


def test_the_concurrency_limit_bounds_the_work_running():
    """In-process, where the gate can be read: six Compare jobs and two cancelled ones, two at a time."""
    from diffusion_viz.runtime import configure_torch_threads
    from diffusion_viz.ui.app import start_server
    from diffusion_viz.ui.serving import WORK

    configure_torch_threads(1)
    demo, url = start_server(warm=False)
    try:
        client = client_for(url)
        cols = [{"scheduler": "ddim", "schedule": "cosine", "steps": 60}] * 4
        cancelled = [client.submit("cat", k, "emoji-unet", HEAVY, api_name="/compare") for k in range(2)]
        time.sleep(1)
        for job in cancelled:
            job.cancel()
        WORK.peak = WORK.running
        jobs = [client.submit("cat", k, "emoji-unet", cols, api_name="/compare") for k in range(6)]
        seen = []
        while not all(j.done() for j in jobs):
            seen.append(WORK.running)
            time.sleep(0.02)
        assert all(len(j.result()["columns"]) == 4 for j in jobs)
        assert max(seen) <= 2 and WORK.peak <= 2 and max(seen) >= 1
    finally:
        demo.close()
        configure_torch_threads()
