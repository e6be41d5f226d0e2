"""The read-back rule: how several CloudMonitor series or windows are combined into one number.

This is the only place that combines read-back data. The demo table, ``langflow-cms top``, ``compare``
and anything later (dashboards, alarm checks) call these functions instead of doing arithmetic on
DescribeMetricList points themselves.

**The rule**

* **Counts and sums are summed**: ``SampleCount``, ``Sum`` (runs, errors, tokens) over instances, windows
  and series. They are exact.
* **Averages are weighted**: ``Average`` = summed ``Sum`` / summed ``SampleCount``, never a mean of
  averages.
* **Maximum and minimum are taken**: the largest ``Maximum``, the smallest ``Minimum``.
* **Percentiles are never averaged.** Percentiles come from the *fleet stream* (raw ``Type=0`` points, no
  ``instance`` dimension, contract.FLEET_*), for which CloudMonitor computes P10..P99 over every run of the
  fleet in one window. One series in one window (one *cell*) gives an exact percentile. For more than one
  cell (a time range longer than one period, or several series such as two ``env`` values) there is no
  exact combination: the percentile of the union lies between the smallest and the largest of the cells'
  percentiles (a quantile of a mixture lies between the quantiles of its parts), so we report that
  interval and no single value. Readers that want one exact figure ask for one cell: ``top`` and
  ``compare`` read the fleet stream at the 300 s period, so a range of up to five minutes is one window.
* **Per-host percentiles are only an upper bound.** Without a fleet stream (e.g. nodes without
  ``LANGFLOW_CMS_FLEET_NODES``) the per-instance aggregates' percentiles can only bound the fleet's: the
  fleet P95 is at most the *largest* per-instance P95 (and at least the smallest) by the same mixture
  argument. We show the maximum, labelled as an upper bound; averaging them can be wrong in both
  directions (see tests/test_readback.py). When a single instance-window holds every run, its value is
  exact.

``LastValue`` is taken from the latest point; rates per second are recomputed from the summed counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from langflow_cms import contract

PERCENTILES = ("P10", "P20", "P30", "P40", "P50", "P60", "P70", "P75", "P80", "P90", "P95", "P98", "P99")
"""The percentile statistics CloudMonitor computes over raw data, lowest first."""
SHOWN_PERCENTILES = ("P50", "P95", "P99")
SUMMED = ("SampleCount", "Sum")
HIDDEN_DIMENSIONS = (contract.INSTANCE, contract.ENV)
FLEET_PERIOD = 300
"""Period at which the fleet stream's percentiles are read: one window covers a five-minute range."""

Point = Mapping[str, Any]
"""A DescribeMetricList point as ``query.describe_metric_list`` returns it: name, dimensions, time, values."""


def combine(points: Iterable[Point]) -> dict[str, float]:
    """Combine points of any instances, windows and series by the rule: counts and sums summed, the
    average weighted, max/min taken, ``LastValue`` from the latest point. Percentiles are left out: use
    :func:`fleet_percentile` or :func:`upper_bound`. Empty input gives ``{}``; zero runs give count 0."""
    points = list(points)
    if not points:
        return {}
    out: dict[str, float] = {}
    for key in SUMMED:
        found = [_num(p, key) for p in points if key in p["values"]]
        if found:
            out[key] = sum(found)
    if "SampleCount" in out and "Sum" in out:
        out["Average"] = out["Sum"] / out["SampleCount"] if out["SampleCount"] else math.nan
    for key, pick in (("Maximum", max), ("Minimum", min)):
        found = [_num(p, key) for p in points if key in p["values"]]
        if found:
            out[key] = pick(found)
    latest = max((p for p in points if "LastValue" in p["values"]), key=lambda p: p["time"], default=None)
    if latest is not None:
        out["LastValue"] = _num(latest, "LastValue")
    return out


def count(points: Iterable[Point]) -> int:
    """Summed ``SampleCount`` (exact)."""
    return round(sum(_num(p, "SampleCount") for p in points if "SampleCount" in p["values"]))


def total(points: Iterable[Point]) -> float:
    """Summed ``Sum`` (exact)."""
    return sum(_num(p, "Sum") for p in points if "Sum" in p["values"])


@dataclass(frozen=True)
class Percentile:
    """A percentile read back from CloudMonitor, with how much it can be trusted.

    ``kind``: ``"exact"`` (one fleet cell; ``value`` set, ``low == high == value``), ``"bounds"``
    (several fleet cells: the true value lies in ``[low, high]``, ``value`` is None), ``"upper_bound"``
    (per-instance aggregates: the fleet value is at most ``high``; ``value`` is None) or ``"none"``.
    ``cells`` is how many (series, window) cells it came from; ``window_ms`` the window of an exact one.
    """

    statistic: str
    kind: str
    value: float | None
    low: float | None
    high: float | None
    cells: int
    window_ms: int | None = None
    runs: int = 0

    @property
    def shown(self) -> float | None:
        """The number to print: the exact value, or the upper end of a bound (labelled by ``label``)."""
        return self.value if self.value is not None else self.high

    def label(self, digits: int = 1) -> str:
        """``123.4``, ``120.0..130.5`` (bounds) or ``<=130.5`` (upper bound); ``-`` when absent."""
        if self.kind == "exact" and self.value is not None:
            return f"{self.value:.{digits}f}"
        if self.kind == "bounds" and self.low is not None and self.high is not None:
            return f"{self.low:.{digits}f}..{self.high:.{digits}f}"
        if self.kind == "upper_bound" and self.high is not None:
            return f"<={self.high:.{digits}f}"
        return "-"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _none(statistic: str) -> Percentile:
    return Percentile(statistic, "none", None, None, None, 0)


def fleet_percentile(points: Sequence[Point], statistic: str) -> Percentile:
    """A percentile of the fleet stream from its points (each a cell: one series, one window).

    One cell with samples: exact. Several: ``bounds`` = [smallest, largest] of the cells' values, because
    percentiles of different windows or series cannot be combined exactly (never averaged). Cells without
    the statistic or without samples are skipped.
    """
    cells = [p for p in points if statistic in p["values"] and _num(p, "SampleCount", 1) > 0]
    if not cells:
        return _none(statistic)
    values = [_num(p, statistic) for p in cells]
    runs = count(cells)
    if len(cells) == 1:
        return Percentile(statistic, "exact", values[0], values[0], values[0], 1, int(cells[0]["time"]), runs)
    return Percentile(statistic, "bounds", None, min(values), max(values), len(cells), None, runs)


def upper_bound(points: Sequence[Point], statistic: str) -> Percentile:
    """The largest per-instance (per-window) value of a percentile: an upper bound of the fleet's.

    A single cell (one instance, one window) held every run, so its value is the exact one."""
    cells = [p for p in points if statistic in p["values"] and _num(p, "SampleCount", 1) > 0]
    if not cells:
        return _none(statistic)
    if len(cells) == 1:
        return fleet_percentile(cells, statistic)
    values = [_num(p, statistic) for p in cells]
    return Percentile(
        statistic, "upper_bound", None, min(values), max(values), len(cells), None, count(cells)
    )


def percentiles(
    fleet: Sequence[Point],
    fallback: Sequence[Point] = (),
    statistics: Sequence[str] = SHOWN_PERCENTILES,
) -> dict[str, Percentile]:
    """Each statistic from the fleet stream's points, else as an upper bound from ``fallback`` (the
    per-instance aggregates)."""
    out = {}
    for statistic in statistics:
        found = fleet_percentile(fleet, statistic)
        out[statistic] = found if found.kind != "none" else upper_bound(fallback, statistic)
    return out


def latest_window(points: Sequence[Point]) -> list[Point]:
    """The points of the most recent window only (one cell per series): 'which window's' percentile."""
    if not points:
        return []
    last = max(int(p["time"]) for p in points)
    return [p for p in points if int(p["time"]) == last]


def group_by(
    points: Iterable[Point], key: Callable[[Mapping[str, str]], Any | None]
) -> dict[Any, list[Point]]:
    """Points grouped by ``key(dimensions)``; a key of None drops the point."""
    groups: dict[Any, list[Point]] = {}
    for point in points:
        k = key(point["dimensions"])
        if k is not None:
            groups.setdefault(k, []).append(point)
    return groups


def matches(dimensions: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    """True when every ``key=value`` of ``wanted`` is in ``dimensions``."""
    return all(dimensions.get(k) == v for k, v in wanted.items())


def _num(point: Point, key: str, default: float = 0.0) -> float:
    try:
        return float(point["values"].get(key, default))
    except (TypeError, ValueError):
        return default


# --- reading -------------------------------------------------------------------------------------------


def read(
    reader: Any,
    metric: str,
    wanted: Mapping[str, str],
    *,
    period: int,
    start_ms: int,
    end_ms: int,
) -> list[Point]:
    """Points of every series of ``metric`` whose dimensions include ``wanted``, in (start, end]."""
    found = reader.series(metric, dimension=dict(wanted) or None)
    series = [s["dimensions"] for s in found if matches(s["dimensions"], wanted)]
    if not series:
        return []
    points = reader.points(metric, series, period=period, start_ms=start_ms, end_ms=end_ms)
    # real CMS returns windows whose timestamp is in the range; keep exactly those
    return [p for p in points if start_ms < int(p["time"]) <= end_ms]


def narrowest(points: Sequence[Point], keys: Iterable[str]) -> list[Point]:
    """One fleet series per cell. A flow with its own dimensions sends each run twice: once with exactly
    ``flow, status`` (what alarms target), once with its dimensions too. Per flow (and node), of the series
    that carry every one of ``keys``, keep those with the fewest dimensions (``env`` aside); a flow none of
    whose series carries them all keeps its narrowest ones."""
    wanted = set(keys)

    def size(p: Point) -> int:
        return len(set(p["dimensions"]) - {contract.ENV})

    out: list[Point] = []
    for group in group_by(points, lambda d: (d.get(contract.FLOW), d.get(contract.NODE))).values():
        fit = [p for p in group if wanted <= set(p["dimensions"])] or group
        low = min(size(p) for p in fit)
        out += [p for p in fit if size(p) == low]
    return out


def no_runs_note(reader: Any, flow: str, *, period: int, start_ms: int, end_ms: int) -> str:
    """What to say when ``flow`` has no runs in the range: which flow names do (a renamed or copied flow,
    ``poem_slow`` for ``poem``, is found at once): "no runs of 'poem'; flows seen: poem_slow, summarize"."""
    seen = sorted(
        {
            p["dimensions"][contract.FLOW]
            for p in read(reader, contract.FLOW_METRIC, {}, period=period, start_ms=start_ms, end_ms=end_ms)
            if contract.FLOW in p["dimensions"]
        }
    )
    return f"no runs of {flow!r} in this range; flows seen: {', '.join(seen) if seen else 'none'}"


def fleet_range(start_ms: int, end_ms: int) -> dict[str, int]:
    """Where the fleet stream's percentiles are read (keyword arguments of :func:`read`): every 300 s
    window that holds a moment of the range (a window is stamped with its start, so the one holding
    ``start_ms`` begins before it; the query is left-open), and at least one window.
    A range inside one window gives one cell per series (exact); a longer one several (bounds)."""
    span = FLEET_PERIOD * 1000
    start_ms = min(start_ms, end_ms - 1)
    return {"period": FLEET_PERIOD, "start_ms": start_ms - start_ms % span - 1, "end_ms": end_ms}


def fleet_percentiles(
    reader: Any,
    wanted: Mapping[str, str],
    start_ms: int,
    end_ms: int,
    *,
    metric: str = contract.FLEET_FLOW_METRIC,
    statistics: Sequence[str] = SHOWN_PERCENTILES,
) -> dict[str, Percentile]:
    """The fleet stream's percentiles of the ``status=ok`` runs of every series with ``wanted``
    dimensions, over :func:`fleet_range` of the range, by the rule (exact for one cell, else bounds)."""
    points = narrowest(read(reader, metric, wanted, **fleet_range(start_ms, end_ms)), wanted)
    ok = [p for p in points if p["dimensions"].get(contract.STATUS, contract.OK) == contract.OK]
    return {statistic: fleet_percentile(ok, statistic) for statistic in statistics}


# --- the demo table ---------------------------------------------------------------------------------------


@dataclass
class Row:
    """One table row: runs and errors summed (exact), percentiles by the rule (see the module doc)."""

    metric: str
    dimensions: dict[str, str]
    count: int
    errors: int
    p50: Percentile
    p95: Percentile
    p99: Percentile


def rows(
    points: Sequence[Point], columns: Sequence[str], fleet: Sequence[Point] = (), metric: str = ""
) -> list[Row]:
    """One row per value of ``columns`` (dimensions): per-instance ``points`` (ok and error series) give
    the exact runs and errors, ``fleet`` (status ok) the percentiles; without fleet points for a row the
    percentiles are the per-instance upper bound of the ok series."""

    def key(dims: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(dims.get(c, "") for c in columns)

    fleet_by = group_by(
        (
            p
            for p in narrowest(fleet, columns)
            if p["dimensions"].get(contract.STATUS, contract.OK) == contract.OK
        ),
        key,
    )
    out = []
    for k, group in sorted(group_by(points, key).items()):
        ok = [p for p in group if p["dimensions"].get(contract.STATUS) != contract.ERROR]
        errors = count(p for p in group if p["dimensions"].get(contract.STATUS) == contract.ERROR)
        found = percentiles(fleet_by.get(k, []), ok)
        out.append(
            Row(
                metric or str(group[0]["name"]),
                dict(zip(columns, k, strict=True)),
                count(group),
                errors,
                found["P50"],
                found["P95"],
                found["P99"],
            )
        )
    return out


def format_table(table: Sequence[Row], columns: Sequence[str]) -> str:
    """A plain-text table: the given dimension columns, then runs, errors and P50/P95/P99 in ms (``<=x``
    marks a per-instance upper bound, ``a..b`` bounds over several fleet windows)."""
    header = [*columns, "runs", "errors", "P50 ms", "P95 ms", "P99 ms"]
    body = [
        [row.dimensions.get(c, "") for c in columns]
        + [str(row.count), str(row.errors), row.p50.label(), row.p95.label(), row.p99.label()]
        for row in table
    ]
    widths = [max(len(str(cell)) for cell in col) for col in zip(header, *body, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
