"""The test clock (``LANGFLOW_CMS_TEST_CLOCK``, langflow_cms/clock.py) from the test's side: put the clock of
every process that reads a file where a test needs it, instead of waiting for wall-clock minutes."""

from __future__ import annotations

import time
from pathlib import Path

from langflow_cms import clock


class ShiftedClock:
    """A clock file and the offset it holds; ``now()`` is what the processes reading it see."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0.0
        clock.step(self.path, 0.0)

    def now(self) -> float:
        return time.time() + self.offset

    def set(self, reading: float) -> None:
        """Step the clock so that it reads ``reading`` now (processes see it within ``clock.REREAD_S``)."""
        self.offset = reading - time.time()
        clock.step(self.path, self.offset)
        time.sleep(clock.REREAD_S * 4)  # every process has read the file again before the test goes on

    def into_next(self, second: float, period: int = 60) -> float:
        """Step forward to ``second`` s into the next ``period``-s window; returns that window's start."""
        start = (self.now() // period + 1) * period
        self.set(start + second)
        return start

    def to_end_of_minute(self, before: float = 0.5) -> float:
        """Step forward to ``before`` s before the current minute ends; returns the minute's start."""
        start = self.now() // 60 * 60
        self.set(start + 60 - before)
        return start
