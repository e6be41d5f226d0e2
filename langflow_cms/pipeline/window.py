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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from langflow_cms.pipeline.sketch import MAX_BINS, BinSketch, Sketch, rank

QUANTILES = (0.5, 0.9, 0.95, 0.99)
_FLOAT_MAX = sys.float_info.max


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.copysign(_FLOAT_MAX, value)


QUANTILE_KEYS = ("P50", "P90", "P95", "P99")
BASE_PERIOD = 60


def ident(scope: str, name: str, dimensions: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """A series' identity as one flat tuple of strings: (scope, name, key, value, key, value, ...). Flat, so
    the first collector pass that sees it untracks it (nested fresh tuples need one pass per level, and the
    third level would reach the oldest generation, whose growth starts full passes)."""
    return (scope, name, *[part for pair in dimensions for part in pair])


def pairs(flat: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The dimensions of an ``ident``, as (key, value) pairs."""
    parts = iter(flat)
    next(parts), next(parts)  # the scope and the name
    return tuple(zip(parts, parts, strict=False))  # one iterator twice: (key, value) pairs


SHARDS = 64
SHARD_MASK = SHARDS - 1


class Shards:
    """A dict split into SHARDS dicts by the key's hash. One dict that grows copies all its keys at once
    (5 ms at 175,000 keys, 12 ms at 350,000: inside the ``record()`` of a new series, or in a collection
    holding the interpreter lock); a shard copies a sixty-fourth of them."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[dict] = [{} for _ in range(SHARDS)]

    def get(self, key: Any, default: Any = None) -> Any:
        return self.parts[hash(key) & SHARD_MASK].get(key, default)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.parts[hash(key) & SHARD_MASK][key] = value

    def __delitem__(self, key: Any) -> None:
        del self.parts[hash(key) & SHARD_MASK][key]

    def pop(self, key: Any, default: Any = None) -> Any:
        return self.parts[hash(key) & SHARD_MASK].pop(key, default)

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def items(self) -> Iterator[tuple[Any, Any]]:
        for part in self.parts:
            yield from part.items()


STATE_LIMIT = 2 * MAX_BINS + 8
"""Keys of an open window's state past which its bins are folded as the sketch folds them (a few KB)."""


def new_state(offset: int = 0) -> dict:
    """An open window as an exact dict of atomic values, which the garbage collector never tracks: "n"
    (count), "s" (sum), "lo", "hi", and the sketch's bins ``{sketch.bin_of(value) - offset: count}`` with the
    offset under "o" (the first value's bin less 128: keys from -5 to 256 are ints Python shares, so a bin
    costs its dict entry only). Per-series state held between collections is kept this way (see
    docs/architecture.md, "Storage")."""
    return {"n": 0, "s": 0.0, "lo": math.inf, "hi": -math.inf, "o": offset}


def merge_state(into: dict, other: dict) -> None:
    """Add the state ``other`` to ``into`` (exact: counts, sums, extremes and bins all add)."""
    shift = other["o"] - into["o"]
    for key, n in other.items():
        if type(key) is int:
            key += shift
            into[key] = into.get(key, 0) + n
    into["n"] += other["n"]
    into["s"] += other["s"]
    into["lo"] = min(into["lo"], other["lo"])
    into["hi"] = max(into["hi"], other["hi"])
    if len(into) > STATE_LIMIT:
        fold_state(into)


def fold_state(state: dict) -> None:
    """Fold the bins of a state grown past STATE_LIMIT as the sketch folds them (lowest into lowest kept)."""
    sketch = Sketch.from_bins(state)
    for key in [k for k in state if type(k) is int]:
        del state[key]
    sketch.add_to_bins(state)


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

    @classmethod
    def from_state(
        cls, name: str, dimensions: tuple, start: int, period: int, scope: str, state: dict
    ) -> Window:
        """The window of an open-window state (``new_state``; the window keeps it: no copy)."""
        return cls(
            name,
            dimensions,
            start,
            period,
            scope,
            state["n"],
            state["s"],
            state["lo"],
            state["hi"],
            BinSketch(state),
        )

    def state(self) -> dict:
        """This window as an open-window state (``new_state``)."""
        bins = getattr(self.sketch, "bins", None)  # a BinSketch not built yet: its state, copied
        if bins:
            state = dict(bins)
            state.update(n=self.count, s=self.total, lo=self.low, hi=self.high)
            return state
        state = new_state(self.sketch.positive.offset - 128)
        state.update(n=self.count, s=self.total, lo=self.low, hi=self.high)
        self.sketch.add_to_bins(state)
        return state

    @property
    def key(self) -> tuple:
        return (self.scope, self.name, self.dimensions, self.period, self.start)


class Rollup:
    """Merges sealed 60 s windows into longer periods and releases each when its end has passed.

    An open roll-up is a state (``new_state``: a dict of atomic values) under ``(period, start)`` and the
    series' ``ident``: it holds no object the garbage collector tracks."""

    def __init__(self, periods: Iterable[int]) -> None:
        self.periods = tuple(p for p in periods if p != BASE_PERIOD)
        self._open: dict[tuple[int, int], Shards] = {}

    def add(self, window: Window) -> None:
        self.add_state(ident(window.scope, window.name, window.dimensions), window.start, window.state())

    def add_state(self, key: tuple, start: int, state: dict) -> None:
        """Merge a sealed 60 s window's state into each period's open window. ``key`` is the series'
        ``ident``; pass the same tuple each time (the storage's own key): nothing new is kept per window."""
        for period in self.periods:
            group_key = (period, start // period * period)
            group = self._open.get(group_key)
            if group is None:
                group = self._open[group_key] = Shards()
            target = group.get(key)
            if target is None:  # the period's first window: a copy of its state
                group[key] = dict(state)
            else:
                merge_state(target, state)

    def open_windows(self) -> list[Window]:
        """The windows not yet released (for the spool's snapshot)."""
        return [
            Window.from_state(key[1], pairs(key), start, period, key[0], state)
            for (period, start), group in self._open.items()
            for key, state in group.items()
        ]

    def due(
        self,
        now: float,
        force: bool = False,
        pace: Callable[[], None] | None = None,
        out: list[Window] | None = None,
    ) -> list[Window]:
        """Windows whose period has ended by ``now`` (all of them if ``force``). ``pace`` is called once per
        window (the storage hands the interpreter lock to other threads from there). Appended to ``out`` if
        given (no second list of 200,000 windows to copy and free at once), and returned."""
        ready: list[Window] = [] if out is None else out
        for group_key in [k for k in self._open if force or k[1] + k[0] <= now]:
            period, start = group_key
            for part in self._open.pop(group_key).parts:
                while part:  # one at a time: freeing 200,000 states at once holds the interpreter lock
                    key, state = part.popitem()
                    ready.append(Window.from_state(key[1], pairs(key), start, period, key[0], state))
                    if pace is not None:
                        pace()
        return ready

    def __len__(self) -> int:
        return sum(len(group) for group in self._open.values())


def combine(windows: Iterable[Window], pace: Callable[[], None] | None = None) -> list[Window]:
    """Windows with equal keys merged into one each (order kept); the inputs are never changed. ``pace`` is
    called once per window."""
    merged: dict[tuple, Window] = {}
    copies: set[tuple] = set()
    for window in windows:
        if pace is not None:
            pace()
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
    it); about one window per series and minute of that span. Kept as states (``new_state``) under flat
    keys, in shards: ten minutes of 200,000 series are millions of windows, which as ``Window`` objects the
    garbage collector would walk on every full pass (see docs/architecture.md, "Storage").
    """

    def __init__(self, keep_s: float = LEDGER_KEEP_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.keep_s = keep_s
        self._clock = clock
        self._sent = Shards()
        self._pruned_at = clock()

    def complete(self, window: Window) -> Window:
        """``window`` merged with what was sent before for its key (recorded as sent now). A window seen for
        the first time is returned as it is."""
        now = self._clock()
        if now - self._pruned_at >= 60.0:
            self._prune(now)
        key = (window.period, window.start, *ident(window.scope, window.name, window.dimensions))
        earlier = self._sent.get(key)
        state = window.state()
        if earlier is not None:
            merge_state(state, earlier)  # into the new copy: what was stored is never changed
            window = Window.from_state(
                window.name, window.dimensions, window.start, window.period, window.scope, state
            )
        state["t"] = now  # in the dict, not a (state, time) tuple: a tuple holding a dict stays tracked
        self._sent[key] = state
        return window

    def _prune(self, now: float) -> None:
        self._pruned_at = now
        parts = self._sent.parts
        for i, part in enumerate(parts):
            parts[i] = {k: v for k, v in part.items() if now - v["t"] < self.keep_s}

    def __len__(self) -> int:
        return len(self._sent)
