"""Issue #14, done when: the example flow run as version v1 and then as v2 (whose LLM node is made slower
on purpose) through real lfx runs, then read back from the emulator with `langflow-cms top --json` and
`langflow-cms compare`, as a user would after deploying v2."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from clock_support import ShiftedClock

REPO = Path(__file__).resolve().parents[1]
POEM = REPO / "examples" / "flows" / "poem.json"
CLI = Path(sys.executable).with_name("langflow-cms")
RUNS = 20

RUN = textwrap.dedent(
    """
    import asyncio, sys
    from lfx.load import arun_flow_from_json

    async def main():
        for i in range(int(sys.argv[2])):
            await arun_flow_from_json(sys.argv[1], f"topic {i}", disable_logs=True)

    asyncio.run(main())
    """
)


def variant(tmp_path: Path, version: str, latency_scale: float) -> Path:
    flow = json.loads(POEM.read_text())
    for node in flow["data"]["nodes"]:
        template = node["data"]["node"]["template"]
        if "flow_dimensions" in template:
            template["flow_dimensions"]["value"] = {"version": version}
        if "latency_scale" in template:
            template["latency_scale"]["value"] = latency_scale
    path = tmp_path / "poem.json"  # the same flow name for both versions
    path.write_text(json.dumps(flow))
    return path


@pytest.mark.slow
def test_top_and_compare_read_back_two_versions_of_the_example_flow(emulator, env, tmp_path):
    # both versions' runs inside one 5-minute window of the fleet stream: the runs and the read-back commands
    # share a test clock set to the start of a window, instead of waiting up to two minutes for one
    clock = ShiftedClock(tmp_path / "clock")
    window = clock.into_next(5, period=300)
    env = {**env, "LANGFLOW_CMS_TEST_CLOCK": str(clock.path)}
    for version, scale in (("v1", 0.2), ("v2", 2.0)):  # v2's LLM node is ten times slower
        path = variant(tmp_path, version, scale)
        result = subprocess.run(
            [sys.executable, "-c", RUN, str(path), str(RUNS)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    assert clock.now() < window + 300, "the runs left the 5-minute window"
    read_env = {**env, "LANGFLOW_CMS_USER_ID": emulator.user_id}

    top = subprocess.run(
        [str(CLI), "top", "--json", "--minutes", "5"],
        env=read_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert top.returncode == 0, top.stderr
    flows = json.loads(top.stdout)["flows"]
    poem = [row for row in flows if row["flow"] == "poem"]
    assert sum(row["runs"] for row in poem) == 2 * RUNS and all(row["errors"] == 0 for row in poem)

    png = tmp_path / "compare.png"
    args = ["compare", "--flow", "poem", "version=v1", "version=v2", "--minutes", "5", "--png", str(png)]
    compare = subprocess.run(
        [str(CLI), *args, "--json"], env=read_env, capture_output=True, text=True, timeout=120
    )
    assert compare.returncode == 0, compare.stderr
    report = json.loads(compare.stdout)
    whole = report["whole_flow"]
    assert whole["a"]["runs"] == RUNS and whole["b"]["runs"] == RUNS
    p50 = whole["change"]["p50"]
    assert p50["change_pct"] is not None and p50["change_pct"] > 50, report  # v2 is far slower, and says so
    assert p50["verdict"] == "slower", whole
    assert png.stat().st_size > 10_000
    table = subprocess.run([str(CLI), *args], env=read_env, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "slower" in table.stdout
