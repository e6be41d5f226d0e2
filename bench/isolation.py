"""6. Isolation: ``record()`` p99 on the caller's thread while the reporter thread is sending.

Three reporters, each started (its own delivery thread) and each kept busy by a helper thread that queues
a full batch of entries and calls ``flush()`` in a loop, so the sender is always mid-delivery:

* healthy — an emulator answering at once;
* down — a closed port (connection refused, retried with backoff);
* slow — an emulator that answers after 10 s (``--latency 10``; the call hits the 10 s read timeout).

The emulators run in their own processes, so their request handling competes with the benchmark for
CPU, as a remote endpoint would not, but never for this process's GIL. The scenarios take turns, round by
round, timing every ``record()`` call with ``perf_counter_ns``; the figure is the median over rounds of
p99(faulty) / p99(healthy).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from bench.common import Row, Section, fmt_ns

GOAL = 1.2
ENTRIES_PER_FLUSH = 42


@contextmanager
def emulator_process(*flags: str) -> Iterator[str]:
    """A CMS emulator in a child process; yields its endpoint."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "langflow_cms.emulator", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        match = re.search(r"(http://\S+)", line)
        if not match:
            raise RuntimeError(f"emulator did not start: {line!r}")
        yield match.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def closed_port() -> str:
    """An endpoint nobody listens on: bind a free port, then close it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class BusySender:
    """A started reporter plus a thread that keeps its sender delivering while ``active`` is set."""

    def __init__(self, endpoint: str) -> None:
        from langflow_cms.config import Config
        from langflow_cms.delivery.serializer import aggregate_entry
        from langflow_cms.pipeline.window import Window
        from langflow_cms.reporter import Reporter

        self.reporter = Reporter(
            Config.from_env(
                {"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": endpoint, "LANGFLOW_CMS_MAX_QPS": "200"}
            )
        )
        start = int(time.time() // 60 * 60)
        self.entries = []
        for i in range(ENTRIES_PER_FLUSH):
            window = Window("bench_isolation_ms", (("instance", "bench"), ("node", f"n{i}")), start)
            for v in (1.0, 5.0, 20.0):
                window.add(v)
            self.entries.append(aggregate_entry(window, "0"))
        self.active = threading.Event()
        self.flushes = 0
        threading.Thread(target=self._loop, name="bench-flusher", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self.active.wait()
            # Private on purpose: between minute boundaries there is nothing sealed to send, and the
            # point is to have the sender busy while record() is timed.
            self.reporter._exporters[""].enqueue(list(self.entries))
            self.reporter.flush(timeout=5.0)
            self.flushes += 1

    def discard(self) -> None:
        self.active.clear()
        self.reporter._closed = True  # nothing left to deliver at exit
        self.reporter._reader.stop()  # its thread ends at its next wake-up


def time_records(reporter: object, calls: int) -> list[int]:
    """Per-call ``record()`` latencies in ns, three dimensions, 30 series in turn."""
    dims = [{"flow": "bench", "node": f"node{i}", "status": "ok"} for i in range(30)]
    record = reporter.record  # type: ignore[attr-defined]
    clock = time.perf_counter_ns
    out = [0] * calls
    for i in range(calls):
        d = dims[i % 30]
        t0 = clock()
        record("langflow_node_duration_ms", 12.5, d)
        out[i] = clock() - t0
    return out


def p99(samples: list[int]) -> float:
    ordered = sorted(samples)
    return float(ordered[int(0.99 * (len(ordered) - 1))])


def run(scale: float = 1.0, rounds: int = 15) -> Section:
    calls = max(int(50_000 * scale), 2000)
    quiet = logging.getLogger("langflow_cms")
    with ExitStack() as stack:
        # Delivery failures are the point here; their one-line-per-cycle log would drown the table.
        stack.callback(quiet.setLevel, quiet.level)
        quiet.setLevel(logging.CRITICAL)
        healthy_url = stack.enter_context(emulator_process())
        slow_url = stack.enter_context(emulator_process("--latency", "10"))
        senders = {
            "healthy": BusySender(healthy_url),
            "down": BusySender(closed_port()),
            "slow (10 s)": BusySender(slow_url),
        }
        for sender in senders.values():
            stack.callback(sender.discard)
            time_records(sender.reporter, 2000)  # warm-up: creates the series (not the hot path)
        results: dict[str, list[float]] = {name: [] for name in senders}
        names = list(senders)
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                sender = senders[name]
                sender.active.set()
                time.sleep(0.1)  # let the flusher get going
                results[name].append(p99(time_records(sender.reporter, calls)))
                sender.active.clear()
        flushes = {name: s.flushes for name, s in senders.items()}
        health = {name: s.reporter.health() for name, s in senders.items()}
    rows = []
    base = results["healthy"]
    for name in ("down", "slow (10 s)"):
        ratio = statistics.median(f / h for f, h in zip(results[name], base, strict=True))
        rows.append(
            Row(
                f"6. Isolation: `record()` p99 while endpoint is {name} vs healthy",
                fmt_ns(statistics.median(results[name])),
                f"healthy: {fmt_ns(statistics.median(base))}",
                f"{ratio:.2f}×",
                "≤ 1.2×",
                ratio <= GOAL,
            )
        )
    summary = "; ".join(
        f"{name}: {flushes[name]} flushes, {health[name]['calls']} calls, {health[name]['retries']} "
        f"retries, last error {health[name]['last_error'][:60]!r}"
        for name in senders
    )
    details = [
        f"**Isolation.** {rounds} rounds × {calls:,} timed `record()` calls per scenario (median p99 "
        f"shown). Sender activity during the bench — {summary}. The timed reporter is the started "
        "reporter whose own thread does the delivering, so any lock or GIL contention with delivery shows "
        "up in p99."
    ]
    return Section(rows, details)
