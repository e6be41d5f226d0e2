"""Parses and validates the ``MetricList.N.*`` parameters of PutCustomMetric and the ``EventInfo.N.*``
parameters of PutCustomEvent.

Two modes. *Strict* (the default) rejects with InvalidParameter everything real CMS would silently
rewrite (bad metric names, dimension keys/values with a character other than ASCII letters, digits and
``. - _ / \\`` or over 64 bytes), so a passing test proves our client never sends such data. Non-strict
mode rewrites it the way CMS documents (cms-api.md §1.1, §6.1): first non-letter of a name becomes ``A``,
invalid characters become ``_``, everything is cut to 64 bytes. There is no dimension-count limit: the
10-dimension cap was removed from the PutCustomMetric doc (cms-api.md §6.1). All limits come from this
package's own ``limits`` module, never from the client's.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import invalid_parameter, missing_parameter
from .limits import (
    DIMENSION_CHAR_RE,
    MAX_DIMENSION_BYTES,
    MAX_EVENT_ENTRIES,
    MAX_EVENT_REPORT_BYTES,
    MAX_NAME_BYTES,
    METRIC_NAME_RE,
    METRIC_PERIODS,
    STATISTICS,
)

TYPE1_KEYS = frozenset(STATISTICS)
"""Statistic keys CMS documents for Type=1 (aliyun-cms-java-sdk MetricAttribute; cms-api.md §1.1)."""

FIELDS = ("GroupId", "MetricName", "Dimensions", "Type", "Values", "Period", "Time")
REQUIRED_FIELDS = ("GroupId", "MetricName", "Dimensions", "Type", "Values")
_KEY_RE = re.compile(r"^MetricList\.(\d+)\.(.+)$")
_EARLIEST_MS = 1_000_000_000_000
"""2001-09-09 in ms: a smaller Time is almost surely seconds sent where milliseconds were meant."""


@dataclass
class Entry:
    """One accepted data point, as stored."""

    group_id: str
    name: str
    dimensions: dict[str, str]
    type: int
    period: int | None
    time_ms: int
    values: dict[str, float]


def parse_metric_list(params: Mapping[str, str], *, max_entries: int, strict: bool) -> list[Entry]:
    """All entries of one PutCustomMetric call, or ApiError for the first invalid one."""
    items: dict[int, dict[str, str]] = {}
    for key, value in params.items():
        match = _KEY_RE.match(key)
        if match is None:
            continue
        index, field = int(match.group(1)), match.group(2)
        if strict and field not in FIELDS:
            raise invalid_parameter(key, "unknown field")
        items.setdefault(index, {})[field] = value
    if not items:
        raise missing_parameter("MetricList")
    if len(items) > max_entries:
        raise invalid_parameter("MetricList", f"{len(items)} entries, at most {max_entries} per call")
    if sorted(items) != list(range(1, len(items) + 1)):
        raise invalid_parameter("MetricList", "N must be contiguous from 1")
    return [_parse_entry(n, items[n], strict=strict) for n in sorted(items)]


def _parse_entry(n: int, fields: dict[str, str], *, strict: bool) -> Entry:
    def name_of(field: str) -> str:
        return f"MetricList.{n}.{field}"

    for field in REQUIRED_FIELDS:
        if not fields.get(field):
            raise missing_parameter(name_of(field))

    group_id = fields["GroupId"]
    if not group_id.isdigit():
        raise invalid_parameter(name_of("GroupId"), "must be a non-negative integer")

    metric_type = fields["Type"]
    if metric_type not in ("0", "1"):
        raise invalid_parameter(name_of("Type"), "must be 0 or 1")

    period = None
    if metric_type == "1":
        raw_period = fields.get("Period")
        if not raw_period:
            raise missing_parameter(name_of("Period"))
        if not raw_period.isdigit() or int(raw_period) not in METRIC_PERIODS:
            raise invalid_parameter(name_of("Period"), f"must be one of {METRIC_PERIODS}")
        period = int(raw_period)

    return Entry(
        group_id=group_id,
        name=_metric_name(fields["MetricName"], name_of("MetricName"), strict=strict),
        dimensions=_dimensions(fields["Dimensions"], name_of("Dimensions"), strict=strict),
        type=int(metric_type),
        period=period,
        time_ms=_time_ms(fields.get("Time"), name_of("Time"), strict=strict),
        values=_values(fields["Values"], name_of("Values"), int(metric_type), strict=strict),
    )


def _json_object(raw: str, name: str) -> dict[str, Any]:
    def reject_constant(token: str) -> None:
        raise ValueError(f"{token} is not valid JSON")

    try:
        value = json.loads(raw, parse_constant=reject_constant)
    except ValueError as exc:
        raise invalid_parameter(name, f"must be a JSON object ({exc})") from None
    if not isinstance(value, dict):
        raise invalid_parameter(name, "must be a JSON object")
    return value


def _truncate(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore")


def _metric_name(raw: str, name: str, *, strict: bool) -> str:
    if METRIC_NAME_RE.fullmatch(raw):
        return raw
    if strict:
        raise invalid_parameter(name, f"must match {METRIC_NAME_RE.pattern}")
    fixed = re.sub(r"[^A-Za-z0-9_]", "_", raw)
    if not fixed[:1].isalpha() or not fixed[:1].isascii():
        fixed = "A" + fixed[1:]
    return _truncate(fixed, MAX_NAME_BYTES)


def _dimension_text(text: str, name: str, *, strict: bool) -> str:
    # Allowed: ASCII letters, digits and . - _ / \ (cms-api.md §6.1); CMS rewrites anything else to _.
    bad = sorted({c for c in text if not DIMENSION_CHAR_RE.fullmatch(c)})
    if strict and bad:
        raise invalid_parameter(
            name,
            f"dimension {text!r} contains {''.join(bad)!r}; only ASCII letters, digits and . - _ / \\"
            " are allowed",
        )
    if strict and len(text.encode()) > MAX_DIMENSION_BYTES:
        raise invalid_parameter(name, f"dimension {text[:16]!r}... is over {MAX_DIMENSION_BYTES} bytes")
    text = "".join(c if DIMENSION_CHAR_RE.fullmatch(c) else "_" for c in text)
    return _truncate(text, MAX_DIMENSION_BYTES)


def _dimensions(raw: str, name: str, *, strict: bool) -> dict[str, str]:
    obj = _json_object(raw, name)
    # No count check: the 10-dimension cap is gone from the PutCustomMetric doc (cms-api.md §6.1).
    result: dict[str, str] = {}
    for key, value in obj.items():
        if not isinstance(value, str):
            if strict:
                raise invalid_parameter(name, f"dimension {key!r} must be a string")
            value = json.dumps(value)
        if not key or not value:
            raise invalid_parameter(name, "dimension keys and values must be 1-64 bytes")
        result[_dimension_text(key, name, strict=strict)] = _dimension_text(value, name, strict=strict)
    return result


def _values(raw: str, name: str, metric_type: int, *, strict: bool) -> dict[str, float]:
    obj = _json_object(raw, name)
    if not obj:
        raise invalid_parameter(name, "must not be empty")
    for key, value in obj.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise invalid_parameter(name, f"{key!r} must be a finite number")
    if metric_type == 0:
        if "value" not in obj:
            raise invalid_parameter(name, 'Type=0 needs the key "value"')
        if strict and len(obj) > 1:
            raise invalid_parameter(name, 'Type=0 takes only the key "value"')
        return {"value": obj["value"]}
    unknown = sorted(set(obj) - TYPE1_KEYS)
    if unknown:
        raise invalid_parameter(name, f"unknown statistic keys {unknown}")
    return dict(obj)


def _time_ms(raw: str | None, name: str, *, strict: bool) -> int:
    if not raw:
        return int(time.time() * 1000)
    if raw.isdigit():
        value = int(raw)
        if strict and value < _EARLIEST_MS:
            raise invalid_parameter(name, "looks like seconds; Time is milliseconds since the epoch")
        return value
    try:
        parsed = datetime.strptime(raw, "%Y%m%dT%H%M%S.%f%z")
    except ValueError:
        raise invalid_parameter(name, "must be epoch milliseconds or yyyyMMdd'T'HHmmss.SSSZ") from None
    return int(parsed.timestamp() * 1000)


# --- PutCustomEvent -----------------------------------------------------------------------------------

EVENT_FIELDS = ("GroupId", "EventName", "Content", "Time")
_EVENT_KEY_RE = re.compile(r"^EventInfo\.(\d+)\.(.+)$")


@dataclass
class Event:
    """One accepted custom event, as stored. ``event_id`` is the emulator's (CMS's id format is not
    documented)."""

    event_id: str
    group_id: str
    name: str
    content: str
    time_ms: int


def parse_event_info(params: Mapping[str, str], *, strict: bool) -> list[Event]:
    """All events of one PutCustomEvent call (cms-api.md §2.2, §6.5), or ApiError for the first bad one."""
    items: dict[int, dict[str, str]] = {}
    size = 0
    for key, value in params.items():
        match = _EVENT_KEY_RE.match(key)
        if match is None:
            continue
        index, field = int(match.group(1)), match.group(2)
        if strict and field not in EVENT_FIELDS:
            raise invalid_parameter(key, "unknown field")
        items.setdefault(index, {})[field] = value
        size += len(value.encode())
    if not items:
        raise missing_parameter("EventInfo")
    if len(items) > MAX_EVENT_ENTRIES:
        raise invalid_parameter("EventInfo", f"{len(items)} events, at most {MAX_EVENT_ENTRIES} per call")
    if sorted(items) != list(range(1, len(items) + 1)):
        raise invalid_parameter("EventInfo", "N must be contiguous from 1")
    if size > MAX_EVENT_REPORT_BYTES:
        raise invalid_parameter("EventInfo", f"{size} bytes, at most {MAX_EVENT_REPORT_BYTES} per report")
    events = []
    for n in sorted(items):
        fields = items[n]
        for field in ("EventName", "Content"):
            if not fields.get(field):
                raise missing_parameter(f"EventInfo.{n}.{field}")
        group_id = fields.get("GroupId") or "0"
        if not group_id.isdigit():
            raise invalid_parameter(f"EventInfo.{n}.GroupId", "must be a non-negative integer")
        events.append(
            Event(
                event_id=uuid.uuid4().hex,
                group_id=group_id,
                name=fields["EventName"],
                content=fields["Content"],
                time_ms=_time_ms(fields.get("Time"), f"EventInfo.{n}.Time", strict=strict),
            )
        )
    return events
