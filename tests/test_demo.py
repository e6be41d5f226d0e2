"""`langflow-cms demo` is a newcomer's first command: it must work on a machine whose shell holds real
Alibaba Cloud keys, fail loudly when nothing arrived, say how many failed runs it shows, and `make demo` must
leave the checkout as it found it (issue #27, points 1 and 7)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from langflow_cms.dev import emulator_client

REPO = Path(__file__).resolve().parents[1]
FOREIGN = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tForeignKeyOfTheUser",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "a-secret-the-emulator-does-not-know",
    "LANGFLOW_CMS_ENDPOINT": "http://127.0.0.1:9",  # a user's own setting: the demo has its own emulator
}


def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "LANGFLOW_CMS_"))}
    return {**env, **FOREIGN, "NO_COLOR": "1", "COLUMNS": "200"}


@pytest.mark.slow
def test_the_demo_uses_its_own_emulator_key_whatever_the_shell_holds(tmp_path):
    """Failed before: 'InvalidAccessKeyId.NotFound … entries dropped', empty tables, exit 0."""
    chart = tmp_path / "out" / "latency.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "langflow_cms.ops.demo",
            "--runs",
            "8",
            "--concurrency",
            "4",
            "--chart",
            str(chart),
        ],
        cwd=tmp_path,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "8 runs ok, 1 failed" in out and ", 0 rejected" in out, out
    assert "InvalidAccessKeyId" not in out + result.stderr
    assert re.search(r"^poem +8 +0 ", out, re.MULTILINE), out
    assert "ignoring ALIBABA_CLOUD_ACCESS_KEY_ID" in out, out
    assert FOREIGN["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] not in out + result.stderr
    assert re.search(r"Failed runs \(.*\): 1\n", out), out  # all shown: no "first N" note
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_failed_runs_heading_says_how_many_rows_it_shows(emulator, capsys):
    """Failed before: "Failed runs (…): 7" over a table of 5 rows."""
    from aliyunsdkcms.request.v20190101.PutCustomEventRequest import PutCustomEventRequest

    from langflow_cms import contract
    from langflow_cms.ops.demo import print_failures

    since_ms = int(time.time() * 1000) - 60_000
    request = PutCustomEventRequest()
    request.set_EventInfos(
        [
            {
                "EventName": contract.EVENT_FLOW_FAILED,
                "Content": json.dumps(
                    {"flow": "poem", "node": "LLM", "error_type": "E", "run_id": f"run-{i}"}
                ),
                "Time": str(since_ms + 1000 * i),
                "GroupId": "0",
            }
            for i in range(7)
        ]
    )
    client = emulator_client()
    request.set_endpoint(emulator.endpoint)
    client.do_action_with_exception(request)

    print_failures(emulator, since_ms)
    out = capsys.readouterr().out
    heading = re.search(r"Failed runs \(.*\): (\d+), the first (\d+) shown\n(.*)", out, re.DOTALL)
    assert heading, out
    rows = [line for line in heading.group(3).splitlines() if line.strip()][2:]  # header and rule
    assert (int(heading.group(1)), int(heading.group(2)), len(rows)) == (7, 5, 5), out


@pytest.mark.slow
def test_the_demo_exits_non_zero_when_the_emulator_received_nothing(tmp_path):
    """No run reached the emulator (here: the flows are not run at all): the demo says so and exits 1
    (failed before: empty tables and exit 0)."""
    script = (
        "import sys\n"
        "import langflow_cms.ops.demo as demo\n"
        "async def nothing(runs, concurrency):\n"
        "    return 0, 0\n"
        "demo.run_flows = nothing\n"
        "sys.exit(demo.main(['--runs', '1']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "received nothing" in result.stderr


def test_make_demo_writes_only_ignored_files():
    """`make demo` wrote the tracked docs/images/latency.png (a fresh clone showed it modified)."""
    dry = subprocess.run(
        ["make", "-n", "--always-make", "demo"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    (line,) = [line for line in dry.stdout.splitlines() if "langflow_cms.ops.demo" in line]
    chart = re.search(r"--chart\s+(\S+)", line)
    assert chart, line
    ignored = subprocess.run(["git", "check-ignore", "-q", chart.group(1)], cwd=REPO)
    assert ignored.returncode == 0, f"{chart.group(1)} is not ignored by git"
    refresh = subprocess.run(
        ["make", "-n", "--always-make", "docs-images"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert "--chart docs/images/latency.png" in refresh.stdout
