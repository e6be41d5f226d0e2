"""Both versions' evidence, read from CloudMonitor's fleet stream (the raw per-run points, no instance).

Per version (``flow=<flow>, version=<tag>``), from ``langflow_fleet_flow_duration_ms``: its per-version copy
carries the flow's dimensions and ``status``, one point per run, so the runs are its ``SampleCount`` over
both statuses, the failed runs its ``SampleCount`` at ``status=error``, and the P95 is that of the
``status=ok`` runs, with the interval it lies in by ``compare``'s rule
(:func:`langflow_cms.ops.compare.interval`). Reads and combinations go through
:mod:`langflow_cms.ops.readback`, the one place that combines read-back data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langflow_cms import contract
from langflow_cms.ops.compare import interval
from langflow_cms.ops.guard.rule import Side
from langflow_cms.ops.readback import Point, count, fleet_percentile, fleet_range, read

VERSION = "version"
"""The dimension that tells versions apart (set by hand on the CMS Metric node, or by the server)."""
STATISTIC = "P95"


def side_from_points(version: str, durations: Sequence[Point]) -> Side:
    """A :class:`Side` from one version's fleet duration points (both statuses)."""
    ok = [p for p in durations if p["dimensions"].get(contract.STATUS, contract.OK) == contract.OK]
    failed = [p for p in durations if p["dimensions"].get(contract.STATUS) == contract.ERROR]
    p95 = fleet_percentile(ok, STATISTIC)
    return Side(
        version=version,
        runs=count(durations),
        errors=count(failed),
        p95=p95.shown,
        p95_interval=interval(ok, STATISTIC) if p95.kind in ("exact", "bounds") else None,
    )


def read_side(reader: Any, flow: str, version: str, start_ms: int, end_ms: int) -> Side:
    """One version's evidence over ``(start_ms, end_ms]``, widened to whole 300 s fleet windows: a window
    is stamped with its start, so the one holding ``start_ms`` starts before it and must be asked for."""
    wanted = {contract.FLOW: flow, VERSION: version}
    window = fleet_range(start_ms, end_ms)
    return side_from_points(version, read(reader, contract.FLEET_FLOW_METRIC, wanted, **window))
