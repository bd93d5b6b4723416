"""``python app.py``: where it listens (flags > DIFFUSION_VIZ_* > GRADIO_SERVER_* > 127.0.0.1:7860).

Hugging Face Spaces and the gradio CLI set GRADIO_SERVER_NAME=0.0.0.0; an app that ignores it binds
127.0.0.1 inside the Space and nobody can reach it.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV_NAMES = ("DIFFUSION_VIZ_HOST", "DIFFUSION_VIZ_PORT", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT")


@pytest.fixture()
def app_module(monkeypatch):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    spec = importlib.util.spec_from_file_location("dv_app_main", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_default_is_this_machine_only(app_module):
    assert app_module.address([]) == ("127.0.0.1", 7860)


def test_gradio_variables_are_honoured(app_module, monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    assert app_module.address([]) == ("0.0.0.0", 7861)


def test_our_variables_beat_gradios_and_flags_beat_both(app_module, monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    monkeypatch.setenv("DIFFUSION_VIZ_HOST", "127.0.0.3")
    monkeypatch.setenv("DIFFUSION_VIZ_PORT", "8001")
    assert app_module.address([]) == ("127.0.0.3", 8001)
    assert app_module.address(["--host", "127.0.0.4"]) == ("127.0.0.4", 8001)
    assert app_module.address(["--port", "9000"]) == ("127.0.0.3", 9000)
    monkeypatch.setenv("DIFFUSION_VIZ_HOST", "")  # empty counts as unset
    assert app_module.address([])[0] == "0.0.0.0"


@pytest.mark.parametrize("bad", ["http", "0", "70000", "-1"])
def test_a_bad_port_is_a_clear_error(app_module, monkeypatch, capsys, bad):
    monkeypatch.setenv("GRADIO_SERVER_PORT", bad)
    with pytest.raises(SystemExit) as exc:
        app_module.address([])
    assert exc.value.code == 2 and "port must be a whole number from 1 to 65535" in capsys.readouterr().err


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_app_py_binds_the_address_gradio_asks_for():
    """Start app.py as a process, as a Space would, and look at the socket it listens on."""
    psutil = pytest.importorskip("psutil")
    host = "127.0.0.2"  # any loopback address: proves the name is passed through, not defaulted
    port = _free_port(host)
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(GRADIO_SERVER_NAME=host, GRADIO_SERVER_PORT=str(port), DIFFUSION_VIZ_THREADS="1",
               HF_HUB_OFFLINE="1", DIFFUSION_VIZ_DEVICE="cpu", DIFFUSION_VIZ_CONCURRENCY="2")
    env.pop("DIFFUSION_VIZ_PROCESSES", None)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)
    workers = []
    try:
        listening = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not listening:
            assert proc.poll() is None, "app.py exited"
            listening = [c.laddr for c in psutil.Process(proc.pid).net_connections(kind="tcp")
                         if c.status == psutil.CONN_LISTEN]
            time.sleep(0.5)
        assert [(a.ip, a.port) for a in listening] == [(host, port)]

        # its two sampling worker processes warm up, then make its runs (ui/sampling_pool.py)
        url = f"http://{host}:{port}"
        ready = {}
        while time.monotonic() < deadline + 60 and ready.get("ready") != 2:
            try:
                ready = json.loads(urllib.request.urlopen(url + "/dv/ready", timeout=10).read())
            except OSError:
                pass
            time.sleep(0.3)
        assert ready == {"workers": 2, "ready": 2}
        workers = [p for p in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2
        cpu = sum(w.cpu_times().user + w.cpu_times().system for w in workers)
        lines = urllib.request.urlopen(url + "/dv/run?prompt=dog&steps=100&seed=4041", timeout=60).read().splitlines()
        assert json.loads(lines[-1])["mode"] == "full" and len(json.loads(lines[-1])["columns"][0]["frames"]) == 100
        assert sum(w.cpu_times().user + w.cpu_times().system for w in workers) > cpu  # a worker made it
    finally:
        proc.terminate()  # SIGTERM, as docker stop or a Space restart: no cleanup code runs
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    end = time.monotonic() + 30
    while time.monotonic() < end and any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers):
        time.sleep(0.2)
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers), "a worker outlived app.py"
