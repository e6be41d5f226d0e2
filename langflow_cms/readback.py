"""Read what CMS holds back into a table, the same way from real CloudMonitor and from the emulator.

Used by `make demo` and by people checking a deployment: DescribeCustomMetricList finds the series,
DescribeMetricList fetches their 60 s data points.
"""

from __future__ import annotations

from dataclasses import dataclass

from aliyunsdkcore.client import AcsClient

from langflow_cms.query import describe_custom_metric_list, describe_metric_list

HIDDEN_DIMENSIONS = ("instance", "env")


@dataclass
class Row:
    """One series summed over its windows. Percentiles are count-weighted means of the per-window values."""

    metric: str
    dimensions: dict[str, str]
    count: int
    errors: int
    p50: float
    p95: float
    p99: float


def series_rows(
    client: AcsClient,
    *,
    endpoint: str | None,
    user_id: str,
    metric_names: list[str],
    since_ms: int | None = None,
) -> list[Row]:
    rows: list[Row] = []
    for name in metric_names:
        for series in describe_custom_metric_list(client, metric_name=name, endpoint=endpoint):
            points = describe_metric_list(
                client,
                user_id=user_id,
                metric_name=name,
                dimensions=series["dimensions"],
                period=60,
                start_ms=since_ms,
                endpoint=endpoint,
            )
            count = sum(int(p["values"].get("SampleCount", 0)) for p in points)
            if not count:
                continue

            def weighted(key: str, points=points, count=count) -> float:
                return sum(float(p["values"][key]) * int(p["values"]["SampleCount"]) for p in points) / count

            dims = {k: v for k, v in series["dimensions"].items() if k not in HIDDEN_DIMENSIONS}
            errors = count if dims.get("status") == "error" else 0
            rows.append(Row(name, dims, count, errors, weighted("P50"), weighted("P95"), weighted("P99")))
    return rows


def merge_instances(rows: list[Row]) -> list[Row]:
    """One row per metric and visible dimensions: processes summed, `status` folded into the errors column."""
    merged: dict[tuple, Row] = {}
    for row in rows:
        dims = {k: v for k, v in row.dimensions.items() if k != "status"}
        key = (row.metric, tuple(sorted(dims.items())))
        into = merged.get(key)
        if into is None:
            merged[key] = Row(row.metric, dims, row.count, row.errors, row.p50, row.p95, row.p99)
            continue
        total = into.count + row.count
        for attr in ("p50", "p95", "p99"):
            setattr(into, attr, (getattr(into, attr) * into.count + getattr(row, attr) * row.count) / total)
        into.count, into.errors = total, into.errors + row.errors
    return sorted(merged.values(), key=lambda r: (r.metric, sorted(r.dimensions.items())))


def format_table(rows: list[Row], columns: list[str]) -> str:
    """A plain-text table: the given dimension columns, then runs, errors and P50/P95/P99 in ms."""
    header = [*columns, "runs", "errors", "P50 ms", "P95 ms", "P99 ms"]
    body = [
        [row.dimensions.get(c, "") for c in columns]
        + [str(row.count), str(row.errors), f"{row.p50:.1f}", f"{row.p95:.1f}", f"{row.p99:.1f}"]
        for row in rows
    ]
    widths = [max(len(str(cell)) for cell in col) for col in zip(header, *body, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
