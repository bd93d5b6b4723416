"""A small, thread-safe LRU of finished runs, so the same request is served at once the second time.

A classroom presses Generate together with the same defaults: the first run computes, the others
replay it. The key is everything that determines a run (model, prompt, seed, steps, scheduler, schedule,
guidance, Karras sigmas, zero-terminal-SNR); the value is what the UI needs to replay it (the handler's
output tuple: player payload, final image, summary, ... and the GIF/MP4 paths). Results are
deterministic for a key, so sharing them between users leaks nothing a user did not type themselves.

Bounded by a byte budget (``DIFFUSION_VIZ_CACHE_MB``, default 64; 0 turns the cache off): a class pressing
Generate together needs a handful of entries, not hundreds. Files live
in a directory the cache owns and are deleted with their entry; an entry whose files have vanished is
treated as a miss.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TRASH_GRACE_S = 60.0  # an evicted run's files outlive it this long (replies in flight still read them)


def run_key(model_name: str, settings) -> tuple:
    """The cache key of a run: ``settings`` is a validated ``sampling.SampleSettings``."""
    return (str(model_name), settings.prompt, int(settings.seed), int(settings.steps), settings.scheduler,
            settings.schedule, float(settings.guidance), bool(getattr(settings, "karras", False)),
            bool(getattr(settings, "zero_terminal_snr", False)))


def key_id(key: tuple) -> str:
    """A short name for a run key, sent with its frames: the player knows a second delivery of a run."""
    import hashlib

    return hashlib.sha1(repr(key).encode()).hexdigest()[:16]


def _size_of(value, seen: set | None = None) -> int:
    """Bytes a stored value holds in memory: containers with their items (Python's own object sizes, so a
    dict of per-step floats counts what it costs, not just its numbers), arrays with their buffers; an
    object reached twice (a dict key shared by every step) is counted once."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return sys.getsizeof(value) + (0 if value.base is None and value.flags.owndata else value.nbytes)
    if isinstance(value, (list, tuple, set)):
        return sys.getsizeof(value) + sum(_size_of(v, seen) for v in value)
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(_size_of(k, seen) + _size_of(v, seen) for k, v in value.items())
    return sys.getsizeof(value)


@dataclass
class Entry:
    outputs: tuple
    files: list[str] = field(default_factory=list)
    directory: str | None = None  # owned by the cache; removed on eviction
    nbytes: int = 0


def _remove_stale_roots() -> None:
    """Remove result folders left by app processes that were killed (SIGTERM skips atexit)."""
    for old in Path(tempfile.gettempdir()).glob("dv-results-*"):
        try:
            pid = int(old.name.split("-")[2])
            os.kill(pid, 0)  # still running: leave it alone
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except (ValueError, IndexError, PermissionError, OSError):
            continue  # not ours to judge (no pid in the name, or another user's process)


class ResultCache:
    """LRU keyed on ``run_key``; ``get`` returns the stored outputs or None; ``put`` stores them."""

    def __init__(self, max_bytes: int | None = None, root: str | Path | None = None):
        if max_bytes is None:
            max_bytes = int(float(os.environ.get("DIFFUSION_VIZ_CACHE_MB", "64")) * 2**20)
        self.max_bytes = max(0, int(max_bytes))
        self._root = Path(root) if root else None
        self._entries: OrderedDict[tuple, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._trash: list[tuple[float, str]] = []  # evicted directories, deleted a while later
        self.nbytes = 0
        self.hits = self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def new_directory(self) -> str:
        """A fresh directory for one run's files (removed when its entry is evicted or not stored)."""
        with self._lock:
            if self._root is None:
                _remove_stale_roots()
                self._root = Path(tempfile.mkdtemp(prefix=f"dv-results-{os.getpid()}-"))
                atexit.register(shutil.rmtree, self._root, True)
            self._root.mkdir(parents=True, exist_ok=True)
        return tempfile.mkdtemp(prefix="run-", dir=self._root)

    def get(self, key) -> tuple | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and not all(os.path.isfile(f) for f in entry.files):
                self._drop(key)  # its files were cleaned up behind our back: recompute
                entry = None
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.outputs

    def put(self, key, outputs: tuple | None, files=(), directory: str | None = None) -> bool:
        """Store a finished run; returns False (and removes ``directory``) when it does not fit or
        ``outputs`` is None (the run failed or was cancelled before its files were written)."""
        files = [str(f) for f in files]
        nbytes = _size_of(outputs) + sum(os.path.getsize(f) for f in files if os.path.isfile(f))
        if outputs is None or not self.enabled or nbytes > self.max_bytes:
            if directory:
                shutil.rmtree(directory, ignore_errors=True)
            return False
        with self._lock:
            self._empty_trash()
            if key in self._entries:  # someone else finished the same run first: keep theirs
                if directory:
                    self._trash.append((time.monotonic(), directory))
                self._entries.move_to_end(key)
                return True
            self._entries[key] = Entry(tuple(outputs), files, directory, nbytes)
            self.nbytes += nbytes
            while self.nbytes > self.max_bytes and self._entries:
                self._drop(next(iter(self._entries)))
        return True

    def _drop(self, key) -> None:
        entry = self._entries.pop(key)
        self.nbytes -= entry.nbytes
        if entry.directory:  # a reply being sent right now may still be copying these files
            self._trash.append((time.monotonic(), entry.directory))

    def _empty_trash(self, grace: float = TRASH_GRACE_S) -> None:
        now = time.monotonic()
        keep = []
        for when, directory in self._trash:
            if now - when >= grace:
                shutil.rmtree(directory, ignore_errors=True)
            else:
                keep.append((when, directory))
        self._trash = keep

    def clear(self) -> None:
        with self._lock:
            for key in list(self._entries):
                self._drop(key)
            self._empty_trash(grace=0)
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> dict:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self.nbytes, "max_bytes": self.max_bytes,
                    "hits": self.hits, "misses": self.misses}


RESULTS = ResultCache()


class InFlight:
    """Runs being computed right now, by key, so one run is not computed twice at once.

    A browser's Generate asks twice: the player's own route (``run_route``) for the frames, and gradio's
    ``/generate`` for the rest of the page. A class pressing Generate together asks thirty times. The
    first asker computes (``lead`` yields True); the others wait for it (``wait``) and then read the
    result cache. A run that ends without a result (stopped, failed) lets a waiter compute it itself.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._running: dict[tuple, threading.Event] = {}

    @contextlib.contextmanager
    def lead(self, key):
        """True: this caller computes the run (and must store it before leaving); False: another does."""
        with self._lock:
            done = self._running.get(key)
            mine = done is None
            if mine:
                done = self._running[key] = threading.Event()
        try:
            yield mine
        finally:
            if mine:
                with self._lock:
                    self._running.pop(key, None)
                done.set()

    def wait(self, key, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the run of ``key`` to end; True once nobody is computing it."""
        with self._lock:
            done = self._running.get(key)
        return done is None or done.wait(timeout)

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._running


RUNNING = InFlight()
