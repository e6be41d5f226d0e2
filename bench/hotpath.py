"""1. Hot path: one ``record()`` with three dimensions vs prometheus_client and the OpenTelemetry SDK.

All three do the same job for the caller: find the series for a name and three labels, and add one
observation to a latency distribution. Each contender gets the same dimensions dict and value; the loops
are identical apart from the call, so loop overhead is equal and included in every figure.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from bench.common import Row, Section, dev_reporter, fmt_ns, interleaved_rounds, median_ratio, ns_per_call

DIMS = {"flow": "poem", "node": "Prompt-x1Y2z", "status": "ok"}
VALUE = 12.5


def contenders() -> dict[str, Callable[[int], None]]:
    """name -> run(n): n observations through that library, set up as a user would set it up."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from prometheus_client import CollectorRegistry, Histogram

    reporter = dev_reporter()
    registry = CollectorRegistry()
    histogram = Histogram("bench_duration_ms", "bench", list(DIMS), registry=registry)
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    otel = provider.get_meter("bench").create_histogram("bench_duration_ms", unit="ms")
    values = tuple(DIMS.values())

    def ours(n: int) -> None:
        record, dims = reporter.record, DIMS
        for _ in range(n):
            record("bench_duration_ms", VALUE, dims)
        reporter.storage.drain()  # count the aggregation too (the reader thread's work)

    def prom_kwargs(n: int) -> None:
        labels, dims = histogram.labels, DIMS
        for _ in range(n):
            labels(**dims).observe(VALUE)

    def prom_args(n: int) -> None:
        labels = histogram.labels
        for _ in range(n):
            labels(*values).observe(VALUE)

    def otel_record(n: int) -> None:
        record, dims = otel.record, DIMS
        for _ in range(n):
            record(VALUE, dims)

    return {
        "ours": ours,
        "prometheus labels(**dims)": prom_kwargs,
        "prometheus labels(*values)": prom_args,
        "OpenTelemetry SDK": otel_record,
    }


def run(scale: float = 1.0, rounds: int = 21) -> Section:
    calls = max(int(20_000 * scale), 200)
    runs = contenders()
    for fn in runs.values():  # warm up: first-call series creation and caches are not the hot path
        fn(1000)
    timed = interleaved_rounds({name: ns_per_call(fn, calls) for name, fn in runs.items()}, rounds)
    ours = timed["ours"]
    med = {name: statistics.median(values) for name, values in timed.items()}
    kw = median_ratio(ours, timed["prometheus labels(**dims)"])
    args = median_ratio(ours, timed["prometheus labels(*values)"])
    otel = median_ratio(ours, timed["OpenTelemetry SDK"])
    rows = [
        Row(
            "1. Hot path: `record()`, 3 dims, vs prometheus `labels(**dims).observe()`",
            fmt_ns(med["ours"]),
            fmt_ns(med["prometheus labels(**dims)"]),
            f"{kw:.2f}×",
            "≤ 1.0×",
            kw <= 1.0,
        ),
        Row(
            "1b. Hot path vs prometheus `labels(*values).observe()`",
            fmt_ns(med["ours"]),
            fmt_ns(med["prometheus labels(*values)"]),
            f"{args:.2f}×",
            "≤ 1.0×",
            args <= 1.0,
        ),
        Row(
            "1c. Hot path vs OpenTelemetry SDK `Histogram.record(v, attrs)`",
            fmt_ns(med["ours"]),
            fmt_ns(med["OpenTelemetry SDK"]),
            f"{otel:.2f}×",
            "— (info)",
            None,
        ),
    ]
    spread = ", ".join(f"{name} {fmt_ns(min(v))}–{fmt_ns(max(v))}" for name, v in timed.items())
    details = [
        f"**Hot path.** {rounds} interleaved rounds of {calls:,} calls per contender (order rotated each "
        "round), after a warm-up that creates each series. Ratio = median over rounds of "
        "(ours / alternative) in the same round. Same name, same three dimensions "
        f"`{DIMS}`, same float value. Per-call range over rounds: {spread}. prometheus_client's "
        "`Histogram` has 15 default buckets; OpenTelemetry uses a `MeterProvider` with an "
        "`InMemoryMetricReader` that is never collected; ours is a `Reporter` that was never started "
        "(no thread, no network), which runs the same `record()` code as the process-wide one; its time "
        "includes aggregating the queued values (`storage.drain()`), the work the reader thread does off "
        "the caller's path, so the figure is the whole CPU cost of an observation, not just the "
        "caller's share."
    ]
    return Section(rows, details)
