"""A busy process's last minute at exit (issue 23 §12): the final send may spend the call allowance the
process left unused in the last seconds, so a full last minute fits in the exit budget, and the
aggregates that carry the counts go before sampled raw points.

The rate is set low (2 calls/s) and the exit budget to 3 s so that the rate limit, not the machine's
speed, is what bounds the exit: before, 3 s x 2 calls/s of 21 entries left most of 200 entries behind."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.test_spool import run

pytestmark = [pytest.mark.serial, pytest.mark.timeout(120)]  # the exit budget under load

BUSY = textwrap.dedent(
    """
    import json, time
    from langflow_cms import get_reporter
    rep = get_reporter()
    time.sleep(2.5)  # the process worked a while without sending (its minute is not over)
    for series in range(100):
        for i in range(5):
            rep.record("busy_last_minute", float(i), {"node": f"n{series}"})
    """
)


def test_a_busy_last_minute_is_delivered_within_the_exit_budget(emulator, env):
    """Before: 'entries not delivered ... (Throttling.Local: the local rate limit leaves no time before
    the deadline): dropped' for most of the 200 entries (100 node series at 60 s and 300 s)."""
    settings = {**env, "LANGFLOW_CMS_MAX_QPS": "2", "LANGFLOW_CMS_EXIT_TIMEOUT": "3"}
    done = run(BUSY, settings, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "not delivered" not in done.stderr, done.stderr
    for period in (60, 300):
        stored = [e for e in emulator.entries("busy_last_minute") if e["period"] == period]
        assert sum(e["values"]["SampleCount"] for e in stored) == 500, period
    assert json.dumps(emulator.stats())  # the emulator answered every call
