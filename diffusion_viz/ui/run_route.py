"""The player's own route: a run's frames go straight to the browser, around gradio's queue.

    GET /dv/run?prompt=cat&steps=50&seed=0&guidance=1&scheduler=ddim&schedule=cosine&model=emoji-exact

answers with newline-delimited JSON (``application/x-ndjson``): first ``{"mode": "start", "key": ...}``
at once (the run's key, before it waits for a worker), then one player payload per line (the format in
player.py), the first as soon as the first step is made ("mode": "reset"), the last the finished run
("mode": "full"). With ``lean=1`` (the page's player) that last line leaves out the pictures the lines
before it carried (``"sent": k``: of its first k frames), so a run's frames travel once. Denoise's Generate starts it from the browser at the click;
the page's gradio event (same run, computed once: ``cache.RUNNING``) fills in the rest of the page and,
given the key, does not send the frames a second time (``denoise_tab.generate_page``).

Why a route of its own: gradio's queue, its event stream and its page update cost more than the exact
model's whole run (50 steps in ~15 ms) before the first picture shows, and each of thirty waiting
gradio clients costs the server more than the run itself (bench/bench_load.py, bench/bench_app.py).

It keeps the server's rules: the same validation and limits, the same sampling pool (``WORK``), the
result cache, a bound on waiting requests, and a closed connection stops the run. Answers:
400 ``{"error": ...}`` for bad input (the same friendly words the page shows), 503 when the queue is
full, and a line ``{"error": ...}`` if a run fails once started.
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Iterator

import anyio
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from ..errors import DiffusionVizError
from .common import GENERIC, OUT_OF_MEMORY, _out_of_memory, log, plain

PATH = "/dv/run"
READY_PATH = "/dv/ready"
PARAMETERS = ("prompt", "steps", "seed", "guidance", "scheduler", "schedule", "model")
QUEUE_FULL = "The server is busy: too many runs are waiting. Please try again in a moment."


class _Waiting:
    """How many route requests are open (running or waiting for a sampling slot), bounded."""

    def __init__(self, limit: int = 100):
        self._lock = threading.Lock()
        self.open = 0
        self.limit = limit

    def enter(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.open -= 1


OPEN = _Waiting()


def _number(text: str | None):
    """A control's value as the page sends it ("50", "1.5"); text that is not a number stays text, so
    validation names it in its message."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def message(exc: Exception) -> str:
    """The words the page would show for this error."""
    if isinstance(exc, DiffusionVizError):
        return plain(str(exc))
    if _out_of_memory(exc):
        return OUT_OF_MEMORY
    gr_message = getattr(exc, "message", None)  # a gr.Error raised on purpose (the time limit)
    if type(exc).__name__ == "Error" and gr_message:
        return str(gr_message)
    log.exception("Unexpected error in the run route")
    return GENERIC


def player_lines(values: dict) -> Iterator[str]:
    """The player payloads of one run, one JSON text per item. Raises (before the first item) on bad
    input: ``DiffusionVizError`` with the friendly message."""
    from .denoise_tab import run_id, run_outputs
    from .logic import DEFAULTS

    args = [values.get(name) for name in PARAMETERS]
    prompt, steps, seed, guidance, scheduler, schedule, model = args
    run_args = (prompt if prompt is not None else DEFAULTS["prompt"],
                _number(steps) if steps is not None else DEFAULTS["steps"],
                _number(seed) if seed is not None else DEFAULTS["seed"],
                _number(guidance) if guidance is not None else DEFAULTS["guidance"],
                scheduler or DEFAULTS["scheduler"], schedule or DEFAULTS["schedule"], model or DEFAULTS["model"])
    outputs = run_outputs(*run_args, first_send=0.0, route=True, lean=values.get("lean") == "1")
    first = next(outputs)  # validation, limits and the model happen before the first item
    key = run_id(*run_args)

    def lines():
        try:
            yield json.dumps({"mode": "start", "key": key})  # at once, before the run waits for a worker
            for item in itertools.chain([first], outputs):
                if len(item) > 6:  # the finished run without the pictures this stream already carried
                    yield item[6]
                elif isinstance(item[0], str):  # the player's part of the outputs (the rest is gradio's)
                    yield item[0]
        finally:
            outputs.close()  # a closed connection stops the sampler at its next step

    return lines()


def endpoint(request):
    """Starlette endpoint (sync: Starlette runs it, and the body's iteration, on its thread pool)."""
    if not OPEN.enter():
        return JSONResponse({"error": QUEUE_FULL}, status_code=503)
    try:
        lines = player_lines(dict(request.query_params))
    except Exception as exc:  # noqa: BLE001 - every failure reaches the page as words
        OPEN.leave()
        return JSONResponse({"error": message(exc)}, status_code=400 if isinstance(exc, DiffusionVizError) else 500)

    def body():
        try:
            for line in lines:
                yield line + "\n"
        except Exception as exc:  # noqa: BLE001
            yield json.dumps({"error": message(exc)}) + "\n"
        finally:
            lines.close()
            OPEN.leave()

    return _ClosingStream(body(), media_type="application/x-ndjson",
                          headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class _ClosingStream(StreamingResponse):
    """A StreamingResponse that notices a closed connection and then closes its source (which stops the
    run). Starlette's own stops listening for the disconnect under ASGI 2.4 and leaves the source to the
    garbage collector, and uvicorn drops a closed connection's writes silently: a run whose reader had gone
    went on to its last step."""

    def __init__(self, content, **kwargs):
        super().__init__(content, **kwargs)
        self.source = content

    async def __call__(self, scope, receive, send):
        try:
            async with anyio.create_task_group() as group:
                async def stream():
                    try:
                        await self.stream_response(send)
                    except OSError:
                        pass
                    group.cancel_scope.cancel()

                async def disconnected():
                    await self.listen_for_disconnect(receive)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                group.start_soon(disconnected)
        finally:
            try:
                self.source.close()  # (no thread is inside it now: anyio waits for the step it was making)
            except ValueError:  # "generator already executing": it ends with its run
                pass


def ready(request):
    """``GET /dv/ready``: {"workers": n, "ready": k}: the sampling worker processes (ui/sampling_pool.py) and
    how many have warmed up (until then runs are made in the server's process). For health checks and
    benchmarks."""
    from . import sampling_pool

    pool = sampling_pool.POOL
    return JSONResponse({"workers": len(pool.workers) if pool else 0, "ready": pool.ready_count() if pool else 0},
                        headers={"Cache-Control": "no-store"})


def install(app, queue_size: int | None = None) -> None:
    """Add the routes to gradio's FastAPI app, ahead of gradio's own routes (call after launch).
    ``queue_size``: open requests beyond which the route answers 503 (default: the serving setting)."""
    from .serving import Serving

    OPEN.limit = queue_size or Serving.from_env().queue_size
    for path, fn in ((PATH, endpoint), (READY_PATH, ready)):
        if not any(getattr(r, "path", None) == path for r in app.router.routes):
            app.router.routes.insert(0, Route(path, fn, methods=["GET"]))
