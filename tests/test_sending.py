"""Sending never blocks aggregation (#24 §6): the reader thread's minute hands its entries to the
exporter's sender thread and goes back to draining, so a stalled endpoint never fills the inbox."""

from __future__ import annotations

import threading
import time

from langflow_cms.config import Config
from langflow_cms.reporter import Reporter


def test_the_minute_cycle_returns_at_once_while_the_endpoint_is_stalled(emulator):
    emulator.set_faults(latency=30.0)  # every PutCustomMetric answered after 30 s: past the read timeout
    config = Config.from_env(
        {
            "LANGFLOW_CMS_DEV": "1",
            "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
            "LANGFLOW_CMS_RETRY_DEADLINE": "40",
            "LANGFLOW_CMS_FLEET": "0",
        }
    )
    reporter = Reporter(config, start=False)  # the test plays the reader thread
    try:
        for i in range(50):
            reporter.record("sending_stalled", 1.0, {"k": str(i)})
        reporter.storage.drain()
        reporter.storage.clock = lambda: time.time() + 120  # the minute has ended: the cycle seals it
        started = time.monotonic()
        cycle = threading.Thread(target=reporter.cycle)
        cycle.start()
        cycle.join(20.0)
        took = time.monotonic() - started
        # before: the cycle sent on the draining thread and waited for the stalled endpoint until the
        # retry deadline (40 s); nothing was drained meanwhile
        assert not cycle.is_alive(), "the reader thread's cycle waited for the stalled endpoint"
        assert took < 20.0
        reporter.record("sending_stalled", 1.0, {"k": "during"})
        reporter.storage.drain()  # the reader thread drains while the send waits
        assert reporter.storage.stats["dropped:inbox_full"] == 0
        emulator.clear_faults()
        assert reporter.flush(timeout=60.0)
    finally:
        reporter.close(timeout=5.0)
    arrived = {e["dimensions"]["k"] for e in emulator.entries("sending_stalled") if int(e["period"]) == 60}
    assert {str(i) for i in range(50)} <= arrived
