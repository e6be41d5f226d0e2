"""Issue #23 §9: a step of the wall clock (NTP, either direction) never loses nor double-counts a window.

Each test runs a real process whose wall clock (``time.time``, replaced before anything is imported, as
the kernel's clock would step under it) is the real time plus an offset the process sets between its
records: a plan of ticks moves the clock forward faster than real time, and steps it back and forth as the
issue reproduced (-90 / +240 / -150 s). The process records a known number of values at known clock
readings, flushes after each tick (the reporter thread runs too), closes, and prints what it recorded per
minute. The oracle is that print: CMS (the emulator, which keeps the last write of a key) must hold exactly
those counts per 60 s window and per 300 s window, with and without host merge.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

STEPPED_PROCESS = textwrap.dedent(
    """
    import json, sys, time
    real = time.time
    offset = [0.0]
    time.time = lambda: real() + offset[0]  # the process's wall clock: every reader sees each step

    from langflow_cms.config import Config
    from langflow_cms.reporter import Reporter

    plans = json.loads(sys.argv[1])
    results = []
    for number, plan in enumerate(plans):
        reporter = Reporter(Config.from_env())
        name = f"stepped_plan{number}"
        recorded = {"60": {}, "300": {}}
        base = (real() // 300 + 1) * 300 - 600  # a 5-minute window's start, ten minutes back
        for at, count in plan:  # the clock reads base + at while ``count`` values are recorded
            offset[0] = base + at - real()
            for _ in range(count):
                reporter.record(name, 1.0)
            for period in (60, 300):
                start = str(int((base + at) // period * period))
                recorded[str(period)][start] = recorded[str(period)].get(start, 0) + count
            reporter.flush(timeout=20)
        offset[0] = base + plan[-1][0] - real()
        reporter.close(timeout=30)
        results.append({"name": name, "recorded": recorded, "steps": reporter.health()["clock_steps"]})
    print(json.dumps(results))
    """
)


def stored(emulator, name: str, period: int) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for entry in emulator.entries(name):
        if entry["period"] == period:
            counts[str(int(entry["time"]) // 1000)] += int(entry["values"]["SampleCount"])
    return dict(counts)


def run_plans(env: dict[str, str], plans: list[list[tuple[float, int]]], timeout: float) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-c", STEPPED_PROCESS, json.dumps(plans)],
        env={
            **env,
            "LANGFLOW_CMS_MAX_QPS": "200",
            "LANGFLOW_CMS_FLEET": "false",
            "LANGFLOW_CMS_EVENTS": "false",
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def issue_plan() -> list[tuple[float, int]]:
    """The issue's steps: -90 s, then +240 s, then -150 s, with ticks of 20 s between them (readings kept
    away from minute boundaries, so each value's minute is the one its process saw)."""
    readings = [15, 35, 55, 75, 95, 115, 135]  # two minutes and a bit
    readings += [135 - 90 + 5, 135 - 90 + 25, 135 - 90 + 45]  # back 90 s: minutes 0 to 2 again
    readings += [95 + 240, 95 + 260, 95 + 280]  # forward 240 s: minutes 5 and 6
    readings += [375 - 150, 375 - 130, 375 - 110, 375 - 90]  # back 150 s: minutes 3 and 4 again
    return [(at, 7 + i) for i, at in enumerate(readings)]


def random_plan(rng: random.Random) -> list[tuple[float, int]]:
    at, plan = 30.0, []
    for _ in range(rng.randint(6, 14)):
        move = rng.choice([rng.uniform(5, 40)] * 3 + [rng.uniform(-200, -3), rng.uniform(3, 300)])
        at = max(at + move, 1.0)
        if at % 60 < 1 or at % 60 > 59:  # a reading on a boundary could fall on either side of it
            at += 2
        plan.append((round(at, 1), rng.randint(1, 30)))
    return plan


def assert_exact(emulator, results: list[dict]) -> None:
    for result in results:
        for period in ("60", "300"):
            assert stored(emulator, result["name"], int(period)) == result["recorded"][period], (
                period,
                result,
            )


@pytest.mark.parametrize("merge", ["own", "host"])
def test_the_issue_s_clock_steps_lose_and_double_count_no_window(emulator, env, tmp_path, merge):
    """#23 §9: steps of -90 / +240 / -150 s lost 39 % of the 60 s counts and 59 % of the 300 s counts (writes
    for the repeated range overwrote complete ones); with host merge 60 s values moved to a neighbour."""
    if merge == "host":
        env = {**env, "LANGFLOW_CMS_SPOOL_DIR": str(tmp_path / "spool")}
    results = run_plans(env, [issue_plan()], timeout=240)
    assert results[0]["steps"] >= 2  # both backward steps were seen as steps
    assert_exact(emulator, results)


@pytest.mark.parametrize("merge", ["own", "host"])
def test_random_clock_steps_lose_and_double_count_no_window(emulator, env, tmp_path, merge):
    """Random plans of ticks and steps (back up to 200 s, forward up to 300 s), twelve per mode."""
    seed = int(time.time())
    rng = random.Random(seed)
    if merge == "host":
        env = {**env, "LANGFLOW_CMS_SPOOL_DIR": str(tmp_path / "spool")}
    results = run_plans(env, [random_plan(rng) for _ in range(12)], timeout=400)
    try:
        assert_exact(emulator, results)
    except AssertionError as exc:
        raise AssertionError(f"seed {seed}: {exc}") from None
