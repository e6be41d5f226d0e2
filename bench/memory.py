"""5. Memory: bytes per series at 10,000 series, measured with tracemalloc.

Everything ``record()`` allocates is counted: the series and its open window, the quantile sketch's bins,
the validated dimension tuples and both lookup tables (the fast-path cache keyed by the caller's
arguments and the series table keyed by clean dimensions). The callers' own dimension dicts and strings
are built before tracing starts, because the application holds those anyway. prometheus_client's
``Histogram`` child per label set is measured the same way for comparison.
"""

from __future__ import annotations

import gc
import random
import tracemalloc
from collections.abc import Callable

from bench.common import Row, Section, dev_reporter

GOAL = 4096
SERIES = 10_000


def traced_bytes(fill: Callable[[], object]) -> int:
    """Bytes still allocated after ``fill()`` (whose result is kept alive until measured)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = fill()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return after - before


def per_series(series: int, values_per_series: int) -> tuple[float, float]:
    """(ours, prometheus_client) bytes per series."""
    from prometheus_client import CollectorRegistry, Histogram

    rng = random.Random(7)
    dims = [{"flow": f"flow{i % 100}", "node": f"Node-{i:06d}", "status": "ok"} for i in range(series)]
    values = [rng.lognormvariate(4.0, 1.0) for _ in range(values_per_series)]

    def fill_ours() -> object:
        reporter = dev_reporter(LANGFLOW_CMS_MAX_SERIES=str(series * 2))
        drain = reporter.storage.drain  # the reader thread's once-a-second pass (this reporter has none)
        for n, d in enumerate(dims):
            for v in values:
                reporter.record("langflow_node_duration_ms", v, d)
            if n % 100 == 99:
                drain()  # at most 10,000 values waiting, far below the inbox's 100,000
        drain()
        health = reporter.health()
        assert health["series"] == series and not health["dropped"], health
        return reporter

    def fill_prometheus() -> object:
        registry = CollectorRegistry()
        histogram = Histogram("bench_ms", "bench", ["flow", "node", "status"], registry=registry)
        for d in dims:
            child = histogram.labels(**d)
            for v in values:
                child.observe(v)
        return registry

    return traced_bytes(fill_ours) / series, traced_bytes(fill_prometheus) / series


def run(scale: float = 1.0) -> Section:
    series = max(int(SERIES * scale), 100)
    rows: list[Row] = []
    for values in (1, 100):
        ours, prom = per_series(series, values)
        rows.append(
            Row(
                f"5. Memory per series at {series:,} series, {values} value(s) each",
                f"{ours:,.0f} B",
                f"prometheus Histogram child: {prom:,.0f} B",
                f"{ours / prom:.2f}×",
                "≤ 4 KB",
                ours <= GOAL,
            )
        )
    details = [
        f"**Memory.** tracemalloc difference after recording into {series:,} series of one metric "
        "(three dimensions each, log-normal values), divided by the series count, with the cardinality "
        "cap raised so none overflows, aggregated every 100 series as the reader thread would (none "
        "dropped: the run fails otherwise). Includes the reporter's two lookup tables. The sketch grows with "
        "the spread of the values (one 4-byte bin per 1.5 % of range, at most 768 bins = 3 KB per sign), "
        "so the 100-value figure is the realistic one; prometheus_client's cost is fixed by its bucket "
        "count (15 by default)."
    ]
    return Section(rows, details)
