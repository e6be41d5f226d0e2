"""16. Aggregation goes on while sending is stalled: 20,000 observations/s for 90 s (scale 1) over 100
series, the endpoint stalled the whole time (the emulator answers every PutCustomMetric after 30 s, past the
client's read timeout), then back.

A real reporter with its reader thread records from the main thread at a steady rate; the reader thread's
minute cycle hands the windows to the exporter, whose sender thread waits for the stalled endpoint. The
figure is the number of observations ``record()`` had to drop because the inbox was full (the reader thread
did not drain), the process's peak RSS growth, and whether every observation reached the emulator after the
endpoint came back (the sum of the 60 s windows' SampleCount).
"""

from __future__ import annotations

import resource
import time

from bench.common import Row, Section

RATE = 20_000
SERIES = 100
GOAL_DROPS = 0


def run(scale: float = 1.0) -> Section:
    from langflow_cms.config import Config
    from langflow_cms.emulator import Emulator
    from langflow_cms.reporter import Reporter

    seconds = max(90.0 * scale, 5.0)
    with Emulator(port=0) as emulator:
        emulator.set_faults(latency=30.0)
        config = Config.from_env(
            {"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": emulator.endpoint, "LANGFLOW_CMS_FLEET": "0"}
        )
        reporter = Reporter(config)
        try:
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            dims = [{"k": str(i)} for i in range(SERIES)]
            record = reporter.record
            start = time.monotonic()
            sent = 0
            while (elapsed := time.monotonic() - start) < seconds:
                due = int(elapsed * RATE)
                while sent < due:
                    record("stall_drain", 1.0, dims[sent % SERIES])
                    sent += 1
                time.sleep(0.001)
            rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
            dropped = sum(v for k, v in reporter.storage.stats.items() if k == "dropped:inbox_full")
            emulator.clear_faults()
            reporter.close(timeout=120.0)
        finally:
            reporter.close(timeout=1.0)
        arrived = sum(
            int(e["values"]["SampleCount"]) for e in emulator.entries("stall_drain") if int(e["period"]) == 60
        )
    met = dropped <= GOAL_DROPS and arrived == sent
    rows = [
        Row(
            f"16. `record()` at {RATE:,}/s for {seconds:.0f} s with the endpoint stalled: inbox drops",
            f"{dropped:,} dropped of {sent:,}; peak RSS +{rss_growth_mb:.1f} MB; {arrived:,} delivered "
            "after the endpoint returned",
            "before #24 §6: the reader thread drained and sent, so a stalled send stopped the draining "
            "(drops from about 2,000/s)",
            f"{dropped:,} drops",
            "0 drops, all delivered",
            met,
        )
    ]
    details = [
        f"**Sending off the draining thread.** {sent:,} observations over {SERIES} series at {RATE:,}/s for "
        f"{seconds:.0f} s into a real reporter; the emulator answered each PutCustomMetric after 30 s (the "
        "client gives up after its 10 s read timeout) until the recording ended, then normally; `close()` "
        "then delivered what was kept."
    ]
    findings = []
    if not met:
        findings.append(
            f"**16 (record() while sending is stalled): missed**: {dropped:,} inbox drops, "
            f"{arrived:,} of {sent:,} delivered."
        )
    return Section(rows, details, findings)
