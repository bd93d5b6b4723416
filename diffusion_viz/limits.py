"""How much one request may ask of a shared server: one table, the same for the page and the API.

A class shares one machine. Each limit below bounds what a single click (or API call) can cost, so one
careless or hostile request cannot take the server from everyone else. An operator changes any of them
with an environment variable, ``DIFFUSION_VIZ_MAX_<NAME>`` (e.g. ``DIFFUSION_VIZ_MAX_STEPS=500``), read
once when the app starts. The command line on your own computer is not a server: it keeps the library's
own ceilings (``validation.MAX_STEPS`` = 1000 steps). Stated for users in docs/API.md.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

from .errors import InvalidInputError


@dataclass(frozen=True)
class Limits:
    steps: int = 200  # sampling steps of one run (Denoise, each Compare column, Memorize, SD guidance)
    columns: int = 4  # Compare columns
    model_calls: int = 1600  # model evaluations per request, all its runs together (see model_calls())
    run_seconds: int = 120  # wall-clock time of one request; past it the run stops with a message
    image_pixels: int = 50_000_000  # width x height of an uploaded photo, read from its header
    image_mb: int = 100  # memory for decoding one photo (JPEGs decode at reduced size and need less)
    upload_mb: int = 8  # size of one uploaded file
    uploads_mb: int = 300  # all uploads and made files kept on disk together (oldest removed first)
    uploads_in_flight: int = 2  # photos decoded at the same time

    @classmethod
    def from_env(cls, environ=None) -> "Limits":
        """Defaults, each replaced by DIFFUSION_VIZ_MAX_<NAME> when that is a positive whole number."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = str(environ.get(f"DIFFUSION_VIZ_MAX_{f.name.upper()}", "")).strip()
            if raw:
                try:
                    value = int(raw)
                except ValueError:
                    raise InvalidInputError(f"DIFFUSION_VIZ_MAX_{f.name.upper()} must be a whole number, "
                                            f"got {raw!r}.") from None
                if value < 1:
                    raise InvalidInputError(f"DIFFUSION_VIZ_MAX_{f.name.upper()} must be at least 1, got {value}.")
                values[f.name] = value
        return cls(**values)

    def table(self) -> list[tuple[str, str, str]]:
        """(what, limit, setting) rows, for the docs and the page."""
        return [
            ("sampling steps per run", f"{self.steps:,}", "DIFFUSION_VIZ_MAX_STEPS"),
            ("Compare columns", f"{self.columns}", "DIFFUSION_VIZ_MAX_COLUMNS"),
            ("model calls per request", f"{self.model_calls:,}", "DIFFUSION_VIZ_MAX_MODEL_CALLS"),
            ("seconds per request", f"{self.run_seconds}", "DIFFUSION_VIZ_MAX_RUN_SECONDS"),
            ("photo size (width x height)", f"{self.image_pixels / 1e6:g} megapixels", "DIFFUSION_VIZ_MAX_IMAGE_PIXELS"),
            ("memory to decode one photo", f"{self.image_mb} MB", "DIFFUSION_VIZ_MAX_IMAGE_MB"),
            ("one upload", f"{self.upload_mb} MB", "DIFFUSION_VIZ_MAX_UPLOAD_MB"),
            ("uploads and made files on disk", f"{self.uploads_mb} MB", "DIFFUSION_VIZ_MAX_UPLOADS_MB"),
            ("photos decoded at once", f"{self.uploads_in_flight}", "DIFFUSION_VIZ_MAX_UPLOADS_IN_FLIGHT"),
        ]


LIMITS = Limits.from_env()


def model_calls(frames: int, guided: bool) -> int:
    """Model evaluations of one run: one per frame (Heun: 2N-1 frames, PNDM N+1), two with classifier-free
    guidance (with and without the prompt)."""
    return frames * (2 if guided else 1)


def check_steps(steps, limits: Limits = LIMITS) -> int:
    """Steps within this server's limit (any value: the message says what is allowed)."""
    from .validation import check_steps as valid_steps

    return valid_steps(steps, limits.steps)


def check_columns(n: int, limits: Limits = LIMITS) -> int:
    if not 1 <= n <= limits.columns:
        raise InvalidInputError(f"Compare at most {limits.columns} columns on this server (1 to {limits.columns}), "
                                f"got {n}.")
    return n


def check_cost(calls: int, what: str = "This run", limits: Limits = LIMITS) -> int:
    """Refuse a request that would need more model calls than one request may use."""
    if calls > limits.model_calls:
        raise InvalidInputError(
            f"{what} needs {calls:,} model calls; one request may use at most {limits.model_calls:,} on this "
            "server. Use fewer steps or columns, guidance 1 (it doubles the calls), or a sampler other than "
            "Heun (it doubles them too).")
    return calls


def out_of_time(started: float, now: float, limits: Limits = LIMITS) -> bool:
    return now - started > limits.run_seconds


def time_limit_message(limits: Limits = LIMITS) -> str:
    return (f"The run took longer than this server's limit of {limits.run_seconds} s per request and was "
            "stopped. Try fewer steps, or a smaller model.")


def megabytes(n_bytes: float) -> str:
    return f"{math.ceil(n_bytes / 2**20):,} MB"
