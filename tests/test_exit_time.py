"""Exit time is bounded at every cardinality the caps allow (#24 §2): a process holding 100,000 series
(100 metrics × 1,000 series, inside the default caps) ends within LANGFLOW_CMS_EXIT_TIMEOUT + 0.5 s, with
the spool on and off and an endpoint that never answers; what it could not keep in time is named."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXIT_TIMEOUT_S = 0.8
MARGIN_S = 1.5
"""On top of the promised 0.5 s: a loaded 2-core CI machine. Before the fix the same exits took 4-75 s."""

CHILD = """
import sys, time
from langflow_cms import get_reporter
r = get_reporter()
for m in range(100):
    for s in range(1000):
        r.record(f"exit_test_{m}", 1.0, {"k": str(s)})
    time.sleep(0.01)
deadline = time.monotonic() + 120
while r.storage.series_count() < 100_000 and time.monotonic() < deadline:
    time.sleep(0.05)
print("ready", r.storage.series_count(), flush=True)
"""


def exit_after_ready(env: dict[str, str]) -> tuple[float, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    ready = time.monotonic()
    _, err = proc.communicate(timeout=300)
    elapsed = time.monotonic() - ready
    word, _, count = line.partition(" ")
    assert word == "ready" and int(count) >= 100_000, (line, err[-2000:])  # (+ the reporter's own health)
    return elapsed, err


@pytest.mark.parametrize("spool", [False, True], ids=["no-spool", "spool"])
def test_a_process_holding_100k_series_exits_within_the_bound_with_the_endpoint_hung(tmp_path: Path, spool):
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(128)  # completes handshakes, never answers
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LANGFLOW_CMS_")}
        env.update(
            {
                "LANGFLOW_CMS_DEV": "1",
                "LANGFLOW_CMS_ENDPOINT": f"http://127.0.0.1:{hung.getsockname()[1]}",
                "LANGFLOW_CMS_EXIT_TIMEOUT": str(EXIT_TIMEOUT_S),
            }
        )
        if spool:
            env["LANGFLOW_CMS_SPOOL_DIR"] = str(tmp_path / "spool")
        elapsed, err = exit_after_ready(env)
    finally:
        hung.close()
    assert elapsed <= EXIT_TIMEOUT_S + 0.5 + MARGIN_S, (elapsed, err[-2000:])
    # nothing reached CMS: what was not kept is named, never lost silently
    assert "dropped" in err or "spooled" in err, err[-2000:]
