"""Per-series aggregation into wall-clock windows: the state behind ``record()``.

A *series* is one (metric name, dimensions) pair. Each keeps one open 60 s window; ``add`` takes the time
the value was observed and rolls the window over when that time passes its end, so a value lands in the
window of the moment it was recorded, however late it is aggregated. Closed windows go to a thread-safe
``sealed`` deque. The 300 s aggregates are merged from the 60 s ones (``Rollup``), because count, sum,
min, max and the sketch all merge exactly.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from langflow_cms.sketch import Sketch

QUANTILES = (0.5, 0.9, 0.95, 0.99)
_FLOAT_MAX = sys.float_info.max


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.copysign(_FLOAT_MAX, value)


QUANTILE_KEYS = ("P50", "P90", "P95", "P99")
BASE_PERIOD = 60


@dataclass
class Window:
    """Exact count, sum, min and max plus a quantile sketch for one series over one period."""

    name: str
    dimensions: tuple[tuple[str, str], ...]
    start: int
    period: int = BASE_PERIOD
    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    sketch: Sketch = field(default_factory=Sketch)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value < self.low:
            self.low = value
        if value > self.high:
            self.high = value
        self.sketch.add(value)

    def merge(self, other: Window) -> None:
        self.count += other.count
        self.total += other.total
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)
        self.sketch.merge(other.sketch)

    def statistics(self) -> dict[str, float | int]:
        """CMS Type=1 values. Percentiles are clamped to the exact min and max; a sum of huge values that
        overflowed is clamped to the largest float, so the request stays valid JSON."""
        stats: dict[str, float | int] = {
            "SampleCount": self.count,
            "Sum": _finite(self.total),
            "Minimum": self.low,
            "Maximum": self.high,
            "Average": _finite(self.total / self.count),
        }
        for key, value in zip(QUANTILE_KEYS, self.sketch.quantiles(QUANTILES, self.count), strict=True):
            stats[key] = float(f"{min(max(value, self.low), self.high):.6g}")
        return stats

    @property
    def key(self) -> tuple:
        return (self.name, self.dimensions, self.period, self.start)


class Series:
    """The open window of one series. ``add`` is the hot path: one lock, one compare, one ``Window.add``."""

    __slots__ = ("_lock", "dimensions", "end", "name", "sealed", "sealed_until", "window")

    def __init__(self, name: str, dimensions: tuple[tuple[str, str], ...], sealed: deque[Window]) -> None:
        self.name = name
        self.dimensions = dimensions
        self.sealed = sealed
        self.window: Window | None = None
        self.end = 0.0
        self.sealed_until = 0.0
        """End of the last sealed window: no value may open a window before it again (CMS would overwrite
        the sealed one), so a value that arrives that late counts in the next window."""
        self._lock = threading.Lock()

    def add(self, value: float, now: float) -> None:
        """Add ``value`` observed at wall-clock time ``now`` to the window of that moment."""
        with self._lock:
            if now >= self.end:
                self._roll(now)
            self.window.add(value)  # type: ignore[union-attr]

    def seal_if_due(self, now: float, force: bool = False) -> None:
        """Close the open window if its end has passed (or ``force``, at close); called by the reporter."""
        with self._lock:
            if self.window is not None and (force or now >= self.end):
                self.sealed.append(self.window)
                self.sealed_until = self.end
                self.window, self.end = None, 0.0

    def _roll(self, now: float) -> None:
        if self.window is not None:
            self.sealed.append(self.window)
            self.sealed_until = self.end
        start = int(max(now, self.sealed_until) // BASE_PERIOD) * BASE_PERIOD
        self.window = Window(self.name, self.dimensions, start)
        self.end = start + BASE_PERIOD


class Rollup:
    """Merges sealed 60 s windows into longer periods and releases each when its end has passed."""

    def __init__(self, periods: Iterable[int]) -> None:
        self.periods = tuple(p for p in periods if p != BASE_PERIOD)
        self._open: dict[tuple, Window] = {}

    def add(self, window: Window) -> None:
        for period in self.periods:
            start = window.start // period * period
            key = (window.name, window.dimensions, period, start)
            target = self._open.get(key)
            if target is None:
                target = self._open[key] = Window(window.name, window.dimensions, start, period)
            target.merge(window)

    def due(self, now: float, force: bool = False) -> list[Window]:
        """Windows whose period has ended by ``now`` (all of them if ``force``)."""
        ready = [w for w in self._open.values() if force or w.start + w.period <= now]
        for window in ready:
            del self._open[window.key]
        return ready
