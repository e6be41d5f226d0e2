"""PutCustomMetric entries and batches, exactly as CloudMonitor wants them on the wire (the serializer).

The SDK ``str()``-s whatever it is given, so ``Values`` and ``Dimensions`` are JSON-encoded here (compact,
because every byte is in the URL) and every number is a string. Batches hold at most 21 entries (the API's
``N``) and are also cut by encoded size, so an unusually long set of dimensions can never produce a URL
that a gateway refuses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import quote

from langflow_cms.limits import MAX_ENTRIES_PER_CALL, MAX_EVENTS_PER_CALL
from langflow_cms.pipeline.raw import RawPoint
from langflow_cms.pipeline.window import Window

MAX_BATCH_BYTES = 24 * 1024
"""Encoded ``MetricList`` bytes per call: 21 entries of our metrics take about 10 KB."""


def _json(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def aggregate_entry(window: Window, group_id: str) -> dict[str, str]:
    """A Type=1 entry: the window's statistics, stamped with the window's start."""
    return {
        "MetricName": window.name,
        "Dimensions": _json(dict(window.dimensions)),
        "Type": "1",
        "Period": str(window.period),
        "Time": str(window.start * 1000),
        "GroupId": group_id,
        "Values": _json(window.statistics()),
    }


def raw_entry(name: str, dimensions: Mapping[str, str], value: float, time_ms: int, group_id: str) -> dict:
    """A Type=0 entry: one sampled observation; CMS aggregates these itself (and bills for them)."""
    return {
        "MetricName": name,
        "Dimensions": _json(dict(dimensions)),
        "Type": "0",
        "Time": str(time_ms),
        "GroupId": group_id,
        "Values": _json({"value": value}),
    }


def raw_entries(points: Iterable[RawPoint]) -> list[dict[str, str]]:
    """The Type=0 entries of the pipeline's raw points (raw mode, the fleet stream); all or none (raises
    ``ValueError`` on a value JSON cannot carry)."""
    return [raw_entry(p.name, p.dimensions, p.value, p.time_ms, p.group_id) for p in points]


def encoded_size(entry: Mapping[str, str]) -> int:
    """Bytes the entry adds to the request target (``MetricList.N.Key=value&`` for each field)."""
    return sum(len(key) + 18 + len(quote(value, safe="")) for key, value in entry.items())


def is_event(entry: Mapping[str, str]) -> bool:
    """Events (PutCustomEvent ``EventInfo``) travel with metric entries through the outbox and spool."""
    return "EventName" in entry


def batches(entries: list[dict[str, str]]) -> Iterator[list[dict[str, str]]]:
    """Split ``entries`` (all of one kind) into calls of at most 21 metric entries or 50 events, and at
    most MAX_BATCH_BYTES."""
    limit = MAX_EVENTS_PER_CALL if entries and is_event(entries[0]) else MAX_ENTRIES_PER_CALL
    batch: list[dict[str, str]] = []
    size = 0
    for entry in entries:
        cost = encoded_size(entry)
        if batch and (len(batch) == limit or size + cost > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += cost
    if batch:
        yield batch
