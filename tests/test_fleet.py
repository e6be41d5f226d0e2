"""Issue #11, the fleet stream: raw points with no instance dimension, so CMS computes one P95 per flow."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy
import pytest

from langflow_cms import contract
from langflow_cms.delivery.serializer import raw_entries
from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, emulator_client
from langflow_cms.ops.query import describe_metric_list
from langflow_cms.pipeline.fleet import FleetStream, SlowStreaks
from langflow_cms.pipeline.window import Window

REPO = Path(__file__).resolve().parents[1]
POEM = REPO / "examples" / "flows" / "poem.json"

RUN_POEM = textwrap.dedent(
    """
    import asyncio, sys
    from lfx.load import arun_flow_from_json

    async def main():
        for i in range(int(sys.argv[2])):
            await arun_flow_from_json(sys.argv[1], f"topic {i}", disable_logs=True)

    asyncio.run(main())
    """
)


def _place(run_id: str) -> float:
    """A run's place in [0, 1), computed here: blake2b-64 of the run id (docs/metrics.md)."""
    return int.from_bytes(hashlib.blake2b(run_id.encode(), digest_size=8).digest(), "big") / 2.0**64


def _stream(sent: list, now: list, **kw):
    def wire(points):  # what the exporter does with the stream's points (Exporter.enqueue_points)
        sent.extend(raw_entries(points))

    return FleetStream(group_id="0", common={}, sink=wire, clock=lambda: now[0], **kw)


def test_the_budget_lowers_the_rate_for_the_minute_instead_of_cutting_its_tail(caplog):
    """#25: a burst minute whose latency climbs: the budget keeps a uniform sample of the whole minute (the
    runs with the smallest hashes), not its first runs, says so once, and never sends more than the budget."""
    sent: list[dict] = []
    now = [1_800_000_000.0]
    fleet = _stream(sent, now, budget_per_minute=100)
    ids = [f"run-{i}" for i in range(1000)]
    with caplog.at_level(logging.WARNING, logger="langflow_cms"):
        for i, run_id in enumerate(ids):
            now[0] = 1_800_000_000.0 + i * 0.05  # 1,000 runs in 50 s, each slower than the one before
            fleet.offer([("m", {"flow": "f"}, 100.0 + 2 * i), ("e", {"flow": "f"}, 0.0)], run_id)
        fleet.flush()
        assert sent == []  # the minute is not over: its sample is not final yet
        now[0] += 60
        fleet.flush()
        for minute in range(2):  # shedding again: still one log line
            for run_id in ids:
                fleet.offer([("m", {"flow": "f"}, 1.0), ("e", {"flow": "f"}, 0.0)], f"{minute}{run_id}")
            now[0] += 60
            fleet.flush()
    first = [json.loads(e["Values"])["value"] for e in sent[:100] if e["MetricName"] == "m"]
    expected = sorted(ids, key=_place)[:50]
    assert sorted(first) == sorted(100.0 + 2 * ids.index(r) for r in expected)
    assert max(first) > 1900 and numpy.median(first) > 600  # the whole minute (first-come: all < 200)
    assert fleet.effective_rate == pytest.approx(sorted(_place(r) for r in ids)[50], rel=0.2)
    assert all(len(sent[i : i + 100]) <= 100 for i in range(0, len(sent), 100)) and len(sent) == 300
    shed = [r for r in caplog.records if "over its budget" in r.getMessage()]
    assert len(shed) == 1 and "LANGFLOW_CMS_FLEET_RATE" in shed[0].getMessage()


def test_every_process_samples_the_same_runs_at_the_fleet_rate():
    """The choice depends on the run id only: two processes (any order, any load under the budget) keep
    exactly the runs whose place is below the rate, so their pooled points are a uniform sample."""
    ids = [f"r{i}" for i in range(2000)]
    kept = []
    for order in (ids, ids[::-1]):
        sent: list[dict] = []
        now = [1_800_000_000.0]
        fleet = _stream(sent, now, budget_per_minute=10_000, rate=0.1)
        for run_id in order:
            fleet.offer([("m", {"run": run_id}, 1.0)], run_id)
        fleet.flush(force=True)
        kept.append({json.loads(e["Dimensions"])["run"] for e in sent})
        assert fleet.effective_rate == 0.1
    assert kept[0] == kept[1] == {r for r in ids if _place(r) < 0.1}
    assert 150 < len(kept[0]) < 250


@pytest.mark.slow
def test_three_processes_make_one_fleet_series_per_flow_and_status_that_counts_every_run(emulator, env):
    """Done when (#11): three separate processes running the same flow at once produce one fleet series
    with no instance dimension, whose points, taken as CMS would store them, count every run."""
    procs = [
        subprocess.Popen([sys.executable, "-c", RUN_POEM, str(POEM), "6"], env=env, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for proc in procs:
        assert proc.wait(timeout=240) == 0, proc.stderr.read()[-3000:]
    every = emulator.entries(contract.FLEET_FLOW_METRIC)
    assert {p["type"] for p in every} == {0}
    by_series = {}
    for p in every:
        by_series.setdefault(json.dumps(p["dimensions"], sort_keys=True), []).append(p)
    # each run twice: exactly {flow, status} (+ env) for the alarms, and with the flow's version (#25)
    exact = json.dumps({"env": "dev", "flow": "poem", "status": "ok"}, sort_keys=True)
    versioned = json.dumps({"env": "dev", "flow": "poem", "status": "ok", "version": "v1"}, sort_keys=True)
    assert {k: len(v) for k, v in by_series.items()} == {exact: 18, versioned: 18}
    points = by_series[exact]
    errors = emulator.entries(contract.FLEET_ERROR_METRIC)
    assert len(errors) == 18 and sum(p["values"]["value"] for p in errors) == 0
    # the per-host aggregates keep their instances, three of them, with the same exact count
    minute = [e for e in emulator.entries(contract.FLOW_METRIC) if e["period"] == 60]
    assert len({e["dimensions"]["instance"] for e in minute}) == 3
    assert sum(e["values"]["SampleCount"] for e in minute) == 18

    # CMS computes the fleet P95 from the raw points; it agrees with our sketch's P95 of the same runs
    client = emulator_client()
    times = [p["time"] for p in points]
    answer = describe_metric_list(
        client,
        user_id=emulator.user_id,
        metric_name=contract.FLEET_FLOW_METRIC,
        period=300,
        start_ms=min(times) - 600_000,
        end_ms=int(time.time() * 1000) + 600_000,
        endpoint=emulator.endpoint,
    )
    answer = [p for p in answer if "version" not in p["dimensions"]]  # the series the alarms watch
    assert sum(int(p["values"]["SampleCount"]) for p in answer) == 18
    if len(answer) == 1:  # all runs in one 5-minute window: the P95 of exactly these durations
        values = sorted(p["values"]["value"] for p in points)
        nearest_rank = values[math.ceil(0.95 * len(values)) - 1]  # the emulator's (documented) convention
        assert answer[0]["values"]["P95"] == pytest.approx(nearest_rank)
        window = Window("w", (), 0)  # ours, over the same durations: the same nearest rank, within 0.75 %
        for value in values:
            window.add(value)
        assert abs(window.statistics()["P95"] - nearest_rank) / nearest_rank <= 0.0075


def test_slow_streaks_count_consecutive_slow_runs_per_flow_across_minutes():
    """#12: "3 runs in a row over T" needs, per flow and minute, the longest streak of slow runs."""
    sent: list[dict] = []
    now = [1_800_000_000.0]
    fleet = FleetStream(
        budget_per_minute=100,
        group_id="0",
        common={"env": "dev"},
        sink=lambda points: sent.extend(raw_entries(points)),
    )
    streaks = SlowStreaks(fleet, clock=lambda: now[0])
    for duration in (6000, 7000, 100, 6000):  # two slow, a fast one breaks the streak, one slow
        streaks.observe({"flow": "poem"}, 5000, duration)
    now[0] += 60
    for duration in (6000, 6500):  # the open streak of 1 continues: 2, 3
        streaks.observe({"flow": "poem"}, 5000, duration)
    streaks.flush(force=True)
    points = [(json.loads(e["Dimensions"]), json.loads(e["Values"])["value"]) for e in sent]
    assert [value for _, value in points] == [2.0, 3.0]
    assert points[0][0] == {"env": "dev", "flow": "poem", "threshold_ms": "5000"}
    assert all(e["MetricName"] == contract.SLOW_STREAK_METRIC and e["Type"] == "0" for e in sent)


def test_the_pipeline_emits_points_and_imports_neither_wire_code_nor_an_operator_tool():
    """#28: aggregation hands plain points to its sink (delivery/serializer.py encodes every wire entry), and
    the runtime never imports ops/ (the streak rule once pulled the whole alarms tool in at the first slow
    run). Read from the source, lazy imports included, and seen in a fresh interpreter."""
    import ast

    for module in sorted((REPO / "langflow_cms" / "pipeline").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                assert not name.startswith(
                    ("langflow_cms.delivery", "langflow_cms.ops", "langflow_cms.alarms")
                ), f"{module.name} imports {name}"
    code = textwrap.dedent(
        """
        import sys
        from langflow_cms.pipeline.fleet import FleetStream, SlowStreaks
        got = []
        fleet = FleetStream(budget_per_minute=10, group_id="0", common={}, sink=got.extend, clock=lambda: 0.0)
        SlowStreaks(fleet, clock=lambda: 0.0).observe({"flow": "f"}, 5.0, 9.0)
        fleet.send([("m", {"flow": "f"}, 1.0)], 0.0)
        tools = sorted(m for m in sys.modules if m.startswith(("langflow_cms.ops", "langflow_cms.alarms")))
        print(tools, [(type(p).__name__, p.name, p.value, p.time_ms) for p in got])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] [('RawPoint', 'm', 1.0, 0)]"


def test_a_run_path_reports_its_slow_streak(emulator, monkeypatch):
    from types import SimpleNamespace

    from langflow_cms.config import Config
    from langflow_cms.credentials import Credential, credential_provider
    from langflow_cms.langflow import monitor
    from langflow_cms.reporter import Reporter

    settings = {
        "LANGFLOW_CMS_DEV": "1",
        "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
        "LANGFLOW_CMS_SLOW_RUN_MS": "0.000001",  # every run is slow
    }
    provider = credential_provider(Credential(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, source="test"))
    reporter = Reporter(Config.from_env(settings), provider, start=False)
    monkeypatch.setattr(monitor, "get_recorder", lambda: reporter)
    cms = SimpleNamespace(vertex_type="ext:cms_monitor:CmsMetricComponent@extra", custom_component=None)
    cms.params = cms.raw_params = {}
    graph = SimpleNamespace(flow_name="slowpoke", flow_id=None, vertices=[cms])
    monitor = monitor.FlowMonitor()
    for i in range(3):
        monitor.start_run(f"r{i}", graph)
        monitor.end_run(f"r{i}")
    assert reporter.close(timeout=10)
    (point,) = emulator.entries(contract.SLOW_STREAK_METRIC)
    assert point["values"]["value"] == 3 and point["dimensions"]["flow"] == "slowpoke"
