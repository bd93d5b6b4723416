"""``python app.py``: where it listens (flags > DIFFUSION_VIZ_* > GRADIO_SERVER_* > 127.0.0.1:7860).

Hugging Face Spaces and the gradio CLI set GRADIO_SERVER_NAME=0.0.0.0; an app that ignores it binds
127.0.0.1 inside the Space and nobody can reach it.
"""

import importlib.util
import os
import socket
import subprocess
import sys
import time
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
               HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        listening = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not listening:
            assert proc.poll() is None, proc.stdout.read()
            listening = [c.laddr for c in psutil.Process(proc.pid).net_connections(kind="tcp")
                         if c.status == psutil.CONN_LISTEN]
            time.sleep(0.5)
        assert [(a.ip, a.port) for a in listening] == [(host, port)]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
