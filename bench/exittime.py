"""15. Exit time at high cardinality: a process holding 100,000 series (inside the default caps: 100 metrics
of 1,000 series) ends, with the spool on and off, the endpoint up and hung.

Each case is a fresh ``python`` subprocess with ``LANGFLOW_CMS_DEV=1``: it records one value into each
series (the reader thread aggregates them), says "ready" on stdout and returns from its script, so the
interpreter's exit hook closes the reporter as in any script. The figure is the time from "ready" to the
process's end; the promise is ``LANGFLOW_CMS_EXIT_TIMEOUT`` (0.8 s by default) + 0.5 s. The endpoint is an
emulator in this process (up) or a listening socket that never answers (hung).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.common import Row, Section
from bench.stall import stalled_endpoint

ROOT = Path(__file__).resolve().parents[1]
EXIT_TIMEOUT_S = 0.8
GOAL_S = EXIT_TIMEOUT_S + 0.5

CHILD = """
import sys, time
from langflow_cms import get_reporter
r = get_reporter()
metrics, per_metric = int(sys.argv[1]), int(sys.argv[2])
for m in range(metrics):
    for s in range(per_metric):
        r.record(f"exit_bench_{m}", 1.0, {"k": str(s)})
    time.sleep(0.01)  # the reader thread drains once a second; the inbox holds 100,000 values
while r.storage.series_count() < metrics * per_metric:
    time.sleep(0.05)
print("ready", flush=True)
"""


def exit_seconds(series: int, endpoint: str, spool: Path | None) -> float:
    """Seconds from the child's "ready" to its end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANGFLOW_CMS_")}
    env.update(
        {
            "LANGFLOW_CMS_DEV": "1",
            "LANGFLOW_CMS_ENDPOINT": endpoint,
            "LANGFLOW_CMS_EXIT_TIMEOUT": str(EXIT_TIMEOUT_S),
        }
    )
    if spool is not None:
        env["LANGFLOW_CMS_SPOOL_DIR"] = str(spool)
    per_metric = 1000
    metrics = max(series // per_metric, 1)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(metrics), str(per_metric)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    ready = time.perf_counter()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"child failed: {line!r} {proc.stderr.read()[-1500:]}")  # type: ignore[union-attr]
    proc.wait(timeout=600)
    return time.perf_counter() - ready


def run(scale: float = 1.0) -> Section:
    from langflow_cms.emulator import Emulator

    series = max(int(100_000 * scale), 1000)
    times: dict[str, float] = {}
    with ExitStack() as stack:
        up = stack.enter_context(Emulator(port=0)).endpoint
        hung = stack.enter_context(stalled_endpoint())
        for spool_on in (False, True):
            for name, endpoint in (("up", up), ("hung", hung)):
                spool = Path(stack.enter_context(tempfile.TemporaryDirectory())) if spool_on else None
                times[f"spool {'on' if spool_on else 'off'}, endpoint {name}"] = exit_seconds(
                    series, endpoint, spool
                )
    worst = max(times.values())
    rows = [
        Row(
            f"15. Exit time of a process holding {series:,} series (spool on/off, endpoint up/hung): max",
            ", ".join(f"{case}: {seconds:.2f} s" for case, seconds in times.items()),
            f"the promise: LANGFLOW_CMS_EXIT_TIMEOUT ({EXIT_TIMEOUT_S:g} s) + 0.5 s",
            f"max {worst:.2f} s",
            f"max ≤ {GOAL_S:g} s",
            worst <= GOAL_S,
        )
    ]
    details = [
        f"**Exit at high cardinality.** A subprocess records one value into each of {series:,} series "
        "(100 metrics × 1,000 series at scale 1), waits until the reader thread holds them all, then returns "
        "from its script; the figure is the time from then to the process's end (interpreter start-up and "
        "recording excluded). Four cases: the spool on and off, the endpoint an emulator (up) or a socket "
        "that never answers (hung)."
    ]
    findings = []
    if worst > GOAL_S:
        findings.append(
            f"**15 (exit time at {series:,} series): missed** ({worst:.2f} s). The file work at close stops "
            "at the deadline; what is left is the last collection (sealing and rolling up every series, "
            "not yet cut at the deadline: 0.45 to 1.8 s at 100,000 series measured on this shared machine "
            "under load) and the close thread's own share of the interpreter lock."
        )
    return Section(rows, details, findings)


if __name__ == "__main__":
    print(run(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0))
