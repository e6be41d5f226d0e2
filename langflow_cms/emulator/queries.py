"""The read side: DescribeCustomMetricList (which series exist) and DescribeMetricList (their data).

Shapes follow the public API models (aliyun Tea SDK models for cms 2019-01-01):

* DescribeCustomMetricList takes GroupId, MetricName, Dimension, Md5, PageNumber (default 1), PageSize
  (default 10) and has **no time range**. Its ``Result`` is a JSON *string*:
  ``{"all": <total>, "size": <page size>, "page": <page>, "param": {...}, "list": [...]}``. The documented
  example only ever shows an empty ``list``; the item fields used here (metricName, groupId, dimension,
  md5) mirror the ``param.metric`` example and are the emulator's best guess.
* Data points of custom metrics are read with DescribeMetricList on namespace ``acs_customMetric_<uid>``,
  ``Dimensions='[{"groupId":"0","dimension":"k1=v1&k2=v2"}]'`` (keys sorted), Period, StartTime/EndTime
  (left-open, right-closed) and NextToken/Length paging. ``Datapoints`` is a JSON *string* list.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

from .errors import invalid_parameter, missing_parameter
from .store import Store

NAMESPACE_PREFIX = "acs_customMetric_"
RAW_STATISTICS = ("Average", "Maximum", "Minimum", "Sum", "SampleCount")


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


def describe_custom_metric_list(params: Mapping[str, str], store: Store) -> dict[str, Any]:
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
    filters = {k: params[k] for k in ("MetricName", "GroupId", "Dimension", "Md5") if params.get(k)}
    result = {
        "all": len(ordered),
        "size": size,
        "page": page,
        "param": {"metric": json.dumps(filters), "service": "langflow-cms-emulator"},
        "list": ordered[(page - 1) * size : page * size],
    }
    return {"Code": "200", "Message": "success", "Result": json.dumps(result)}


def _query_time_ms(raw: str | None, name: str, default: int) -> int:
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
    into Period windows the way CMS does (Average, Maximum, Minimum, Sum, SampleCount).
    """
    for name in ("Namespace", "MetricName"):
        if not params.get(name):
            raise missing_parameter(name)
    period = _page_param(params, "Period", 60)
    now_ms = int(time.time() * 1000)
    end = _query_time_ms(params.get("EndTime"), "EndTime", now_ms)
    start = _query_time_ms(params.get("StartTime"), "StartTime", end - 3600 * 1000)
    if start >= end:
        raise invalid_parameter("StartTime", "must be earlier than EndTime")
    offset = int(params["NextToken"]) if params.get("NextToken", "").isdigit() else 0
    length = _page_param(params, "Length", 1000)
    filters = _dimension_filters(params.get("Dimensions"))

    points: list[dict[str, Any]] = []
    raw: dict[tuple[str, str, int], list[float]] = {}
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
                raw.setdefault((entry["group_id"], dimension, window), []).append(entry["values"]["value"])
    for (group_id, dimension, window), values in raw.items():
        stats = {
            "Average": sum(values) / len(values),
            "Maximum": max(values),
            "Minimum": min(values),
            "Sum": sum(values),
            "SampleCount": len(values),
        }
        points.append(_point(window, group_id, dimension, user_id, stats))
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


def _point(timestamp: int, group_id: str, dimension: str, user_id: str, values: dict[str, Any]) -> dict:
    return {"timestamp": timestamp, "userId": user_id, "groupId": group_id, "dimension": dimension, **values}
