"""Adopting a dead process's snapshot is idempotent (issue 23 §5): kill the adopter at any point of the
adoption, start another process, and every sealed window of the dead one is delivered, once.

Real processes on a real spool directory; the adopter kills itself with SIGKILL at a chosen (or random)
file operation of the adoption."""

from __future__ import annotations

import json
import random
import textwrap
import time
from pathlib import Path

import pytest

from langflow_cms.pipeline.window import Window
from tests.test_spool import run, spool_env

pytestmark = pytest.mark.timeout(300)

DEAD = "99999999.deadbeef"
SERIES = 6

KILL_AT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    count = {"n": 0}
    target = int(sys.argv[1])

    def hook(original):
        def wrapped(*args, **kwargs):
            result = original(*args, **kwargs)
            count["n"] += 1
            if count["n"] == target:
                os.kill(os.getpid(), signal.SIGKILL)  # the kill, right after the target-th file operation
            return result
        return wrapped

    os.replace = hook(os.replace)
    Path.rename = hook(Path.rename)
    Path.unlink = hook(Path.unlink)
    from langflow_cms import get_reporter
    get_reporter()  # adopts the dead process's snapshot while it starts
    os._exit(0)  # no exit delivery: only the adoption's file work happened
    """
)


def dead_snapshot(spool: Path) -> None:
    """What a SIGKILLed process leaves: its snapshot of sealed 300 s windows (and none of its lock)."""
    start = int(time.time()) // 300 * 300
    windows = []
    for s in range(SERIES):
        window = Window("adopted", (("instance", "dead-host"), ("series", f"s{s}")), start, 300)
        for value in range(10):
            window.add(float(value))
        windows.append(window.to_dict())
    spool.mkdir(parents=True, exist_ok=True)
    (spool / f"rollup-{DEAD}.json").write_text(json.dumps(windows))


def assert_adopted_once(emulator, spool: Path) -> None:
    stored = [e for e in emulator.entries("adopted") if e["period"] == 300]
    counts: dict[str, int] = {}
    for entry in stored:  # CMS keeps the last write of a key: a resend of the same values is no harm
        counts[entry["dimensions"]["series"]] = entry["values"]["SampleCount"]
    assert counts == {f"s{s}": 10 for s in range(SERIES)}
    assert sorted(p.name for p in spool.glob("*rollup-*")) == []


def adopt_after_a_kill(emulator, tmp_path, host_merge: str, kill_at: int) -> None:
    spool = tmp_path / f"spool-{host_merge}-{kill_at}"
    dead_snapshot(spool)
    env = {**spool_env(spool, emulator.endpoint), "LANGFLOW_CMS_HOST_MERGE": host_merge}
    adopter = run(KILL_AT, env, str(kill_at))
    assert adopter.returncode in (0, -9), adopter.stderr
    finisher = run("from langflow_cms import get_reporter; get_reporter().close(timeout=20)", env)
    assert finisher.returncode == 0, finisher.stderr
    assert_adopted_once(emulator, spool)


@pytest.mark.parametrize("host_merge", ["false", "true"])
def test_an_adopter_killed_right_after_claiming_loses_nothing(emulator, tmp_path, host_merge):
    """Before: the snapshot renamed to claimed-* by the killed adopter was never read again (0 of 6)."""
    adopt_after_a_kill(emulator, tmp_path, host_merge, kill_at=1)  # the claim's rename, then the kill


@pytest.mark.slow  # randomized process kills: tens of seconds
@pytest.mark.parametrize("host_merge", ["false", "true"])
def test_an_adopter_killed_at_a_random_point_of_adoption_loses_and_doubles_nothing(
    emulator, tmp_path, host_merge
):
    for kill_at in random.Random(5).sample(range(2, 9), 3):
        emulator.reset()
        adopt_after_a_kill(emulator, tmp_path, host_merge, kill_at)


WRONG_SHAPES = ["null", "{}", '["x"]', '[{"bad": 1}]']


@pytest.mark.parametrize("shape", WRONG_SHAPES)
def test_a_snapshot_of_the_wrong_shape_is_moved_aside_and_the_others_adopted(
    emulator, tmp_path, shape, caplog
):
    """Review #2: valid JSON of the wrong shape raised TypeError/AttributeError out of Reporter() (null,
    ["x"]), so get_reporter() gave a NullReporter in every later process; {} and [{"bad": 1}] were deleted
    without a trace instead of kept in bad/ for a human."""
    from langflow_cms.config import Config
    from langflow_cms.reporter import Reporter

    spool = tmp_path / "spool"
    dead_snapshot(spool)  # a valid snapshot beside the bad ones
    (spool / "rollup-999.0badf00d.json").write_text(shape)
    (spool / "claimed-998.0dead0ff-rollup-997.0badcafe.json").write_text(shape)  # its claimer died too
    with caplog.at_level("WARNING", logger="langflow_cms"):
        reporter = Reporter(Config.from_env(spool_env(spool, emulator.endpoint)), start=False)
        assert reporter.close(timeout=20)
    assert_adopted_once(emulator, spool)
    aside = sorted(p.name for p in (spool / "bad").iterdir())
    assert len(aside) == 2 and "999.0badf00d" in aside[1] and "997.0badcafe" in aside[0], aside
    assert sum("moved aside" in r.getMessage() for r in caplog.records) == 1


def test_get_reporter_with_a_null_snapshot_on_the_host_journal_reports(emulator, tmp_path):
    """Review #2 through get_reporter() with the per-host merge: before, a NullReporter (TypeError)."""
    spool = tmp_path / "spool"
    dead_snapshot(spool)
    (spool / "rollup-999.0badf00d.json").write_text("null")
    env = {**spool_env(spool, emulator.endpoint), "LANGFLOW_CMS_HOST_MERGE": "true"}
    code = (
        "from langflow_cms import get_reporter\n"
        "r = get_reporter()\n"
        "assert type(r).__name__ == 'Reporter', r.health()\n"
        "r.record('after_bad_snapshot', 1.0, {})\n"
        "assert r.close(timeout=20)\n"
    )
    result = run(code, env)
    assert result.returncode == 0, result.stderr
    assert_adopted_once(emulator, spool)
    assert sum(e["values"]["SampleCount"] for e in emulator.entries("after_bad_snapshot")) == 2  # 60 s, 300 s
    assert [p.name for p in (spool / "bad").iterdir()] != []
