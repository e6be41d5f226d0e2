"""``langflow-cms top``: the last N minutes per flow (or, with a flow, per node), read back from CloudMonitor.

Everything is read with DescribeCustomMetricList (which series exist, filtered by metric name and flow)
and DescribeMetricList (their points), through one :class:`~langflow_cms.ops.query.Reader` whose rate limiter
paces every call. Numbers are combined by the one read-back rule (:mod:`langflow_cms.ops.readback`):

* **runs** and **errors**: ``SampleCount`` of the per-host aggregates (``contract.FLOW_METRIC``, or
  ``NODE_METRIC`` per node) summed over instances and 60 s windows: exact. ``error rate`` = errors / runs.
* **P50/P95/P99**: from the fleet stream (``FLEET_FLOW_METRIC`` / ``FLEET_NODE_METRIC``, ``status=ok``) at
  the 300 s period, windows *starting* within the range (at least the last five minutes). A range of up to
  five minutes holds one window, so the value is exact; longer ranges, or a row made of several fleet
  series, give bounds ``low..high``.
  Without a fleet stream (nodes, unless ``LANGFLOW_CMS_FLEET_NODES`` is on), the largest per-instance
  percentile is shown as an upper bound ``<=x``.
* **tokens**: ``TOKENS_METRIC`` ``Sum`` per flow, model and direction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from langflow_cms import clock, contract
from langflow_cms.ops.query import Reader
from langflow_cms.ops.readback import (
    SHOWN_PERCENTILES,
    Point,
    count,
    fleet_range,
    group_by,
    narrowest,
    no_runs_note,
    percentiles,
    read,
    total,
)

COUNT_PERIOD = 60


def _is(status: str):
    return lambda p: p["dimensions"].get(contract.STATUS, contract.OK) == status


def collect(
    reader: Reader,
    *,
    minutes: float = 5,
    flow: str | None = None,
    where: Mapping[str, str] | None = None,
    by: Sequence[str] = (),
    end_ms: int | None = None,
) -> dict[str, Any]:
    """The report as plain data (what ``top --json`` prints).

    ``where``: flow dimensions every series must have (``version=v2``); ``by``: flow dimensions that split
    the rows further. With ``flow`` the rows are that flow's nodes (plus a ``whole flow`` row).
    """
    end_ms = int(clock.wall() * 1000) if end_ms is None else end_ms  # "now" of a test clock too
    start_ms = end_ms - int(minutes * 60_000)
    wanted = dict(where or {})
    if flow is not None:
        wanted[contract.FLOW] = flow
    window = {"period": COUNT_PERIOD, "start_ms": start_ms, "end_ms": end_ms}
    fleet_window = fleet_range(start_ms, end_ms)
    by = list(by)

    flow_points = read(reader, contract.FLOW_METRIC, wanted, **window)
    fleet_flows = [
        p
        for p in narrowest(read(reader, contract.FLEET_FLOW_METRIC, wanted, **fleet_window), [*wanted, *by])
        if _is(contract.OK)(p)
    ]
    flow_columns = [contract.FLOW, *by]
    flow_rows = _rows(flow_points, fleet_flows, flow_columns)

    node_rows: list[dict[str, Any]] = []
    if flow is not None:
        node_columns = [contract.NODE, contract.COMPONENT, *by]
        node_points = read(reader, contract.NODE_METRIC, wanted, **window)
        fleet_nodes = [
            p
            for p in narrowest(
                read(reader, contract.FLEET_NODE_METRIC, wanted, **fleet_window), [*wanted, *by]
            )
            if _is(contract.OK)(p)
        ]
        # the fleet node stream has no component dimension: match it by node (and the split columns)
        node_rows = _rows(node_points, fleet_nodes, node_columns, fleet_columns=[contract.NODE, *by])
        for row in node_rows:
            row[contract.FLOW] = flow

    tokens = _tokens(reader, wanted, window)
    notes = _notes(reader, flow, window, flow_points, fleet_flows, flow_rows, node_rows)
    return {
        "range": {"start_ms": start_ms, "end_ms": end_ms, "minutes": minutes},
        "percentile_range": fleet_window,
        "namespace": contract.CUSTOM_NAMESPACE_PREFIX + reader.user_id,
        "flow": flow,
        "where": dict(where or {}),
        "flows": flow_rows,
        "nodes": node_rows,
        "tokens": tokens,
        "notes": notes,
    }


def _tokens(reader: Reader, wanted: Mapping[str, str], window: dict[str, int]) -> list[dict[str, Any]]:
    """Tokens per flow, model and direction over the range."""
    tokens = []
    token_points = read(reader, contract.TOKENS_METRIC, wanted, **window)
    token_key = [contract.FLOW, contract.MODEL, contract.DIRECTION]
    for key, group in sorted(
        group_by(token_points, lambda d: tuple(d.get(k, "") for k in token_key)).items()
    ):
        tokens.append({**dict(zip(token_key, key, strict=True)), "tokens": total(group)})
    return tokens


def _notes(
    reader: Reader,
    flow: str | None,
    window: dict[str, int],
    flow_points: list[Point],
    fleet_flows: list[Point],
    flow_rows: list[dict[str, Any]],
    node_rows: list[dict[str, Any]],
) -> list[str]:
    """What the reader should know about the numbers: no runs, no fleet stream, bounds."""
    notes = []
    if flow is not None and not flow_points:
        notes.append(no_runs_note(reader, flow, **window))
    if not fleet_flows and flow_points:
        notes.append(
            f"no fleet stream ({contract.FLEET_FLOW_METRIC}) in this range: flow percentiles are "
            "per-instance upper bounds"
        )
    if any(r[p]["kind"] == "bounds" for r in flow_rows + node_rows for p in ("p50", "p95", "p99")):
        notes.append(
            "low..high: the row spans several fleet series or windows, whose percentiles cannot be "
            "combined exactly; the true value lies in the bounds. For one exact value split the rows "
            "(--by KEY), filter them (--where key=value) or read at most 5 minutes (one 300 s window)"
        )
    if any(r[p]["kind"] == "upper_bound" for r in node_rows for p in ("p50", "p95", "p99")):
        notes.append(
            f"<=x: no fleet node stream ({contract.FLEET_NODE_METRIC}); the largest per-instance percentile "
            "is an upper bound of the fleet's (set LANGFLOW_CMS_FLEET_NODES for exact node percentiles)"
        )
    return notes


def _rows(
    points: list[Point],
    fleet: list[Point],
    columns: list[str],
    *,
    fleet_columns: list[str] | None = None,
) -> list[dict[str, Any]]:
    fleet_columns = fleet_columns or columns

    def key(cols):
        return lambda d: tuple(d.get(c, "") for c in cols)

    fleet_by = group_by(fleet, key(fleet_columns))
    out = []
    for k, group in sorted(group_by(points, key(columns)).items()):
        dims = dict(zip(columns, k, strict=True))
        runs = count(group)
        errors = count(p for p in group if _is(contract.ERROR)(p))
        ok = [p for p in group if not _is(contract.ERROR)(p)]
        found = percentiles(fleet_by.get(tuple(dims[c] for c in fleet_columns), []), ok)
        out.append(
            {
                **dims,
                "runs": runs,
                "errors": errors,
                "error_rate": errors / runs if runs else None,
                **{s.lower(): found[s].as_dict() for s in SHOWN_PERCENTILES},
            }
        )
    return out


def render(report: Mapping[str, Any], console: Any, *, by: Sequence[str] = (), box: Any = None) -> None:
    """Print the report as rich tables on ``console``."""
    from rich.table import Table

    from langflow_cms.ops.readback import Percentile

    def pct(data: Mapping[str, Any]) -> str:
        return Percentile(**data).label()

    start = time.strftime("%H:%M:%S", time.localtime(report["range"]["start_ms"] / 1000))
    end = time.strftime("%H:%M:%S", time.localtime(report["range"]["end_ms"] / 1000))
    flow = report["flow"]
    title = f"{'nodes of ' + flow if flow else 'flows'}, {start}-{end} ({report['namespace']})"
    table = Table(title=title, title_justify="left", **({"box": box} if box else {}))
    first = [contract.NODE, contract.COMPONENT] if flow else [contract.FLOW]
    for column in [*first, *by]:
        table.add_column(column)
    for column in ("runs", "errors", "error rate", "P50 ms", "P95 ms", "P99 ms"):
        table.add_column(column, justify="right")

    def add(row: Mapping[str, Any], names: list[str]) -> None:
        rate = "-" if row["error_rate"] is None else f"{100 * row['error_rate']:.1f}%"
        table.add_row(
            *[str(row.get(c, "")) for c in [*names, *by]],
            str(row["runs"]),
            str(row["errors"]),
            rate,
            pct(row["p50"]),
            pct(row["p95"]),
            pct(row["p99"]),
        )

    if flow:
        for row in report["flows"]:
            add({**row, contract.NODE: "(whole flow)", contract.COMPONENT: ""}, first)
        table.add_section()
        for row in report["nodes"]:
            add(row, first)
    else:
        for row in report["flows"]:
            add(row, first)
    if not report["flows"] and not report["nodes"] and not flow:
        console.print(f"no flow runs in the last {report['range']['minutes']:g} minutes")
    elif not report["flows"] and not report["nodes"]:
        pass  # the note names the flows that did run
    else:
        console.print(table)
    if report["tokens"]:
        tokens = Table(title="tokens", title_justify="left", **({"box": box} if box else {}))
        for column in (contract.FLOW, contract.MODEL, contract.DIRECTION):
            tokens.add_column(column)
        tokens.add_column("tokens", justify="right")
        for row in report["tokens"]:
            tokens.add_row(
                row[contract.FLOW], row[contract.MODEL], row[contract.DIRECTION], f"{row['tokens']:.0f}"
            )
        console.print(tokens)
    for note in report["notes"]:
        console.print(f"note: {note}", style="dim")
