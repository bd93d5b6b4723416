"""The serving boundary (ui/serving.py) and the limits table (limits.py), without a browser."""

import os
import threading
import time
from pathlib import Path

import pytest

from diffusion_viz.errors import InvalidInputError
from diffusion_viz.limits import LIMITS, Limits, check_cost, model_calls
from diffusion_viz.ui.serving import UploadJanitor, WorkGate


def test_the_gate_never_lets_more_than_its_size_run():
    gate, seen, lock = WorkGate(2), [], threading.Lock()

    def work():
        with gate.slot():
            with lock:
                seen.append(gate.running)
            time.sleep(0.02)

    threads = [threading.Thread(target=work) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(seen) == 10 and max(seen) <= 2 and gate.peak == 2 and gate.running == 0


def test_limits_come_from_one_table_with_operator_overrides():
    assert LIMITS == Limits()  # the test environment sets none
    raised = Limits.from_env({"DIFFUSION_VIZ_MAX_STEPS": "500", "DIFFUSION_VIZ_MAX_COLUMNS": "8"})
    assert (raised.steps, raised.columns, raised.model_calls) == (500, 8, 1600)
    with pytest.raises(InvalidInputError, match="DIFFUSION_VIZ_MAX_STEPS must be a whole number"):
        Limits.from_env({"DIFFUSION_VIZ_MAX_STEPS": "lots"})
    with pytest.raises(InvalidInputError, match="at least 1"):
        Limits.from_env({"DIFFUSION_VIZ_MAX_UPLOAD_MB": "0"})
    names = [row[2] for row in Limits().table()]
    assert len(names) == len(set(names)) == len(Limits.__dataclass_fields__)


def test_the_documented_table_is_the_real_one():
    """docs/API.md states every limit with its default and its setting."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "API.md").read_text()
    for what, value, setting in Limits().table():
        assert f"| {what} | {value} | `{setting}` |" in doc, (what, value, setting)


def test_model_calls_count_heun_pndm_and_guidance():
    from diffusion_viz.sampling import SampleSettings
    from diffusion_viz.ui.logic import run_cost

    assert run_cost(SampleSettings(prompt="cat", steps=50, scheduler="heun", guidance=7.5)) == 99 * 2
    assert run_cost(SampleSettings(prompt="", steps=50, scheduler="pndm", guidance=7.5)) == 51  # no prompt: no CFG
    assert run_cost(SampleSettings(prompt="cat", steps=50, scheduler="ddim", guidance=1.0)) == 50
    assert model_calls(10, True) == 20
    with pytest.raises(InvalidInputError, match="needs 1,601 model calls; one request may use at most 1,600"):
        check_cost(1601)


def test_the_janitor_keeps_the_folder_under_its_budget_oldest_first(tmp_path):
    files = []
    for k in range(5):
        f = tmp_path / f"sub{k % 2}" / f"f{k}.bin"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"x" * 2**20)
        os.utime(f, (1000 + k, 1000 + k))  # f0 oldest ... f4 newest
        files.append(f)
    janitor = UploadJanitor(tmp_path, budget_mb=2)
    assert janitor.sweep() <= 2 * 2**20
    assert [f.exists() for f in files] == [False, False, False, True, True] and janitor.removed == 3


def test_downloads_are_stored_once_in_gradios_cache(tmp_path, monkeypatch):
    """Issue: /downloads kept each GIF twice (our cache folder and gradio's copy of it)."""
    from gradio.utils import get_upload_folder

    from diffusion_viz.ui import denoise_tab
    from diffusion_viz.ui.cache import RESULTS

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    RESULTS.clear()
    seed = time.time_ns() % 10**9  # a run no earlier test session has made (their files may still be in /tmp)
    stem = f"cat-emoji-exact-32-ddim-cosine-4steps-seed{seed}"
    files = list(denoise_tab.make_downloads("cat", 4, seed, 1.0, "ddim", "cosine", "emoji-exact-32"))[-1]
    folder = Path(get_upload_folder()).resolve()
    assert folder == (tmp_path / "gradio").resolve()
    names = sorted(Path(f).name for f in files)
    assert names == [f"{stem}.gif", f"{stem}.mp4"]
    assert all(Path(f).resolve().is_relative_to(folder) for f in files)
    everywhere = list(Path("/tmp").rglob(f"{stem}.*"))
    assert sorted(p.resolve() for p in everywhere) == sorted(Path(f).resolve() for f in files)  # one copy each
    RESULTS.clear()


def test_the_app_queue_keeps_a_bounded_event_record_and_an_operator_setting_wins(monkeypatch):
    """gradio keeps 10,000 events and tabulates them after every event unless told otherwise (a server
    that runs all day grew); the app tells it 500 and every 50th event. An operator's value wins."""
    from diffusion_viz.ui.app import build_app, configure_queue

    for name in ("GRADIO_ANALYTICS_MAX_EVENTS", "GRADIO_ANALYTICS_CACHE_FREQUENCY"):
        monkeypatch.delenv(name, raising=False)
    queue = configure_queue(build_app())._queue
    assert (queue.ANALYTICS_MAX_EVENTS, queue.ANAYLTICS_CACHE_FREQUENCY) == (500, 50)
    monkeypatch.setenv("GRADIO_ANALYTICS_MAX_EVENTS", "20")
    assert configure_queue(build_app())._queue.ANALYTICS_MAX_EVENTS == 20


def test_a_session_keeps_one_copy_of_each_component_however_many_runs_it_makes():
    """gradio gave a component updated by gr.skip() a new id and then stored it again under that id with
    its value: every Generate left the whole player payload behind in the session (+0.2 MB a run, for as
    long as the tab was open). After five runs of one client the session holds no more components than
    the page has, and none of the old payloads."""
    from gradio_client import Client

    from diffusion_viz.runtime import configure_torch_threads
    from diffusion_viz.ui.app import start_server
    from diffusion_viz.ui.cache import RESULTS

    configure_torch_threads()
    RESULTS.clear()
    demo, url = start_server(warm=False)
    try:
        client = Client(url, verbose=False)
        for seed in range(5):  # new seeds: every run streams, none is a cache hit
            client.predict("cat", 8, 100 + seed, 1.0, "ddim", "cosine", "emoji-exact", api_name="/generate")
        session = demo.state_holder.session_data[client.session_hash]
        assert set(session.blocks_config.blocks) <= set(demo.default_config.blocks)
        assert set(session.config_values) <= set(demo.default_config.blocks)
        payloads = [c for c in session.config_values.values()
                    if isinstance(c.get("props", {}).get("value"), str) and '"strips"' in c["props"]["value"]]
        assert len(payloads) == 1  # the last run's, in the player's own entry
    finally:
        demo.close()
        RESULTS.clear()
