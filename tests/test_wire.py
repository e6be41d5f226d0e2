"""Entries are valid JSON with string numbers; batches never pass 21 entries or the size cap."""

import json

from langflow_cms.delivery.serializer import (
    MAX_BATCH_BYTES,
    aggregate_entry,
    batches,
    encoded_size,
    raw_entry,
)
from langflow_cms.emulator.limits import MAX_METRIC_ENTRIES
from langflow_cms.pipeline.window import Window


def test_aggregate_entry_is_what_cms_expects():
    window = Window("lat", (("flow", "poem"), ("status", "ok")), 1_800_000_000, period=300)
    for value in (1.0, 2.0, 3.0):
        window.add(value)
    entry = aggregate_entry(window, "0")
    assert entry["Type"] == "1" and entry["Period"] == "300" and entry["Time"] == "1800000000000"
    assert json.loads(entry["Dimensions"]) == {"flow": "poem", "status": "ok"}
    values = json.loads(entry["Values"])
    assert values["SampleCount"] == 3 and values["Sum"] == 6.0 and values["Average"] == 2.0
    assert set(values) >= {"Minimum", "Maximum", "P50", "P90", "P95", "P99"}
    assert all(isinstance(v, str) for v in entry.values())


def test_raw_entry():
    entry = raw_entry("lat", {"flow": "poem"}, 12.5, 1_800_000_000_123, "0")
    assert entry["Type"] == "0" and "Period" not in entry
    assert json.loads(entry["Values"]) == {"value": 12.5}


def test_batches_of_at_most_21_and_bounded_size():
    small = [raw_entry("m", {"k": str(i)}, 1.0, 0, "0") for i in range(50)]
    assert [len(b) for b in batches(small)] == [21, 21, 8]
    big = [raw_entry("m", {f"k{j}": "诗" * 21 for j in range(10)}, 1.0, 0, "0") for _ in range(21)]
    cut = list(batches(big))
    assert sum(len(b) for b in cut) == 21 and len(cut) > 1
    assert all(sum(encoded_size(e) for e in b) <= MAX_BATCH_BYTES for b in cut)
    assert all(len(b) <= MAX_METRIC_ENTRIES for b in cut)
