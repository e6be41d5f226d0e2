"""Pausing the cyclic garbage collector during a collection, and handing the interpreter lock on while it
runs: what keeps ``record()`` on another thread from waiting for the storage (docs/architecture.md,
"Storage")."""

from __future__ import annotations

import contextlib
import gc
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

_pause_lock = threading.Lock()
_pauses = 0
_we_disabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a collection runs. A collection of 100,000 series creates
    hundreds of thousands of short-lived objects (sealed windows and their sketches); each few hundred of
    them would start a collector pass, and their survivors would soon start a full pass over every object of
    the process (each pass stops every thread, a ``record()`` on the flow's path included). They hold no
    cycles; whatever the process allocated meanwhile is collected by the next pass after it.

    Pauses may overlap (a collection on the reporter thread, a close on another): a counter under a lock
    makes the first one switch the collector off, only if it was on, and the last one to end switch it back
    on, only if it is still off (an application that switched it on meanwhile keeps its choice). An
    application that switches it off itself while a pause runs cannot be told apart (``gc.disable()`` on a
    stopped collector leaves no trace), so a pause is as short as one collection."""
    global _pauses, _we_disabled
    with _pause_lock:
        if _pauses == 0:
            _we_disabled = gc.isenabled()
            if _we_disabled:
                gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _we_disabled:
                _we_disabled = False
                if not gc.isenabled():
                    gc.enable()


PACE_S = 0.0001
"""Work a collection does between two hand-offs of the interpreter lock (``Pacer``): a ``record()`` on
another thread waits at most about this long (plus the collector's pass over the youngest generation)."""


DRAIN_PACE_S = 0.001
"""The same for the reader thread's once-a-second ``drain()``: each hand-off costs ~70 µs of the timer's
slack when no thread waits, a tax on every observation (bench row 1) if it came every 0.1 ms."""


class Pacer:
    """Called once per series (or observation) of a collection: every PACE_S of work, ``pace()``."""

    __slots__ = ("at", "every")

    def __init__(self, on: bool = True, every: float = PACE_S) -> None:
        self.every = every
        self.at = time.perf_counter() + every if on else math.inf

    def __call__(self) -> None:
        if time.perf_counter() >= self.at:
            pace()
            self.at = time.perf_counter() + self.every


def pace() -> None:
    """Between two chunks of a collection: while our pause holds the cyclic collector off, run its pass
    over the youngest generation (what the collector would have done meanwhile: the objects other threads
    allocated since the last chunk, a few thousand, so well under a millisecond; otherwise they would all be
    walked at once when the pause ends), then hand the interpreter lock to a waiting thread (a
    ``record()``): a thread that computes keeps it for up to 5 ms otherwise."""
    if _we_disabled:
        gc.collect(0)
    time.sleep(0)


def release(windows: list[Any]) -> None:
    """Drop a long list of windows a few hundred at a time: freeing 200,000 windows in one statement holds
    the interpreter lock (and so every ``record()``) for tens of milliseconds."""
    with gc_paused():
        while windows:
            del windows[-64:]
            pace()
