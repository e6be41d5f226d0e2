"""The wall clock the runtime labels windows with, and the test clock that can shift it.

In production ``wall`` *is* ``time.time`` (``clock.wall()`` costs what ``time.time()`` costs on the hot path).

``LANGFLOW_CMS_TEST_CLOCK=<file>`` (tests and development only: honoured with ``LANGFLOW_CMS_DEV`` on, which
refuses every endpoint that is not the local emulator; ``Config.from_env`` refuses it without) shifts the wall
clock by the number of seconds the file holds, re-read at most every ``REREAD_S``. Writing the file steps the
clock of every process that reads it, while they run: a test puts the next minute boundary a second away
instead of waiting for it, or steps the clock back and forth as NTP would. Only "now" moves: windows and
timestamps stay aligned to the minute, and every deadline and schedule still runs on the monotonic clock.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

VARIABLE = "LANGFLOW_CMS_TEST_CLOCK"
REREAD_S = 0.05
"""The test clock's file is read again at most this often (a step reaches every reader within it)."""


class FileOffsetClock:
    """``time.time()`` plus the seconds a file holds (0 while it is missing, empty or unreadable)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._offset = 0.0
        self._read_at = -REREAD_S

    def offset(self) -> float:
        now = time.monotonic()
        if now - self._read_at >= REREAD_S:
            self._read_at = now
            with contextlib.suppress(OSError, ValueError):  # unreadable now: the last offset holds
                self._offset = float(self.path.read_text("utf-8").strip() or 0.0)
        return self._offset

    def __call__(self) -> float:
        return time.time() + self.offset()


def _dev_on(environ: os._Environ[str] | dict[str, str]) -> bool:
    return environ.get("LANGFLOW_CMS_DEV", "").strip().lower() in ("1", "true", "yes", "on")


def from_environment(environ: os._Environ[str] | dict[str, str] | None = None) -> Callable[[], float]:
    """``time.time`` itself, or the test clock when ``LANGFLOW_CMS_TEST_CLOCK`` is set in dev mode."""
    environ = os.environ if environ is None else environ
    path = environ.get(VARIABLE, "").strip()
    if path and _dev_on(environ):
        return FileOffsetClock(path)
    return time.time


wall: Callable[[], float] = from_environment()
"""The wall clock every label of the runtime comes from (read it as ``clock.wall()``, never bind it)."""


def now() -> float:
    """``wall()`` as it is installed at the call (a default for ``clock=`` parameters, which bind early)."""
    return wall()


def install(path: str | os.PathLike[str] | None) -> None:
    """In-process tests: read the wall clock from ``path`` (a file of seconds), or ``time.time`` again."""
    global wall
    wall = time.time if path is None else FileOffsetClock(path)


def step(path: str | os.PathLike[str], offset: float) -> None:
    """Set the test clock's offset (atomically: readers never see a half-written number)."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(repr(float(offset)), "utf-8")
    temporary.replace(target)
