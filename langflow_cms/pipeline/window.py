"""One series' statistics over one period (``Window``), and the 60 s → 300 s roll-up (``Rollup``).

Count, sum, min, max and the sketch all merge exactly, so a 300 s window merged from five 60 s windows is as
exact as if it had seen the values itself. A window is labelled with its start on the wall clock.

CMS keeps the last write of a key (series, period, start). When a minute gets values after its window was
sealed (a value drained after its minute's cycle, a backward step of the wall clock repeating minutes already
sent, a 300 s window completed after it was released), the ``Ledger`` merges the new part into what was sent
for that key, so the second write carries everything and never replaces the first with less.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from langflow_cms.pipeline.sketch import Sketch, rank

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
    scope: str = ""
    """The delivery path (credential identity) the window belongs to; "" = the process's own."""
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
        for q, key, value in zip(
            QUANTILES, QUANTILE_KEYS, self.sketch.quantiles(QUANTILES, self.count), strict=True
        ):
            # the first and last ranks are the exact min and max (P99 of fewer than 100 values is the slowest
            # run itself); otherwise rounded to 6 significant digits (the URL is the payload), then clamped
            # again, so rounding can never push P99 above Maximum or P50 below Minimum
            at = rank(q, self.count)
            if at == self.count:
                stats[key] = self.high
            elif at == 1:
                stats[key] = self.low
            else:
                stats[key] = min(max(float(f"{value:.6g}"), self.low), self.high)
        return stats

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, for the spool's roll-up snapshot."""
        return {
            "name": self.name,
            "dims": [list(pair) for pair in self.dimensions],
            "start": self.start,
            "period": self.period,
            "scope": self.scope,
            "count": self.count,
            "sum": self.total,
            "min": self.low,
            "max": self.high,
            "sketch": self.sketch.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        window = cls(
            data["name"],
            tuple((str(k), str(v)) for k, v in data["dims"]),
            int(data["start"]),
            int(data["period"]),
            str(data.get("scope", "")),
        )
        window.count, window.total = int(data["count"]), float(data["sum"])
        window.low, window.high = float(data["min"]), float(data["max"])
        window.sketch = Sketch.from_dict(data["sketch"])
        return window

    @property
    def key(self) -> tuple:
        return (self.scope, self.name, self.dimensions, self.period, self.start)


class Rollup:
    """Merges sealed 60 s windows into longer periods and releases each when its end has passed."""

    def __init__(self, periods: Iterable[int]) -> None:
        self.periods = tuple(p for p in periods if p != BASE_PERIOD)
        self._open: dict[tuple, Window] = {}

    def add(self, window: Window) -> None:
        for period in self.periods:
            start = window.start // period * period
            key = (window.scope, window.name, window.dimensions, period, start)
            target = self._open.get(key)
            if target is None:
                target = self._open[key] = Window(window.name, window.dimensions, start, period, window.scope)
            target.merge(window)

    def open_windows(self) -> list[Window]:
        """The windows not yet released (for the spool's snapshot)."""
        return list(self._open.values())

    def due(self, now: float, force: bool = False) -> list[Window]:
        """Windows whose period has ended by ``now`` (all of them if ``force``)."""
        ready = [w for w in self._open.values() if force or w.start + w.period <= now]
        for window in ready:
            del self._open[window.key]
        return ready


def combine(windows: Iterable[Window]) -> list[Window]:
    """Windows with equal keys merged into one each (order kept); the inputs are never changed."""
    merged: dict[tuple, Window] = {}
    copies: set[tuple] = set()
    for window in windows:
        key = window.key
        target = merged.get(key)
        if target is None:
            merged[key] = window
            continue
        if key not in copies:
            copies.add(key)
            target = merged[key] = Window.from_dict(target.to_dict())
        target.merge(window)
    return list(merged.values())


LEDGER_KEEP_S = 600.0
"""How long (monotonic seconds since its last write) what was sent for a window is kept: a backward step of
the wall clock up to this long repeats no minute without its earlier values."""


class Ledger:
    """What was sent for each recent window, so a second write for the same key carries everything.

    Kept ``LEDGER_KEEP_S`` on the monotonic clock since the key's last write (a wall-clock step moves none of
    it); about one window per series and minute of that span (a few KB per busy series).
    """

    def __init__(self, keep_s: float = LEDGER_KEEP_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.keep_s = keep_s
        self._clock = clock
        self._sent: dict[tuple, tuple[Window, float]] = {}
        self._pruned_at = clock()

    def complete(self, window: Window) -> Window:
        """``window`` merged with what was sent before for its key (recorded as sent now). A window seen for
        the first time is returned as it is."""
        now = self._clock()
        if now - self._pruned_at >= 60.0:
            self._prune(now)
        earlier = self._sent.get(window.key)
        if earlier is not None:
            merged = Window.from_dict(earlier[0].to_dict())
            merged.merge(window)
            window = merged
        self._sent[window.key] = (window, now)
        return window

    def _prune(self, now: float) -> None:
        self._pruned_at = now
        self._sent = {k: v for k, v in self._sent.items() if now - v[1] < self.keep_s}

    def __len__(self) -> int:
        return len(self._sent)
