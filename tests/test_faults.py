"""Faults under classroom use: Stop / closed tabs free the worker, a failing model or an out-of-memory
error reaches only its user as a clear message, and no user ever sees another's frames or uploads.

The app runs in this process on a free 127.0.0.1 port, so the tests can read the live run counters
(``denoise_tab.RUN_STATS``) and swap a model loader for one that fails.
"""

from __future__ import annotations


import dataclasses
import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from conftest import launch_chromium

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from diffusion_viz.errors import ModelLoadError  # noqa: E402
from diffusion_viz.models import registry  # noqa: E402
from diffusion_viz.ui import denoise_tab  # noqa: E402
from diffusion_viz.ui.cache import RESULTS  # noqa: E402

LONG = 200  # steps (the most the Steps slider allows); with a slowed model this streams for ~10 s
STATS = denoise_tab.RUN_STATS


@pytest.fixture
def slow_model(monkeypatch):
    """The 64x64 exact model, slowed to ~50 ms a step, so a run is still going when it is cancelled."""
    model = registry.get_model("emoji-exact")
    fast = model.predict

    def slow(*args, **kwargs):
        time.sleep(0.05)
        return fast(*args, **kwargs)
    monkeypatch.setattr(model, "predict", slow)
    return model


@pytest.fixture(scope="module")
def server():
    import torch

    from diffusion_viz.runtime import configure_torch_threads
    from diffusion_viz.ui.app import start_server

    threads = torch.get_num_threads()  # put back afterwards: a process-wide setting
    configure_torch_threads()
    demo, url = start_server()
    try:
        yield url
    finally:
        demo.close()
        torch.set_num_threads(threads)


@pytest.fixture
def client(server):
    c = Client(server, verbose=False)
    yield c
    c.close()


def wait_for(cond, timeout: float, interval: float = 0.01) -> float:
    """Poll ``cond`` until true; returns the seconds it took (fails the test after ``timeout``)."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s: {STATS}")
        time.sleep(interval)
    return time.monotonic() - start


def short_run(client, seed: int, model: str = "emoji-exact-32"):
    return client.predict("cat", 3, seed, 1.0, "ddim", "cosine", model, api_name="/generate")


def start_long_runs(server, seeds):
    """One long run per seed, each from its own client (session), streaming frames when this returns."""
    jobs = [Client(server, verbose=False).submit("", LONG, s, 1.0, "ddim", "cosine", "emoji-exact",
                                                 api_name="/generate") for s in seeds]
    wait_for(lambda: STATS["active"] >= len(seeds), 30)
    frames = STATS["frames"]
    wait_for(lambda: STATS["frames"] >= frames + 10, 30)  # they are streaming frames now
    assert STATS["frames"] >= frames + 10 and STATS["active"] >= len(seeds)  # really started
    return jobs


# Timing goals (cancel -> worker free in well under a second) are printed, not asserted: on a shared
# 2-core machine wall-clock limits under a few seconds fail for reasons that are not bugs. What is
# asserted is what a broken cancel changes: the runs stop early (far fewer than LONG frames each, where
# uncancelled they would run all LONG steps in ~10 s) and make no frame after they were closed. The
# 30-second waits only guard against a hang.
HANG_S = 30


def test_stop_cancels_the_run_and_frees_the_worker(server, client, slow_model):
    short_run(client, 9001)  # warm: this request's own cost, measured below
    t = time.monotonic()
    short_run(client, 9002)
    own = time.monotonic() - t

    before = STATS["frames"]
    jobs = start_long_runs(server, [101, 102])  # both sampling workers are busy now
    t0 = time.monotonic()
    for job in jobs:
        job.cancel()  # what the Stop button does
    wait_for(lambda: STATS["active"] == 0, HANG_S)
    stopped = time.monotonic() - t0  # Job.cancel() returns once the server has handled the cancel
    frames = STATS["frames"]
    out = short_run(client, 9003)  # needs a free worker
    total = time.monotonic() - t0
    time.sleep(0.3)
    print(f"cancel -> generator closed in {stopped:.3f} s; cancel -> next run done in {total:.2f} s "
          f"(its own time {own:.2f} s)")
    assert frames - before < LONG  # two runs of LONG steps were closed early: together < one run's frames
    assert STATS["frames"] == frames + 3  # the long runs produced nothing after they were closed
    assert out[2]["frames"] == 3
    assert all(job.done() for job in jobs)


def test_closing_the_connection_cancels_the_run(server, slow_model):
    """A closed tab: the browser's event stream goes away without a cancel request."""
    session = "closedtab" + str(time.monotonic_ns())
    base = server.rstrip("/") + "/gradio_api"
    with httpx.Client(timeout=30) as http:
        info = http.get(f"{server.rstrip('/')}/config").json()
        fn_index = next(d["id"] for d in info["dependencies"] if d.get("api_name") == "generate")
        body = {"data": ["", LONG, 55, 1.0, "ddim", "cosine", "emoji-exact"], "fn_index": fn_index,
                "session_hash": session, "event_data": None, "trigger_id": None}
        assert http.post(f"{base}/queue/join", json=body).status_code == 200
        frames, streaming = STATS["frames"], False
        with http.stream("GET", f"{base}/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if STATS["frames"] > frames + 10:
                    streaming = STATS["active"] >= 1
                    break  # frames are streaming: now close the tab
        assert streaming  # the run really started before the tab was closed
    stopped = wait_for(lambda: STATS["active"] == 0, HANG_S)
    print(f"closed connection -> generator closed in {stopped:.3f} s")
    made = STATS["frames"] - frames
    assert made < LONG  # closed early: an unclosed run would make all LONG frames
    time.sleep(0.3)
    assert STATS["frames"] - frames == made  # and nothing after it was closed


def _broken(info, exc):
    def load():
        raise exc
    return dataclasses.replace(info, load=load)


@pytest.mark.parametrize("exc, words", [
    (ModelLoadError("Could not load the model 'emoji-exact-32': the download is not allowed offline."),
     "could not load"),
    (MemoryError(), "out of memory"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out of memory"),
    (ZeroDivisionError("a bug"), "something went wrong"),
])
def test_a_failing_model_gives_a_clear_message_and_others_keep_working(client, monkeypatch, exc, words):
    RESULTS.clear()
    monkeypatch.setitem(registry.MODELS, "emoji-exact-32", _broken(registry.MODELS["emoji-exact-32"], exc))
    with pytest.raises(AppError) as err:
        short_run(client, 4242, model="emoji-exact-32")
    message = str(err.value).lower()
    assert words in message and "traceback" not in message
    assert short_run(client, 4242, model="emoji-exact")[2]["frames"] == 3  # the app still serves
    monkeypatch.undo()
    assert short_run(client, 4242, model="emoji-exact-32")[2]["frames"] == 3  # and recovers


def test_torch_out_of_memory_during_sampling_is_a_clear_message(client, monkeypatch):
    import torch

    RESULTS.clear()
    model = registry.get_model("emoji-exact-32")

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    monkeypatch.setattr(model, "predict", oom)
    with pytest.raises(AppError) as err:
        short_run(client, 77, model="emoji-exact-32")
    assert "out of memory" in str(err.value).lower()
    monkeypatch.undo()
    assert short_run(client, 77, model="emoji-exact-32")[2]["frames"] == 3


def test_two_users_get_only_their_own_frames_and_files(server):
    """Two clients run at the same time with different prompts: each gets its own run."""
    RESULTS.clear()
    results = {}

    def user(prompt, seed):
        c = Client(server, verbose=False)
        try:
            args = (prompt, 30, seed, 1.0, "ddim", "cosine", "emoji-exact")
            results[prompt] = c.predict(*args, api_name="/generate")
            results[prompt + " files"] = c.predict(*args, api_name="/downloads")
        finally:
            c.close()
    threads = [threading.Thread(target=user, args=a) for a in (("rocket", 1), ("pizza", 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    rocket, pizza = results["rocket"], results["pizza"]
    assert rocket[2]["conditioning"]["prompt"] == "rocket" and pizza[2]["conditioning"]["prompt"] == "pizza"
    assert rocket[2]["settings"]["seed"] == 1 and pizza[2]["settings"]["seed"] == 2
    a = json.loads(rocket[0])["columns"][0]
    b = json.loads(pizza[0])["columns"][0]
    assert a["final"] != b["final"] and a["strips"][0]["x0"] != b["strips"][0]["x0"]
    assert not np.array_equal(np.asarray(Image.open(rocket[1])), np.asarray(Image.open(pizza[1])))
    rocket_files, pizza_files = results["rocket files"], results["pizza files"]
    assert len(rocket_files) == len(pizza_files) == 2 and set(rocket_files).isdisjoint(pizza_files)
    assert open(rocket_files[0], "rb").read() != open(pizza_files[0], "rb").read()


def test_forward_state_is_per_session(server, tmp_path):
    """The forward tab keeps the photo in per-session state: another client never gets it."""
    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    Image.new("RGB", (32, 32), (255, 0, 0)).save(red)
    Image.new("RGB", (32, 32), (0, 0, 255)).save(blue)
    a, b = Client(server, verbose=False), Client(server, verbose=False)
    try:
        ra = a.predict(handle_file(str(red)), 0, ["cosine"], 0, -1, -1, api_name="/forward_noise")
        rb = b.predict(handle_file(str(blue)), 0, ["cosine"], 0, -1, -1, api_name="/forward_noise")
        assert ra[5]["schedules"][0]["rgb"] == [255, 0, 0] and rb[5]["schedules"][0]["rgb"] == [0, 0, 255]
        again = a.predict(handle_file(str(red)), 10, ["cosine"], 0, -1, -1, api_name="/forward_noise")
        assert again[5]["schedules"][0]["rgb"] == [255, 0, 0]
    finally:
        a.close()
        b.close()


def test_files_outside_the_cache_and_examples_are_not_served(server, tmp_path):
    """Only gradio's cache (uploads/outputs) and the example photos are served; guessing fails."""
    from diffusion_viz.ui.logic import example_photos

    secret = tmp_path / "secret.txt"
    secret.write_text("teacher's notes")
    own_result = Path(RESULTS.new_directory()) / "diffusion.gif"  # the result cache's folder: gradio
    own_result.write_bytes(b"GIF89a another user's run")  # serves copies of these, never this folder
    base = server.rstrip("/") + "/gradio_api/file="
    with httpx.Client(timeout=10) as http:
        # Served: an upload (gradio's cache) and an example photo, byte for byte.
        upload = tmp_path / "mine.png"
        Image.new("RGB", (5, 3), (1, 2, 3)).save(upload)
        with open(upload, "rb") as fh:
            resp = http.post(server.rstrip("/") + "/gradio_api/upload",
                             files={"files": ("mine.png", fh, "image/png")})
        assert resp.status_code == 200, resp.text
        got = http.get(base + resp.json()[0])
        assert got.status_code == 200 and got.content == upload.read_bytes()
        photos = example_photos()
        assert photos, "assets/examples/*.png ship with the app"
        got = http.get(base + photos[0])
        assert got.status_code == 200 and got.content == Path(photos[0]).read_bytes()

        # Refused: files that do exist, outside those folders.
        for path in (str(secret), "/etc/passwd", str(registry.__file__), "../../../../etc/passwd",
                     str(own_result)):
            assert Path("/etc/passwd" if path.startswith("..") else path).is_file(), path
            resp = http.get(base + path)
            assert resp.status_code in (403, 404), (path, resp.status_code)
            assert "teacher" not in resp.text and "root:" not in resp.text and "user's run" not in resp.text
    shutil.rmtree(own_result.parent, ignore_errors=True)


def test_uploads_above_the_cap_are_refused(server, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\0" * (11 * 2**20))
    with httpx.Client(timeout=30) as http:
        with open(big, "rb") as fh:
            resp = http.post(server.rstrip("/") + "/gradio_api/upload", files={"files": ("big.png", fh, "image/png")})
    assert resp.status_code == 413 or "size" in resp.text.lower()


@pytest.mark.browser
def test_a_waiting_user_sees_their_queue_position_in_the_browser(server, slow_model):
    """Both sampling workers busy and one request waiting: a student who clicks Generate sees "queue"."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium not installed at /usr/bin/chromium")
    clients = [Client(server, verbose=False) for _ in range(3)]  # three other students, one session each
    jobs = [c.submit("", LONG, s, 1.0, "ddim", "cosine", "emoji-exact", api_name="/generate")
            for c, s in zip(clients, (201, 202, 203))]
    try:
        wait_for(lambda: STATS["active"] >= 2, 30)
        frames = STATS["frames"]
        wait_for(lambda: STATS["frames"] >= frames + 10, 30)  # both workers really are sampling
        with playwright.sync_playwright() as p:
            browser = launch_chromium(p)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(server)
                page.wait_for_selector("#dv-generate")
                page.click("#dv-generate")
                page.wait_for_function("/queue[:\\s]*\\d+\\s*\\/\\s*\\d+/i.test(document.body.innerText)",
                                       timeout=15000)
                import re

                shown = re.search(r"queue[:\s]*\d+\s*/\s*\d+", page.inner_text("body"), re.I).group(0)
                print(f"the waiting user sees: {shown!r}")
            finally:
                browser.close()
    finally:
        for job in jobs:
            job.cancel()
        for c in clients:
            c.close()
    assert wait_for(lambda: STATS["active"] == 0, 30) < 30
