"""The read side: DescribeCustomMetricList (which series exist) and DescribeMetricList (their data).

Shapes follow the public API models (aliyun Tea SDK models for cms 2019-01-01):

* DescribeCustomMetricList takes GroupId, MetricName, Dimension, Md5, PageNumber (default 1), PageSize
  (default 10) and has **no time range**. Its ``Result`` is a JSON *string*:
  ``{"all": <total>, "size": <page size>, "page": <page>, "param": {"metric": "<JSON string>"},
  "list": [...]}``; ``param.metric`` is itself a JSON string with metricName, groupId, project
  (``acs_customMetric_<uid>``), dimension and status (cms-api.md §6.1). The documented example only ever
  shows an empty ``list``; the item fields used here (metricName, groupId, dimension, md5) mirror
  ``param.metric`` and are the emulator's best guess.
* Data points of custom metrics are read with DescribeMetricList on namespace ``acs_customMetric_<uid>``,
  ``Dimensions='[{"groupId":"0","dimension":"k1=v1&k2=v2"}]'`` (keys sorted), Period (60 or 300),
  StartTime/EndTime (left-open, right-closed, at most 31 days apart) and NextToken/Length (≤ 1440) paging
  (cms-api.md §6.2). ``Datapoints`` is a JSON *string* list.
* Raw (Type=0) points are aggregated into aligned 60 s or 300 s windows with every statistic CMS documents
  for raw data (cms-api.md §6.1). CMS does not document its percentile method: nearest-rank is a guess.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import math
import time
from collections.abc import Mapping
from typing import Any

from .errors import invalid_parameter, missing_parameter
from .limits import MAX_QUERY_LENGTH, MAX_QUERY_RANGE_MS, PERCENTILES, QUERY_PERIODS, STATISTICS
from .store import Store

NAMESPACE_PREFIX = "acs_customMetric_"


def dimension_string(dimensions: Mapping[str, str]) -> str:
    """CMS's query form of a dimension set: ``k1=v1&k2=v2`` with keys in ascending order."""
    return "&".join(f"{key}={dimensions[key]}" for key in sorted(dimensions))


def series_md5(group_id: str, name: str, dimensions: Mapping[str, str]) -> str:
    """Emulator-specific series id (real CMS's Md5 derivation is not documented)."""
    return hashlib.md5(f"{group_id}|{name}|{dimension_string(dimensions)}".encode()).hexdigest()


def _parse_dimension_filter(raw: str) -> list[tuple[str, str | None]]:
    """``{a=1&b=2}``, ``a=1&b=2``, a JSON object, or a bare key; a key without ``=`` matches any value."""
    text = raw.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
            return [(str(k), str(v)) for k, v in obj.items()]
        except ValueError:
            text = text.strip("{}")
    pairs: list[tuple[str, str | None]] = []
    for part in filter(None, text.split("&")):
        key, sep, value = part.partition("=")
        pairs.append((key, value if sep else None))
    return pairs


def _page_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise invalid_parameter(name, "must be a positive integer")
    return int(raw)


def describe_custom_metric_list(params: Mapping[str, str], store: Store, user_id: str) -> dict[str, Any]:
    """The body (minus RequestId) of a DescribeCustomMetricList answer."""
    page = _page_param(params, "PageNumber", 1)
    size = _page_param(params, "PageSize", 10)
    wanted_dims = _parse_dimension_filter(params["Dimension"]) if params.get("Dimension") else []

    series: dict[tuple[str, str, str], dict[str, Any]] = {}
    for entry in store.entries(params.get("MetricName") or None):
        if params.get("GroupId") and entry["group_id"] != params["GroupId"]:
            continue
        dims = entry["dimensions"]
        if any(key not in dims or (value is not None and dims[key] != value) for key, value in wanted_dims):
            continue
        md5 = series_md5(entry["group_id"], entry["name"], dims)
        if params.get("Md5") and md5 != params["Md5"]:
            continue
        series.setdefault(
            (entry["name"], entry["group_id"], md5),
            {
                "metricName": entry["name"],
                "groupId": int(entry["group_id"]),
                "dimension": dimension_string(dims),
                "md5": md5,
            },
        )
    ordered = [series[key] for key in sorted(series)]
    # param.metric is a JSON string echoing the query (cms-api.md §6.1); status 1 is the documented example.
    metric = {
        "metricName": params.get("MetricName") or "",
        "groupId": int(params["GroupId"]) if params.get("GroupId", "").isdigit() else 0,
        "project": NAMESPACE_PREFIX + user_id,
        "dimension": "&".join(
            k if v is None else f"{k}={v}" for k, v in sorted(wanted_dims, key=lambda kv: kv[0])
        ),
        "status": 1,
    }
    result = {
        "all": len(ordered),
        "size": size,
        "page": page,
        "param": {"metric": json.dumps(metric)},
        "list": ordered[(page - 1) * size : page * size],
    }
    return {"Code": "200", "Message": "success", "Result": json.dumps(result)}


def query_time_ms(raw: str | None, name: str, default: int) -> int:
    """Epoch ms, ``YYYY-MM-DD hh:mm:ss`` or ``YYYY-MM-DDThh:mm:ssZ`` (the emulator reads both as UTC)."""
    if not raw:
        return default
    if raw.isdigit():
        return int(raw)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return calendar.timegm(time.strptime(raw, fmt)) * 1000
        except ValueError:
            continue
    raise invalid_parameter(name, "must be epoch milliseconds, YYYY-MM-DD hh:mm:ss or YYYY-MM-DDThh:mm:ssZ")


def _dimension_filters(raw: str | None) -> list[tuple[str | None, str | None]]:
    """``[{"groupId": "0", "dimension": "k=v&..."}]`` (or one object) → [(group, canonical dimension)]."""
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        raise invalid_parameter("Dimensions", "must be a JSON array of objects") from None
    items = value if isinstance(value, list) else [value]
    filters: list[tuple[str | None, str | None]] = []
    for item in items:
        if not isinstance(item, dict):
            raise invalid_parameter("Dimensions", "must be a JSON array of objects")
        group = str(item["groupId"]) if "groupId" in item else None
        dimension = item.get("dimension")
        if dimension is not None:
            pairs = _parse_dimension_filter(str(dimension))
            dimension = dimension_string({k: v or "" for k, v in pairs})
        filters.append((group, dimension))
    return filters


def describe_metric_list(params: Mapping[str, str], store: Store, user_id: str) -> dict[str, Any]:
    """The body (minus RequestId) of a DescribeMetricList answer for a custom-metric namespace.

    Type=1 points are returned as stored for a matching Period; Type=0 (raw) points are aggregated
    into aligned Period windows with every statistic CMS documents for raw data.
    """
    for name in ("Namespace", "MetricName"):
        if not params.get(name):
            raise missing_parameter(name)
    period = _page_param(params, "Period", 60)
    if params["Namespace"].startswith(NAMESPACE_PREFIX) and period not in QUERY_PERIODS:
        # Custom metrics exist at 60 s and 300 s only (cms-api.md §1.1, §6.1).
        raise invalid_parameter("Period", f"must be one of {QUERY_PERIODS} for custom metrics")
    now_ms = int(time.time() * 1000)
    end = query_time_ms(params.get("EndTime"), "EndTime", now_ms)
    start = query_time_ms(params.get("StartTime"), "StartTime", end - 3600 * 1000)
    if start >= end:
        raise invalid_parameter("StartTime", "must be earlier than EndTime")
    if end - start > MAX_QUERY_RANGE_MS:
        raise invalid_parameter("EndTime", "the time range must not exceed 31 days")
    offset = int(params["NextToken"]) if params.get("NextToken", "").isdigit() else 0
    length = _page_param(params, "Length", 1000)
    if length > MAX_QUERY_LENGTH:
        raise invalid_parameter("Length", f"must be at most {MAX_QUERY_LENGTH}")
    filters = _dimension_filters(params.get("Dimensions"))

    points: list[dict[str, Any]] = []
    raw: dict[tuple[str, str, int], list[tuple[int, float]]] = {}
    if params["Namespace"] == NAMESPACE_PREFIX + user_id:
        for entry in store.entries(params["MetricName"]):
            dimension = dimension_string(entry["dimensions"])
            if not start < entry["time"] <= end:
                continue
            if filters and not any(
                (g is None or g == entry["group_id"]) and (d is None or d == dimension) for g, d in filters
            ):
                continue
            if entry["type"] == 1 and entry["period"] == period:
                points.append(_point(entry["time"], entry["group_id"], dimension, user_id, entry["values"]))
            elif entry["type"] == 0:
                window = entry["time"] - entry["time"] % (period * 1000)
                raw.setdefault((entry["group_id"], dimension, window), []).append(
                    (entry["time"], entry["values"]["value"])
                )
    for (group_id, dimension, window), samples in raw.items():
        points.append(_point(window, group_id, dimension, user_id, raw_statistics(samples, period)))
    points.sort(key=lambda p: (p["timestamp"], p["groupId"], p["dimension"]))

    body: dict[str, Any] = {
        "Code": "200",
        "Success": True,
        "Period": str(period),
        "Datapoints": json.dumps(points[offset : offset + length]),
    }
    if offset + length < len(points):
        body["NextToken"] = str(offset + length)
    return body


def nearest_rank(ordered: list[float], percent: int) -> float:
    """The nearest-rank percentile of sorted values: the smallest value with at least ``percent``% of the
    values at or below it. CMS does not document its method; this is the emulator's guess."""
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def raw_statistics(samples: list[tuple[int, float]], period: int) -> dict[str, float]:
    """Every statistic CMS documents for raw data (cms-api.md §6.1) over one window's ``(time_ms, value)``
    samples in arrival order. LastValue is the value with the latest time (the later arrival on a tie)."""
    values = [value for _, value in samples]
    ordered = sorted(values)
    total = sum(values)
    last_time = max(time_ms for time_ms, _ in samples)
    stats: dict[str, float] = {
        "Average": total / len(values),
        "Maximum": ordered[-1],
        "Minimum": ordered[0],
        "Sum": total,
        "SampleCount": len(values),
        "SumPerSecond": total / period,
        "CountPerSecond": len(values) / period,
        "LastValue": [value for time_ms, value in samples if time_ms == last_time][-1],
    }
    stats.update({name: nearest_rank(ordered, percent) for name, percent in PERCENTILES.items()})
    assert set(stats) == set(STATISTICS)
    return stats


def _point(timestamp: int, group_id: str, dimension: str, user_id: str, values: dict[str, Any]) -> dict:
    return {"timestamp": timestamp, "userId": user_id, "groupId": group_id, "dimension": dimension, **values}
