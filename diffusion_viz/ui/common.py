"""Turning exceptions into friendly messages, so the page never shows a stack trace."""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from ..errors import DiffusionVizError

log = logging.getLogger("diffusion_viz.app")
GENERIC = "Something went wrong on the server. Please try again, or change a setting."


OUT_OF_MEMORY = ("The server ran out of memory for this run (other people may be using it too). "
                 "Try fewer steps, a smaller model, or try again in a moment.")


def _out_of_memory(exc: Exception) -> bool:
    """MemoryError or torch's (CUDA/MPS) out-of-memory error; frees cached GPU memory for the next run."""
    oom = isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())
    if oom:
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
    return oom


def plain(text: str) -> str:
    """A message that may quote what the user typed, safe to show as HTML (gradio's messages render HTML)
    and still readable as text for API clients: angle brackets become ‹ › so no tag can form (entities
    such as &lt; would reach API clients as '&lt;')."""
    return str(text).replace("<", "‹").replace(">", "›")


def _to_gr_error(exc: Exception) -> gr.Error:
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, DiffusionVizError):
        return gr.Error(plain(str(exc)), title="Please check", print_exception=False)
    if _out_of_memory(exc):
        log.warning("Out of memory in a handler: %s", exc)
        return gr.Error(OUT_OF_MEMORY, title="Out of memory", print_exception=False)
    log.exception("Unexpected error in a handler")
    return gr.Error(GENERIC, title="Oops", print_exception=False)


def friendly(fn):
    """Wrap a handler (plain or generator): user errors and surprises both become a gr.Error message."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every failure must reach the user as text
                raise _to_gr_error(exc) from None
        return gen

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _to_gr_error(exc) from None
    return plain

