"""Denoise's runs of the built-in pixel models in worker processes, so a class's runs use every core.

Why: a run of the exact emoji model (50 steps) costs ~70 ms of CPU, much of it Python holding the
interpreter lock (the sampler's loop, the frames' bookkeeping, the atlas). Two runs on two threads of one
process share that lock: thirty different seeds at once took 1.6-3.1 s (p95, from day to day) on 2
cores, though the work alone is ~1.1 s (30 x 70 ms on 2 cores). In worker processes the two cores really
run two runs: 1.1-1.4 s (bench/bench_load.py; DIFFUSION_VIZ_PROCESSES=0 measures the old way).

How, for one run (``Worker.run``, called by ``denoise_tab.run_outputs`` inside its ``WORK`` slot):

- the server sends ("run", model, settings, key, first_send, lean, seconds) on the worker's pipe;
- the worker runs ``denoise_tab._generate``, the same code as in the server, and sends each message as it
  is made: ("item", outputs, frames), then ("end", frames) or ("error", ...);
- Stop, a closed tab or a closed connection closes the server's generator: it sends ("stop",) and the
  worker's ``should_stop`` (read before every step) ends the run; a background thread reads what is
  left, and the worker is idle again;
- a worker whose process dies (killed, out of memory) is replaced; its run ends with ``WorkerLost``.

The pool is used only where it is ready: until a worker has loaded its models and made one warm-up run,
and for every model it does not take (Stable Diffusion and the miniature latent model keep their runs in
the server for decode-on-demand; checkpoints a user loads), runs stay in the server's process as before.
``python app.py`` starts one worker per sampling slot on a CPU machine (``Serving.processes``,
``DIFFUSION_VIZ_PROCESSES``; none on a GPU); a library user or a test gets none unless it starts them
(``start``, ``ui.app.start_server(processes=...)``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import threading
from typing import Iterator

from ..errors import DiffusionVizError

log = logging.getLogger("diffusion_viz.sampling_pool")
DRAIN_SECONDS = 10.0  # a stopped worker that has not ended its run by then is replaced


class WorkerLost(DiffusionVizError):
    """The process making a run ended before the run did (killed, or out of memory)."""


def pooled(model_name: str, model) -> bool:
    """Runs of this model may go to a worker: a model of the menu without Stable Diffusion's views (those
    keep each run in the server, for "Decode this step")."""
    from ..models.registry import MODELS
    from .sd_view import is_sd

    return model_name in MODELS and not is_sd(model)


# ---- the worker's side ------------------------------------------------------------------------------
def _pack(exc: BaseException) -> tuple:
    """An exception as it can cross the pipe: itself if it survives pickling, else its words."""
    import gradio as gr

    if isinstance(exc, gr.Error):
        return ("gr.Error", str(exc.message), exc.title)
    try:
        pickle.loads(pickle.dumps(exc))
        return ("exception", exc)
    except Exception:  # noqa: BLE001 - an exception whose arguments do not pickle
        ours = isinstance(exc, DiffusionVizError)  # its words are for the user; others' only for the log
        return ("text", ours, str(exc) if ours else f"{type(exc).__name__}: {exc}")


def _unpack(packed: tuple) -> BaseException:
    import gradio as gr

    if packed[0] == "gr.Error":
        return gr.Error(packed[1], title=packed[2])
    if packed[0] == "exception":
        return packed[1]
    return DiffusionVizError(packed[2]) if packed[1] else RuntimeError(packed[2])


def _serve_run(conn, model_name, settings, key, first_send, lean, seconds) -> None:
    """One run, its messages sent as they are made; ends with ("end", frames) or ("error", ..., frames)."""
    import time

    from . import denoise_tab, logic

    started, stopped = time.monotonic(), False

    def should_stop() -> bool:
        nonlocal stopped
        while not stopped and conn.poll():  # the server's only message during a run is "stop"
            stopped = conn.recv()[0] == "stop"
        return stopped or time.monotonic() - started > seconds

    frames0 = denoise_tab.RUN_STATS["frames"]
    try:
        model = logic.load_model(model_name)
        for item in denoise_tab._generate(settings, model, model_name, key, first_send, lean=lean,
                                          should_stop=should_stop):
            if stopped:
                break  # nobody is reading the messages any more
            conn.send(("item", item, denoise_tab.RUN_STATS["frames"] - frames0))
        conn.send(("end", denoise_tab.RUN_STATS["frames"] - frames0))
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the server, as the server would raise it
        if not isinstance(exc, DiffusionVizError) and type(exc).__name__ != "Error":
            log.exception("A run failed in a sampling worker")
        conn.send(("error", _pack(exc), denoise_tab.RUN_STATS["frames"] - frames0))


def serve(conn, threads: int, warm_model: str | None) -> None:
    """A worker process's life: load, warm up, say "ready", then one run per "run" message until the pipe
    closes (the server ended: its end of the pipe closes with it)."""
    from ..runtime import configure_torch_threads
    from .cache import RESULTS

    configure_torch_threads(threads)
    RESULTS.max_bytes = 0  # the server keeps the finished runs; a worker keeps nothing
    if warm_model:
        from .app import warm_up

        warm_up(warm_model)
    try:
        conn.send(("ready", os.getpid()))
    except OSError:  # the server ended while this worker was starting
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "run":
            try:
                _serve_run(conn, *message[1:])
            except (BrokenPipeError, EOFError, OSError):
                return
        # ("stop",) for a run that had already ended: nothing to do


# ---- the server's side ------------------------------------------------------------------------------
class Worker:
    """One worker process and the server's end of its pipe."""

    def __init__(self, pool: "SamplingPool", context, threads: int, warm_model: str | None):
        self.pool = pool
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, threads, warm_model), daemon=True,
                                       name="dv-sampler")
        self.process.start()
        child.close()
        self.ready = False
        self.runs = 0
        self._count, self._reported = None, 0  # the run being made: its frame counter, frames reported

    def check_ready(self) -> bool:
        """True once the worker said it is ready (does not wait)."""
        if not self.ready and self.process.is_alive() and self.conn.poll():
            try:
                self.ready = self.conn.recv()[0] == "ready"
            except (EOFError, OSError):
                return False
        return self.ready

    def run(self, model_name, settings, key, first_send, lean, seconds, count=None) -> Iterator:
        """The run's messages, as ``denoise_tab._generate`` yields them. ``count(frames)``: called with the
        frames sampled as they are reported. Closing the iterator stops the run in the worker."""
        self.runs += 1
        self._count, self._reported = count, 0
        ended, error = False, None
        try:
            try:
                self.conn.send(("run", model_name, settings, key, first_send, lean, seconds))
                while not ended:
                    kind, rest = self._receive()
                    if kind == "item":
                        yield rest[0]
                    else:  # "end" or "error"
                        ended = True
                        error = _unpack(rest[0]) if kind == "error" else None
            except (EOFError, OSError) as exc:
                self.pool.replace(self)
                raise WorkerLost("The sampler's process ended in the middle of this run. "
                                 "Press Generate again.") from exc
        finally:
            if ended or self not in self.pool.workers:  # (a replaced worker is not given back)
                self.pool.give_back(self)
            else:  # closed early (Stop, a closed tab): end the run there, then the worker is free again
                threading.Thread(target=self._drain, daemon=True, name="dv-sampler-drain").start()
        if error is not None:
            raise error

    def _receive(self) -> tuple[str, list]:
        """The worker's next message (kind, the rest), counting the frames it reports (its last item)."""
        kind, *rest = self.conn.recv()
        if self._count is not None and rest[-1] > self._reported:
            self._count(rest[-1] - self._reported)
            self._reported = rest[-1]
        return kind, rest

    def _drain(self) -> None:
        try:
            self.conn.send(("stop",))
            while self.conn.poll(DRAIN_SECONDS):
                if self._receive()[0] in ("end", "error"):
                    self.pool.give_back(self)
                    return
        except (EOFError, OSError):
            pass
        self.pool.replace(self)  # it did not end its run in time, or it died

    def stop(self, wait: float = 2.0) -> None:
        """Close the pipe (an idle worker then ends by itself, cleanly); terminate it if it does not."""
        try:
            self.conn.close()
        except OSError:
            pass
        self.process.join(wait)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


class SamplingPool:
    """``size`` worker processes (spawned: no copy of the server's threads), each with ``threads`` torch
    threads, warmed up on ``warm_model``."""

    def __init__(self, size: int, threads: int = 1, warm_model: str | None = None):
        # A spawned worker imports numpy afresh, with the environment of this moment: one BLAS thread each
        # (python app.py sets this before its own numpy; a test or a library user may not have).
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        self._context = multiprocessing.get_context("spawn")
        self._threads, self._warm = threads, warm_model
        self._lock = threading.Lock()
        self._idle: list[Worker] = []
        self.workers: list[Worker] = []
        self.replaced = 0
        for _ in range(max(1, int(size))):
            self._add()

    def _add(self) -> Worker:
        worker = Worker(self, self._context, self._threads, self._warm)
        with self._lock:
            self.workers.append(worker)
            self._idle.append(worker)
        return worker

    def take(self) -> Worker | None:
        """An idle worker that is ready, or None (all busy, or still starting: run in this process)."""
        with self._lock:
            for worker in self._idle:
                if worker.check_ready():
                    self._idle.remove(worker)
                    return worker
        return None

    def give_back(self, worker: Worker) -> None:
        with self._lock:
            if worker in self.workers and worker not in self._idle:
                self._idle.append(worker)

    def replace(self, worker: Worker) -> None:
        """Retire a worker (dead, or stuck in a run) and start another in its place."""
        with self._lock:
            if worker not in self.workers:
                return
            self.workers.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            self.replaced += 1
        worker.stop()
        log.warning("A sampling worker was replaced (%d so far)", self.replaced)
        self._add()

    def ready_count(self) -> int:
        """Workers ready for a run or making one (a busy worker was ready when it was taken)."""
        with self._lock:
            return sum(w.check_ready() for w in self._idle) + len(self.workers) - len(self._idle)

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Block until every worker is ready (tests, benchmarks); True if they all are in time."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_count() == len(self.workers):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        with self._lock:
            workers, self.workers, self._idle = self.workers, [], []
        for worker in workers:
            worker.stop()


POOL: SamplingPool | None = None


def start(size: int, threads: int = 1, warm_model: str | None = None) -> SamplingPool:
    """Start the process's pool (replacing one started before)."""
    global POOL
    stop()
    POOL = SamplingPool(size, threads, warm_model)
    return POOL


def stop() -> None:
    global POOL
    pool, POOL = POOL, None
    if pool is not None:
        pool.close()


def take(model_name: str, model) -> Worker | None:
    """A ready idle worker for a run of ``model``, or None (no pool, not ready, or a model it does not take)."""
    pool = POOL
    if pool is None or not pooled(model_name, model):
        return None
    return pool.take()
