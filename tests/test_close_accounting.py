"""close() accounts for every entry (issue 23 §8): delivered, spooled, or counted as dropped with a reason,
including the batch another thread (the reporter thread) holds in flight when close() comes."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

pytestmark = pytest.mark.timeout(120)


def entries(count: int) -> list[dict[str, str]]:
    now = int(time.time() * 1000)
    return [
        {
            "MetricName": "in_flight",
            "Dimensions": json.dumps({"i": str(i)}),
            "Type": "0",
            "Time": str(now),
            "GroupId": "0",
            "Values": json.dumps({"value": i}),
        }
        for i in range(count)
    ]


@pytest.mark.parametrize("delay", [3.0, 6.0])
def test_close_counts_the_batch_the_reporter_thread_holds(emulator, make_reporter, caplog, delay):
    """Before: the 80 entries taken from the outbox by the reporter thread were neither spooled nor counted
    (the exit line said 2 dropped, health said dropped 2)."""
    reporter = make_reporter(LANGFLOW_CMS_READ_TIMEOUT="30")
    exporter = reporter._exporters[""]
    emulator.set_faults(latency=delay)  # every call answers late: the thread's send is in flight
    exporter.enqueue(entries(80))
    sender = threading.Thread(target=reporter._send_all, args=(time.monotonic() + 50,), daemon=True)
    sender.start()
    deadline = time.monotonic() + 20
    while exporter.queued():  # the thread took the batch
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for i in range(12):
        reporter.record("closing", float(i))
    with caplog.at_level(logging.WARNING, logger="langflow_cms"):
        assert reporter.close(timeout=1.0) is False
    health = reporter.health()
    accounted = health["sent"] + health["dropped"] + health["queued"]
    assert accounted == 82, health  # 80 in flight + the 60 s and 300 s windows of "closing"
    lines = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert len(lines) == 1 and "82 entries" in lines[0] and "in flight" in lines[0], lines
    sender.join(60)


def test_random_in_flight_batches_at_close_are_all_accounted_for(emulator, make_reporter):
    """Randomized: batch sizes, answer delays and close budgets; sent + dropped + queued adds up each time."""
    import random

    rng = random.Random(8)
    for _ in range(3):
        emulator.reset()
        reporter = make_reporter(LANGFLOW_CMS_READ_TIMEOUT="30")
        exporter = reporter._exporters[""]
        emulator.set_faults(latency=rng.uniform(2.0, 3.0))  # longer than any close budget below
        count = rng.randint(30, 120)
        exporter.enqueue(entries(count))
        sender = threading.Thread(target=reporter._send_all, args=(time.monotonic() + 50,), daemon=True)
        sender.start()
        while exporter.queued():
            time.sleep(0.01)
        reporter.close(timeout=rng.uniform(0.2, 0.9))
        health = reporter.health()
        assert health["sent"] + health["dropped"] + health["queued"] == count, health
        sender.join(60)
        emulator.clear_faults()
