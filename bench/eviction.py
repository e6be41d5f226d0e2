"""14. ``record()`` of new series at high cardinality while windows are collected and idle series evicted.

A storage holds N live series (200,000 at scale 1); a collector thread collects one window after another
(each advances the storage clock a minute, so every collection seals windows, rolls them up and evicts the
series that went idle), while the main thread records a new series per call and times each call. The
alternative is the same loop with no collector thread. Garbage collection stays on: it is part of what a
caller sees.
"""

from __future__ import annotations

import threading
import time

from bench.common import Row, Section
from bench.common import fmt_ns as _fmt_ns

GOAL_NS = 1_000_000


def fmt_ns(ns: float) -> str:
    return f"{ns / 1e6:.1f} ms" if ns >= 1e6 else _fmt_ns(ns)


def _timed_new_series(scope, first: int, calls: int) -> list[int]:
    clock = time.perf_counter_ns
    record = scope.record
    out = [0] * calls
    for i in range(calls):
        dims = {"k": str(first + i)}
        t0 = clock()
        record("m", 1.0, dims)
        out[i] = clock() - t0
    return out


def _storage(series: int):
    from langflow_cms.pipeline.storage import Scope, Storage

    storage = Storage(max_series_per_metric=10 * series, max_metrics=10, inbox_limit=10 * series)
    scope = Scope(storage, "", {"instance": "bench"})
    for i in range(series):
        scope.record("m", 1.0, {"k": str(i)})
    storage.collect()
    return storage, scope


def run(scale: float = 1.0) -> Section:
    series = max(int(200_000 * scale), 2000)
    calls = max(int(200_000 * scale), 2000)
    from langflow_cms.pipeline.storage import gc_paused, release

    storage, scope = _storage(series)
    start = time.time()
    stop = threading.Event()
    collections = [0]

    def collect() -> None:
        minute = 0
        while not stop.is_set():
            minute += 1
            with gc_paused():  # as the reporter's cycle: until the sealed windows are handed on and freed
                release(storage.collect(start + 60 * minute + 1))
            collections[0] += 1

    collector = threading.Thread(target=collect, name="bench-collector", daemon=True)
    collector.start()
    try:
        busy = sorted(_timed_new_series(scope, series, calls))
    finally:
        stop.set()
        collector.join()
    _, alone_scope = _storage(series)
    alone = sorted(_timed_new_series(alone_scope, series, calls))

    def q(values: list[int], p: float) -> int:
        return values[min(int(p * len(values)), len(values) - 1)]

    worst = busy[-1]
    rows = [
        Row(
            f"14. `record()` of a new series at {series:,} live series while windows are collected: max",
            f"max {fmt_ns(worst)}, p99.99 {fmt_ns(q(busy, 0.9999))}, "
            f"{sum(1 for v in busy if v > GOAL_NS)} calls over 1 ms",
            f"no collector thread: max {fmt_ns(alone[-1])}, p99.99 {fmt_ns(q(alone, 0.9999))}",
            f"max {worst / 1e6:.3f} ms",
            "max ≤ 1 ms",
            worst <= GOAL_NS,
        )
    ]
    details = [
        f"**New series while collecting.** {series:,} series, then {calls:,} timed `record()` calls, each a "
        f"new series, while a thread ran {collections[0]} collections (each a minute later than the last, so "
        "each sealed windows and evicted the series that went idle). The registry lock is held for at most "
        "256 evictions at a time (before #24: for all of them, 313 ms at 200,000 series)."
    ]
    findings = []
    if worst > GOAL_NS:
        findings.append(
            "**14 (record() while collecting): missed.** The registry lock no longer holds a new series up "
            "for a whole eviction, and a collection no longer starts collector passes (it pauses the cyclic "
            "garbage collector). What is left is the garbage collector itself: with no collector thread at "
            f"all the worst call is {fmt_ns(alone[-1])}. Profiled with `gc.callbacks`: the worst `record()` "
            "(1,791 ms) was exactly one generation-2 pass (1,791 ms) over the 2.1 million objects the "
            "collector tracks at 200,000 series (about ten per series: the series, its key and dimension "
            "tuples, its window, sketch and two stores), started by the allocations of new series. Meeting "
            "1 ms needs fewer tracked objects per series (untracked tuples of strings, the sketch's stores "
            "as plain arrays); freezing or retuning the collector would change the host process's own "
            "memory behaviour, which a monitoring plugin must not do."
        )
    return Section(rows, details, findings)
