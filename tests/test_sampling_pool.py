"""Denoise's runs in worker processes (ui/sampling_pool.py).

A pooled run sends exactly what the server's own process would (every pooled model, both endpoints'
ways: gradio's outputs and the route's lean lines, samplers with N, 2N-1 and N+1 frames); Stop ends the
run in the worker and frees it; a worker that dies is replaced and its run ends with words; the time
limit holds there too; a launched server serves the route and /generate from its workers and says
how many are ready; workers end with the server, even one that is killed.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch

from diffusion_viz.models.registry import MODELS
from diffusion_viz.ui import atlas, denoise_tab, logic, run_route, sampling_pool
from diffusion_viz.ui.cache import RESULTS, run_key

ROOT = Path(__file__).resolve().parents[1]
POOLED = ["emoji-exact", "emoji-exact-32", "emoji-unet"]  # the menu's models without Stable Diffusion's views


@pytest.fixture(scope="module")
def pool():
    """One worker for the module (models load in it at their first run)."""
    started = sampling_pool.start(1, threads=torch.get_num_threads())  # the server's threads: the same floats
    assert started.wait_ready(120), "the worker did not start"
    yield started
    sampling_pool.stop()


@pytest.fixture
def use_pool(pool):
    """This test's runs go to the worker (when it is idle and ready); a cleared cache."""
    RESULTS.clear()
    sampling_pool.POOL = pool
    assert pool.wait_ready(120)
    yield pool
    sampling_pool.POOL = None
    RESULTS.clear()


def _outputs(args, lean=False):
    """Every message of one run, as run_outputs yields them (route=lean: the route's way)."""
    RESULTS.clear()
    return list(denoise_tab.run_outputs(*args, first_send=0.0, route=lean, lean=lean))


def _view(messages, lean=False):
    """What a run showed, independent of timing: its frames decoded from the finished payload (how a run
    is cut into streamed chunks depends on the clock), the frames' numbers, the finished picture, summary,
    conditioning and status (timings blanked). For the route's lean stream, the chunks it streamed plus
    the rest its last line carries must decode to the same frames."""
    final = messages[-1]
    payload = json.loads(final[0])
    column = payload["columns"][0]
    alpha_bars = [f["alpha_bar"] for f in column["frames"]]
    frames = atlas.decode_column(column["strips"], alpha_bars)
    if lean:
        streamed = [json.loads(m[0])["columns"][0]["strips"] for m in messages[:-1]
                    if isinstance(m[0], str) and json.loads(m[0])["mode"] in ("reset", "append")]
        rest = json.loads(final[6])
        assert rest["sent"] == sum(c["count"] for chunks in streamed for c in chunks)
        whole = atlas.decode_column([c for chunks in streamed for c in chunks] + rest["columns"][0]["strips"],
                                    alpha_bars)
        assert all(np.array_equal(whole[k], frames[k]) for k in frames)
    summary = {k: v for k, v in final[2].items() if k not in ("seconds", "elapsed_s", "first_frame_s")}
    return ({k: v.tobytes() for k, v in frames.items()}, {k: v for k, v in column.items() if k != "strips"},
            payload["key"], final[1].tobytes(), summary, final[3], re.sub(r"in \d+\.\d+ s", "in … s", final[4]))


@pytest.mark.parametrize("model_name", POOLED)
@pytest.mark.parametrize("scheduler", ["ddim", "heun", "pndm"])
def test_a_pooled_run_sends_what_the_server_would(use_pool, model_name, scheduler):
    args = ("cat", 12, 31, 3.0, scheduler, "cosine", model_name)
    assert sampling_pool.pooled(model_name, logic.load_model(model_name))
    for lean in (False, True):  # gradio's /generate, then the route's lean lines
        sampling_pool.POOL = None
        here = _outputs(args, lean)
        sampling_pool.POOL = use_pool
        worker = use_pool.workers[0]
        runs, stats = worker.runs, dict(denoise_tab.RUN_STATS)
        there = _outputs(args, lean)
        assert worker.runs == runs + 1, "the run was not made in the worker"
        assert denoise_tab.RUN_STATS["runs"] == stats["runs"] + 1
        frames = len(json.loads(there[-1][0])["columns"][0]["frames"])
        assert frames == {"ddim": 12, "heun": 23, "pndm": 13}[scheduler]
        assert denoise_tab.RUN_STATS["frames"] == stats["frames"] + frames
        assert denoise_tab.RUN_STATS["active"] == stats["active"] == 0
        assert _view(there, lean) == _view(here, lean)
        assert len(there[-1]) == (7 if lean else 6)
        assert RESULTS.get(run_key(model_name, logic.make_settings(*args[:6]))) is not None  # kept by the server


def test_latent_models_keep_their_runs_in_the_server():
    class LatentModel:  # what ui/sd_view.is_sd looks for: a VAE decoder, a latent preview, a tokenizer
        decode = to_rgb = tokens = staticmethod(lambda *a: None)

    assert not sampling_pool.pooled("emoji-exact", LatentModel())  # decode-on-demand needs the run here
    assert not sampling_pool.pooled("a checkpoint a user typed", logic.load_model("emoji-exact"))
    assert set(POOLED) <= set(MODELS)


def _wait(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_stop_ends_the_run_in_the_worker_and_frees_it(use_pool):
    worker = use_pool.workers[0]
    frames = denoise_tab.RUN_STATS["frames"]
    lines = run_route.player_lines({"prompt": "cat", "steps": "200", "seed": "5", "model": "emoji-unet", "lean": "1"})
    assert json.loads(next(lines))["mode"] == "start"
    assert json.loads(next(lines))["mode"] == "reset"  # the first picture: the run is under way in the worker
    assert use_pool.take() is None  # busy
    lines.close()  # what a closed connection or Stop does
    assert _wait(lambda: worker in use_pool._idle), "the worker did not come back after the stop"
    assert denoise_tab.RUN_STATS["active"] == 0
    assert denoise_tab.RUN_STATS["frames"] - frames < 200  # it stopped long before the end
    runs = worker.runs
    after = _outputs(("cat", 10, 6, 1.0, "ddim", "cosine", "emoji-exact"))
    assert worker.runs == runs + 1 and len(json.loads(after[-1][0])["columns"][0]["frames"]) == 10


def test_a_worker_that_dies_is_replaced_and_its_run_ends_with_words(use_pool):
    worker = use_pool.workers[0]
    replaced = use_pool.replaced
    lines = run_route.player_lines({"prompt": "cat", "steps": "200", "seed": "8", "model": "emoji-unet", "lean": "1"})
    next(lines), next(lines)
    os.kill(worker.process.pid, signal.SIGKILL)
    with pytest.raises(sampling_pool.WorkerLost) as lost:
        for _ in lines:
            pass
    assert run_route.message(lost.value) == "The sampler's process ended in the middle of this run. Press Generate again."
    assert use_pool.replaced == replaced + 1 and worker not in use_pool.workers
    assert not worker.process.is_alive()
    # until the new worker is ready, runs are made here, and right
    here = _outputs(("cat", 10, 9, 1.0, "ddim", "cosine", "emoji-exact"))
    assert len(json.loads(here[-1][0])["columns"][0]["frames"]) == 10
    assert use_pool.wait_ready(120)
    new = use_pool.workers[0]
    again = _outputs(("cat", 10, 9, 1.0, "ddim", "cosine", "emoji-exact"))
    assert new.runs == 1 and _view(again) == _view(here)


def test_the_time_limit_holds_in_the_worker(use_pool, monkeypatch):
    import dataclasses

    monkeypatch.setattr(denoise_tab, "LIMITS", dataclasses.replace(denoise_tab.LIMITS, run_seconds=0))
    worker = use_pool.workers[0]
    with pytest.raises(gr.Error) as stopped:
        _outputs(("cat", 50, 10, 1.0, "ddim", "cosine", "emoji-unet"))
    from diffusion_viz.limits import time_limit_message

    assert stopped.value.title == "Stopped" and stopped.value.message == time_limit_message()  # the server's words
    assert _wait(lambda: worker in use_pool._idle)


def _get(url):
    with urllib.request.urlopen(url, timeout=60) as resp:
        return resp.read().decode()


def test_a_launched_server_serves_both_endpoints_from_its_worker(use_pool):
    from gradio_client import Client

    from diffusion_viz.ui.app import start_server

    demo, url = start_server(warm=False)
    try:
        assert json.loads(_get(url + "dv/ready")) == {"workers": 1, "ready": 1}
        worker = use_pool.workers[0]
        runs = worker.runs
        lines = [json.loads(line) for line in _get(url + "dv/run?prompt=dog&steps=20&seed=41&lean=1").splitlines()]
        assert [line["mode"] for line in lines][0] == "start" and lines[-1]["mode"] == "full"
        assert len(lines[-1]["columns"][0]["frames"]) == 20
        client = Client(url, verbose=False, download_files=False)
        out = client.predict("dog", 20, 42, 1.0, "ddim", "cosine", "emoji-exact", api_name="/generate")
        assert out[2]["frames"] == 20 and "Done: 20 steps" in out[4]
        assert worker.runs == runs + 2, "a run was not made in the worker"
    finally:
        demo.close()
    sampling_pool.POOL = None
    assert json.loads(_get_ready_without_pool()) == {"workers": 0, "ready": 0}


def _get_ready_without_pool():
    from starlette.testclient import TestClient
    from starlette.applications import Starlette

    app = Starlette()
    run_route.install(app)
    return TestClient(app).get("/dv/ready").text


def test_how_many_workers_app_py_starts(monkeypatch):
    from diffusion_viz.ui.serving import Serving

    monkeypatch.setenv("DIFFUSION_VIZ_DEVICE", "cpu")
    monkeypatch.setenv("DIFFUSION_VIZ_CONCURRENCY", "2")
    for value, expected in (("", 2), ("0", 0), ("1", 1), ("5", 2), ("many", 2)):
        monkeypatch.setenv("DIFFUSION_VIZ_PROCESSES", value)
        assert Serving.from_env().processes == expected, value


def test_workers_end_with_their_server_even_a_killed_one(tmp_path):
    script = textwrap.dedent("""
        import sys, time
        from diffusion_viz.ui import sampling_pool
        if __name__ == "__main__":
            pool = sampling_pool.start(1)
            assert pool.wait_ready(120)
            print(" ".join(str(w.process.pid) for w in pool.workers), flush=True)
            time.sleep(600)
    """)
    path = tmp_path / "server.py"
    path.write_text(script)
    server = subprocess.Popen([sys.executable, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in server.stdout.readline().split()]
        assert len(pids) == 1 and all(_alive(p) for p in pids)
        server.send_signal(signal.SIGKILL)  # no atexit, no cleanup: the workers see their pipe close
        server.wait(10)
        assert _wait(lambda: not any(_alive(p) for p in pids), 30), "the worker outlived its server"
    finally:
        server.kill()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_errors_cross_from_a_worker_with_their_words():
    """What a worker raises is raised in the server as the same kind of error, so the page says the same."""
    from diffusion_viz.errors import DiffusionVizError, UnknownNameError
    from diffusion_viz.ui.common import OUT_OF_MEMORY

    def crossed(exc):
        return sampling_pool._unpack(sampling_pool._pack(exc))

    oom = crossed(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"))
    assert isinstance(oom, torch.cuda.OutOfMemoryError) and run_route.message(oom) == OUT_OF_MEMORY
    limit = crossed(gr.Error("The run took too long.", title="Stopped"))
    assert isinstance(limit, gr.Error) and limit.title == "Stopped" and run_route.message(limit) == "The run took too long."
    unknown = UnknownNameError("model", "nope", ["emoji-exact"])  # its arguments do not survive pickling
    assert isinstance(crossed(unknown), DiffusionVizError)
    assert run_route.message(crossed(unknown)) == run_route.message(unknown)
    bug = crossed(KeyError("x"))
    assert isinstance(bug, KeyError)
