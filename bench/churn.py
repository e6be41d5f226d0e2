"""10. Memory after 100,000 distinct series churned over 10 windows.

One started-never reporter (no thread) with a never-reached endpoint (a closed port): each window records
one value into each of 10,000 series never seen before (3 dimensions, the cardinality cap raised so none
folds), advances ``reporter.storage.clock`` by 60 s and calls ``flush(timeout=0)``, which collects (seals,
rolls up, evicts series idle for two windows) and gives up sending at once, leaving the entries in the
outbox for the next attempt — as during an outage. tracemalloc's current size is read after every
window; the bound is the design's: series idle for ``IDLE_WINDOWS`` collections go, open 300 s roll-ups
live at most five windows, and the outbox holds at most ``LANGFLOW_CMS_QUEUE_SIZE`` entries.
"""

from __future__ import annotations

import gc
import logging
import time
import tracemalloc

from bench.common import Row, Section
from bench.isolation import closed_port

WINDOWS = 10
PER_WINDOW = 10_000
GOAL_MB = 64.0


def churn(per_window: int, windows: int) -> tuple[list[tuple[int, float, int]], dict]:
    """[(series, MB, outbox entries)] after each window, and facts about the end state."""
    from langflow_cms.config import Config
    from langflow_cms.pipeline.storage import IDLE_WINDOWS
    from langflow_cms.reporter import Reporter

    config = Config.from_env(
        {
            "LANGFLOW_CMS_DEV": "1",
            "LANGFLOW_CMS_ENDPOINT": closed_port(),
            "LANGFLOW_CMS_MAX_SERIES": str(per_window * windows * 2),
        }
    )
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        reporter = Reporter(config, start=False)
        reporter._closed = True  # never started: nothing to deliver at exit
        offset = [0.0]
        reporter.storage.clock = lambda: time.time() + offset[0]
        record = reporter.record
        exporter = reporter._exporters[""]
        after: list[tuple[int, float, int]] = []
        for w in range(windows):
            for i in range(per_window):
                record(
                    "langflow_node_duration_ms", 12.5, {"flow": "churn", "node": f"w{w}n{i}", "status": "ok"}
                )
            offset[0] += 60.0
            reporter.flush(timeout=0)
            gc.collect(0)  # windows and series are freed by reference counting; a full collection in a
            # process with lfx loaded costs seconds and changes nothing here
            after.append(
                (
                    reporter.storage.series_count(),
                    (tracemalloc.get_traced_memory()[0] - base) / 2**20,
                    exporter.queued(),
                )
            )
        outbox_before = tracemalloc.get_traced_memory()[0]
        exporter._take()  # what the outbox holds, measured by letting it go
        gc.collect()
        outbox_mb = (outbox_before - tracemalloc.get_traced_memory()[0]) / 2**20
        facts = {
            "idle": IDLE_WINDOWS,
            "queue_size": config.queue_size,
            "outbox_mb": outbox_mb,
            "rollups": len(reporter.storage.open_rollups()),
            "dropped": reporter.health()["dropped"],
        }
        del reporter, record, exporter
    finally:
        tracemalloc.stop()
    return after, facts


def run(scale: float = 1.0) -> Section:
    per_window = max(int(PER_WINDOW * scale), 100)
    quiet = logging.getLogger("langflow_cms")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the outage's log line is expected
    try:
        after, facts = churn(per_window, WINDOWS)
    finally:
        quiet.setLevel(level)
    series_bound = 2 * per_window
    goal_mb = GOAL_MB  # a cap, not a per-series cost: the same at every scale
    final_series, final_mb, _ = after[-1]
    peak_series = max(s for s, _, _ in after)
    peak_mb = max(m for _, m, _ in after)
    half = after[WINDOWS // 2 - 1][1]
    met = final_series <= series_bound and peak_mb <= goal_mb
    rows = [
        Row(
            f"10. Memory after {per_window * WINDOWS:,} distinct series churned over {WINDOWS} windows",
            f"{final_series:,} series, {final_mb:.1f} MB (peak {peak_series:,} series, {peak_mb:.1f} MB)",
            f"without eviction: {per_window * WINDOWS:,} series",
            f"{final_mb:.1f} MB; window {WINDOWS // 2}: {half:.1f} MB",
            f"bounded: ≤ {series_bound:,} series (2 windows' worth), ≤ {goal_mb:.0f} MB",
            met,
        )
    ]
    trail = ", ".join(f"{s:,}/{m:.1f} MB/{q:,}" for s, m, q in after)
    details = [
        f"**Series churn.** {WINDOWS} windows × {per_window:,} new series (one value each), the storage "
        "clock advanced 60 s and `flush(timeout=0)` after each window, the endpoint a closed port (every "
        "send gives up at once; the entries stay in the outbox as in an outage). After each window, series "
        f"/ tracemalloc current / outbox entries: {trail}. Series idle for {facts['idle']} collections are "
        f"evicted; the outbox is capped at `LANGFLOW_CMS_QUEUE_SIZE` = {facts['queue_size']:,} entries "
        f"(oldest dropped and counted: {facts['dropped']:,} so far) and held {facts['outbox_mb']:.1f} MB of "
        f"the final figure; {facts['rollups']:,} 300 s roll-up windows were open at the end (they live "
        "at most five windows). The memory bound is the sum of those three caps, so it does not grow with "
        "the number of windows or of series ever seen."
    ]
    return Section(rows, details)
