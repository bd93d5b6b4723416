"""The serving boundary: how much work runs at once, how it stops, and what is kept on disk.

- ``Serving``: workers, queue size and torch threads for this machine (environment variables).
- ``WORK``: a gate that bounds the sampling actually *running*, not just gradio's slots. A cancelled
  request frees its gradio slot at once while its thread finishes the current step; the next request
  waits at this gate for that step, so no more than ``Serving.sampling`` runs ever compute together.
- ``run_stoppable``: runs a request's work on a worker that checks a stop flag before every step and
  gives up at the request's time limit. Handlers are generators: gradio closes them on Stop, on a
  closed tab or a disconnected client, and closing one sets the flag.
- ``UploadJanitor``: keeps gradio's folder of uploads and made files under a size budget.
- ``bound_process_memory``: gradio's own record of events, bounded; a per-session leak in gradio's
  updates stopped (``keep_component_ids_on_update``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from ..errors import Stopped
from ..limits import LIMITS, time_limit_message

log = logging.getLogger("diffusion_viz.serving")
T = TypeVar("T")


@dataclass(frozen=True)
class Serving:
    """How many requests run at once, how many may wait, and how many torch threads each gets.

    CPU (the default): 2 sampling runs at once on a 2-core machine with 1 torch thread each; ``python
    app.py`` makes Denoise's runs of the built-in pixel models in as many worker processes
    (``processes``, ui/sampling_pool.py: two threads of one process share its interpreter lock). A run of
    the exact emoji model is ~70 ms of CPU (50 steps, its frames encoded for the player) plus, when asked,
    ~0.3-0.6 s of GIF/MP4 writing (one thread), so two runs keep both cores busy; more runs, or more threads per run, only oversubscribe the cores
    and make every user wait longer. One GPU: 1 run at a time (a Stable Diffusion run fills the GPU;
    two at once just share it and risk running out of memory), with all CPU threads for the rest.
    """

    sampling: int  # concurrent sampling runs (one pool shared by every button that samples)
    light: int  # concurrent cheap events (forward noising, plots)
    queue_size: int  # waiting requests beyond which a user is told the queue is full
    torch_threads: int
    gpu: bool
    processes: int = 0  # worker processes for Denoise's pixel-model runs (ui/sampling_pool.py); 0: none

    @classmethod
    def from_env(cls) -> "Serving":
        cores = os.cpu_count() or 1
        gpu = _cuda_available()
        default = 1 if gpu else max(1, min(2, cores))
        sampling = env_int("DIFFUSION_VIZ_CONCURRENCY", default)
        threads = env_int("DIFFUSION_VIZ_THREADS", cores if gpu else max(1, cores // sampling))
        processes = env_int("DIFFUSION_VIZ_PROCESSES", 0 if gpu else sampling, minimum=0)
        return cls(sampling=sampling, light=max(2, sampling * 2), torch_threads=threads, gpu=gpu,
                   queue_size=env_int("DIFFUSION_VIZ_QUEUE_SIZE", 100), processes=min(processes, sampling))


def env_int(name: str, default: int, minimum: int = 1) -> int:
    try:
        return max(minimum, int(os.environ.get(name, "") or default))
    except ValueError:
        return default


def _cuda_available() -> bool:
    if os.environ.get("DIFFUSION_VIZ_DEVICE", "").lower() == "cpu":
        return False
    import torch

    return bool(torch.cuda.is_available())


# ---- the gate: sampling that actually runs -----------------------------------------------------------
class WorkGate:
    """A counting gate with a size that can be set once the serving settings are known."""

    def __init__(self, size: int = 2):
        self._cond = threading.Condition()
        self.size, self.running, self.peak = size, 0, 0

    def resize(self, size: int) -> None:
        with self._cond:
            self.size = max(1, int(size))
            self._cond.notify_all()

    @contextlib.contextmanager
    def slot(self):
        with self._cond:
            while self.running >= self.size:
                self._cond.wait()
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            yield
        finally:
            with self._cond:
                self.running -= 1
                self._cond.notify()


WORK = WorkGate()


# ---- stoppable work ------------------------------------------------------------------------------------
class Waiting(float):
    """Seconds a stoppable work has been running (what ``run_stoppable`` yields until the result)."""


_WORKERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="dv-work")


def run_stoppable(work: Callable[[Callable[[], bool]], T], tick: float = 0.25,
                  seconds: float | None = None) -> Iterator[Waiting | T]:
    """Run ``work(should_stop)`` on a worker thread; yield ``Waiting(seconds)`` every ``tick`` while it
    runs, then its result (or raise its exception).

    Closing this generator (gradio does, on Stop, a closed tab or a disconnected client) makes
    ``should_stop()`` true: the work ends at its next step and the CPU is free. Past ``seconds``
    (default: the request time limit) ``should_stop()`` turns true as well, and a ``Stopped`` error
    saying so replaces whatever the work raised on its way out. The work waits at ``WORK`` first.

    The first ``Waiting(0)`` comes at once, before the work starts: gradio can only close a generator
    once its first value has arrived, and a cancel that comes earlier would otherwise be lost.
    """
    stop = threading.Event()
    limit = LIMITS.run_seconds if seconds is None else seconds
    started = time.monotonic()
    expired = threading.Event()

    def should_stop() -> bool:
        if not expired.is_set() and time.monotonic() - started > limit:
            expired.set()
        return stop.is_set() or expired.is_set()

    def gated():
        with WORK.slot():
            if stop.is_set():
                raise Stopped("Stopped before it started.")
            return work(should_stop)

    yield Waiting(0.0)
    future = _WORKERS.submit(gated)
    try:
        while True:
            try:
                result = future.result(timeout=tick)
            except TimeoutError:
                yield Waiting(time.monotonic() - started)
                continue
            except Exception:
                if expired.is_set():
                    raise Stopped(time_limit_message()) from None
                raise
            yield result
            return
    finally:
        stop.set()


def stream_api(work: Callable[[Callable[[], bool]], T], tick: float = 0.5) -> Iterator[dict | T]:
    """For API endpoints (gr.api): ``run_stoppable``, with {"running": True, "seconds": s} while it runs.

    A client's ``predict()`` gets the final result; ``submit()`` also shows the progress. Being a
    generator, the endpoint is closed (and its work stopped) on cancel and on disconnect."""
    for item in run_stoppable(work, tick=tick):
        yield {"running": True, "seconds": round(float(item), 2)} if isinstance(item, Waiting) else item


def stop_after(seconds: float | None = None) -> Callable[[], bool]:
    """A ``should_stop`` for work that runs inline (Denoise streams in its own generator): the time limit."""
    limit = LIMITS.run_seconds if seconds is None else seconds
    started = time.monotonic()
    return lambda: time.monotonic() - started > limit


# ---- disk: uploads and made files ----------------------------------------------------------------------
class UploadJanitor:
    """Every ``interval`` s, delete the oldest files in gradio's upload/cache folder until it holds at
    most ``budget_mb``. gradio's own ``delete_cache`` removes files by age (30 min); this bounds the
    total, so a burst of uploads cannot fill the disk in between."""

    def __init__(self, folder: str | Path, budget_mb: int = LIMITS.uploads_mb, interval: float = 30.0):
        self.folder, self.budget, self.interval = Path(folder), budget_mb * 2**20, interval
        self.removed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> int:
        """One pass; returns the bytes kept."""
        files = []
        for path in self.folder.rglob("*"):
            try:
                if path.is_file():
                    st = path.stat()
                    files.append((st.st_mtime, st.st_size, path))
            except OSError:
                continue
        total = sum(size for _, size, _ in files)
        for _mtime, size, path in sorted(files):
            if total <= self.budget:
                break
            try:
                path.unlink()
                total -= size
                self.removed += 1
            except OSError:
                continue
        return total

    def start(self) -> "UploadJanitor":
        def loop():
            while not self._stop.wait(self.interval):
                try:
                    self.sweep()
                    release_free_memory()
                except Exception:  # noqa: BLE001 - the janitor must never take the server down
                    log.exception("Upload janitor failed")

        self._thread = threading.Thread(target=loop, name="dv-janitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


def release_free_memory() -> bool:
    """Hand memory that Python and torch have freed back to the operating system (glibc's malloc_trim).

    glibc keeps freed blocks in per-thread arenas; a server whose requests run on many threads then looks
    as if it kept every request's memory. Returns False where there is no glibc (macOS, musl)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return bool(libc and libc.malloc_trim(0) is not None)
    except (OSError, AttributeError):
        return False


_janitor: UploadJanitor | None = None
_janitor_lock = threading.Lock()


def start_janitor() -> UploadJanitor:
    """One janitor per process, over gradio's upload folder (GRADIO_TEMP_DIR)."""
    global _janitor
    with _janitor_lock:
        if _janitor is None:
            from gradio.utils import get_upload_folder

            _janitor = UploadJanitor(get_upload_folder()).start()
        return _janitor


def bound_process_memory() -> None:
    """gradio's queue keeps a record of the last ``GRADIO_ANALYTICS_MAX_EVENTS`` events (10,000 by
    default) and, with ``GRADIO_ANALYTICS_CACHE_FREQUENCY`` 1, builds a pandas table of all of them after
    every event: for a server that runs all day, a record that grows for hours and a stream of short-lived
    tables. Keep 500 events, summarised every 50th. Call before the gr.Blocks' queue is made; an
    operator's own settings win. (bench/bench_soak.py measures the process's memory.)"""
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "500")
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "50")
    keep_component_ids_on_update()


def keep_component_ids_on_update() -> None:
    """Stop a per-session leak in gradio (6.31): each open tab's memory grew with every run.

    An update to an output (``gr.skip()``, ``gr.update(...)``: every streamed message of Generate sends
    some) makes gradio replace the session's copy of that component with a new instance, which gets a
    *new* id. When a later message sends the output a plain value, gradio finds the new id missing from
    the session and stores the instance again under it, with the value (the whole player payload) in the
    session's config. The old entries are never read again but live as long as the session: one per
    output per run, about 0.2 MB per Generate (bench/bench_soak.py). Giving the replacement the id of
    the component it replaces, as gradio's own ``gr.render`` replacements do, keeps one entry per
    component. Idempotent; tests/test_serving.py counts a session's components over many runs."""
    from gradio.blocks import Block
    from gradio.state_holder import SessionState

    original = SessionState.__setitem__
    if getattr(original, "keeps_component_ids", False):
        return

    def __setitem__(self, key, value):
        replaced = self.blocks_config.blocks.get(key)
        if (isinstance(value, Block) and value is not replaced and value._id != key
                and type(value) is type(replaced)):
            value._id = key  # the session's new copy of component ``key``, not a new component
        original(self, key, value)

    __setitem__.keeps_component_ids = True
    SessionState.__setitem__ = __setitem__
