"""`langflow-cms top` and `compare` against the emulator, with data written through the real SDK.

Per-host aggregates (Type=1) from two instances, and the fleet stream as raw (Type=0) points: version v1
runs take 100..149 ms, v2 exactly 1.5 times as long, v3 0.1 ms longer than v1 (noise).
"""

from __future__ import annotations

import json
import sys
import time

import pytest
from aliyunsdkcms.request.v20190101.PutCustomMetricRequest import PutCustomMetricRequest
from typer.testing import CliRunner

from langflow_cms import contract
from langflow_cms.cli import app
from langflow_cms.dev import emulator_client
from langflow_cms.ops.compare import interval, quantile_from_ladder

V1 = [100.0 + i for i in range(50)]
V2 = [1.5 * v for v in V1]
V3 = [v + 0.1 for v in V1]
# (version, instance) -> (ok runs, error runs)
FLOW_RUNS = {("v1", "a"): (30, 2), ("v1", "b"): (20, 1), ("v2", "a"): (25, 3), ("v2", "b"): (25, 0)}
NODE_P95 = {("Prompt-1", "a"): 2.0, ("Prompt-1", "b"): 3.0, ("LLM-1", "a"): 90.0, ("LLM-1", "b"): 140.0}


def stats(samples: list[float]) -> dict:
    ordered = sorted(samples)
    n = len(ordered)
    return {
        "SampleCount": n,
        "Sum": sum(ordered),
        "Average": sum(ordered) / n,
        "Maximum": ordered[-1],
        "Minimum": ordered[0],
        "P50": ordered[n // 2],
        "P95": ordered[min(n - 1, int(0.95 * n))],
        "P99": ordered[-1],
    }


def aggregated(name, dims, time_ms, values):
    return {
        "GroupId": "0",
        "MetricName": name,
        "Dimensions": json.dumps(dims),
        "Time": str(time_ms),
        "Type": "1",
        "Period": "60",
        "Values": json.dumps(values),
    }


def raw(name, dims, time_ms, value):
    return {
        "GroupId": "0",
        "MetricName": name,
        "Dimensions": json.dumps(dims),
        "Time": str(time_ms),
        "Type": "0",
        "Values": json.dumps({"value": value}),
    }


def put(endpoint: str, entries: list[dict]) -> None:
    client = emulator_client()
    for i in range(0, len(entries), 20):
        request = PutCustomMetricRequest()
        request.set_endpoint(endpoint)
        request.set_MetricLists(entries[i : i + 20])
        assert json.loads(client.do_action_with_exception(request))["Code"] == "200"


def seed(endpoint: str) -> dict:
    """Write the test data; returns the times used."""
    now = int(time.time() * 1000)
    minute = now - now % 60_000
    window = now - now % 300_000
    entries = []
    for (version, instance), (ok, errors) in FLOW_RUNS.items():
        common = {"flow": "poem", "version": version, "instance": instance, "env": "dev"}
        entries.append(
            aggregated(contract.FLOW_METRIC, {**common, "status": "ok"}, minute, stats([120.0] * ok))
        )
        if errors:
            entries.append(
                aggregated(contract.FLOW_METRIC, {**common, "status": "error"}, minute, stats([5.0] * errors))
            )
        for (node, inst), p95 in NODE_P95.items():
            if inst == instance:
                values = {**stats([p95] * ok), "P95": p95}
                component = "Prompt" if node.startswith("Prompt") else "OfflinePoet"
                entries.append(
                    aggregated(
                        contract.NODE_METRIC,
                        {**common, "node": node, "component": component, "status": "ok"},
                        minute,
                        values,
                    )
                )
        for direction, tokens in (("input", 10 * ok), ("output", 20 * ok)):
            entries.append(
                aggregated(
                    contract.TOKENS_METRIC,
                    {**common, "model": "offline-poet", "direction": direction},
                    minute,
                    {"Sum": tokens, "SampleCount": ok},
                )
            )
    other = {"flow": "summarize", "instance": "a", "env": "dev", "status": "ok"}
    entries.append(aggregated(contract.FLOW_METRIC, other, minute, stats([40.0] * 7)))
    entries.append(aggregated(contract.FLOW_METRIC, {**other, "instance": "b"}, minute, stats([40.0] * 5)))
    # an hour ago: outside every default range
    entries.append(
        aggregated(contract.FLOW_METRIC, {**other, "instance": "old"}, minute - 3_600_000, stats([1.0] * 999))
    )
    for version, samples in (("v1", V1), ("v2", V2), ("v3", V3)):
        dims = {"flow": "poem", "version": version, "env": "dev"}
        for i, value in enumerate(samples):
            at = min(window + i, now)  # inside the current 300 s window, never in the future
            entries.append(raw(contract.FLEET_FLOW_METRIC, {**dims, "status": "ok"}, at, value))
            entries.append(raw(contract.FLEET_ERROR_METRIC, dims, at, 0))
    # the optional fleet node stream, for the LLM node only (the Prompt node shows the upper bound)
    for version, scale in (("v1", 1.0), ("v2", 2.0)):
        dims = {"flow": "poem", "node": "LLM-1", "status": "ok", "version": version, "env": "dev"}
        for i in range(40):
            entries.append(raw(contract.FLEET_NODE_METRIC, dims, min(window + i, now), scale * (80.0 + i)))
    put(endpoint, entries)
    return {"now": now, "minute": minute, "window": window}


@pytest.fixture
def seeded(emulator):
    emulator.seeded = seed(emulator.endpoint)
    return emulator


@pytest.fixture
def cli_env(seeded):
    return {
        "LANGFLOW_CMS_DEV": "1",
        "LANGFLOW_CMS_ENDPOINT": seeded.endpoint,
        "LANGFLOW_CMS_USER_ID": seeded.user_id,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "",
        "NO_COLOR": "1",
    }


@pytest.fixture
def cli(seeded, cli_env):
    """Run the CLI in-process with the range ending when the data was written (no race with a 5-minute
    boundary passing during the test)."""

    def run(*args: str, code: int = 0):
        end = [] if "--end" in args else ["--end", str(seeded.seeded["now"])]
        result = CliRunner().invoke(app, [*args, *end], env=cli_env)
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return run


def test_top_json_counts_runs_exactly_over_instances(cli, seeded):
    report = json.loads(cli("top", "--json").stdout)
    flows = {row["flow"]: row for row in report["flows"]}
    assert set(flows) == {"poem", "summarize"}
    assert flows["poem"]["runs"] == 30 + 2 + 20 + 1 + 25 + 3 + 25
    assert flows["poem"]["errors"] == 6
    assert flows["poem"]["error_rate"] == pytest.approx(6 / 106)
    assert flows["summarize"]["runs"] == 12  # the run an hour ago is not in the last 5 minutes
    # poem's ok runs come from three fleet series (v1, v2, v3): no exact combination, only bounds
    p95 = flows["poem"]["p95"]
    assert p95["kind"] == "bounds" and p95["value"] is None
    assert p95["low"] <= 147 and p95["high"] >= 1.5 * 147
    assert flows["summarize"]["p95"]["kind"] == "upper_bound"  # no fleet stream for it
    tokens = {(t["flow"], t["direction"]): t["tokens"] for t in report["tokens"]}
    assert tokens[("poem", "input")] == 10 * (30 + 20 + 25 + 25)
    assert tokens[("poem", "output")] == 20 * 100
    assert report["namespace"] == contract.CUSTOM_NAMESPACE_PREFIX + seeded.user_id


def test_top_one_fleet_series_gives_exact_percentiles(cli):
    report = json.loads(cli("top", "--json", "--where", "version=v1").stdout)
    (poem,) = report["flows"]
    assert poem["runs"] == 53 and poem["errors"] == 3
    assert poem["p50"]["kind"] == "exact" and poem["p50"]["runs"] == 50
    assert 120 <= poem["p50"]["value"] <= 130
    assert poem["p99"]["value"] == pytest.approx(149, abs=1)
    split = json.loads(cli("top", "--json", "--by", "version").stdout)
    rows = {(r["flow"], r["version"]): r for r in split["flows"]}
    assert rows[("poem", "v2")]["runs"] == 53 and rows[("poem", "v2")]["p50"]["kind"] == "exact"


def test_top_per_node_shows_upper_bounds_not_averages(cli):
    report = json.loads(cli("top", "--json", "--flow", "poem").stdout)
    nodes = {row["node"]: row for row in report["nodes"]}
    assert set(nodes) == {"Prompt-1", "LLM-1"}
    assert nodes["Prompt-1"]["runs"] == 100 and nodes["LLM-1"]["component"] == "OfflinePoet"
    p95 = nodes["Prompt-1"]["p95"]
    assert p95["kind"] == "upper_bound" and p95["high"] == 3.0  # the max of 2 and 3, not 2.5
    assert any("upper bound" in note for note in report["notes"])
    # the LLM node has a fleet stream: v1 and v2 are two series, so bounds (never the 140 ms upper bound)
    llm = nodes["LLM-1"]["p95"]
    assert llm["kind"] == "bounds" and llm["low"] < 120 < 2 * 117 <= llm["high"]
    text = cli("top", "--flow", "poem").stdout
    assert "Prompt-1" in text and "<=3.0" in text and "(whole flow)" in text


def test_top_per_node_from_the_fleet_node_stream(cli):
    report = json.loads(cli("top", "--json", "--flow", "poem", "--where", "version=v2").stdout)
    llm = next(row for row in report["nodes"] if row["node"] == "LLM-1")
    assert llm["runs"] == 50  # exact, from the per-instance aggregates
    assert llm["p50"]["kind"] == "exact" and llm["p50"]["runs"] == 40
    assert 2 * 95 <= llm["p50"]["value"] <= 2 * 105


def test_top_table_and_watch_once(cli):
    text = cli("top").stdout
    assert "poem" in text and "106" in text and "summarize" in text


def test_compare_reports_v2_slower_with_sign_and_magnitude(cli):
    report = json.loads(cli("compare", "--flow", "poem", "version=v1", "version=v2", "--json").stdout)
    whole = report["whole_flow"]
    assert whole["a"]["runs"] == 53 and whole["b"]["runs"] == 53
    assert whole["a"]["error_rate"] == pytest.approx(3 / 53)
    for statistic in ("p50", "p95", "p99"):
        change = whole["change"][statistic]
        assert change["change_pct"] == pytest.approx(50.0, abs=0.5), statistic
        assert change["significant"] and change["verdict"] == "slower"
        assert whole["b"][statistic]["value"] > whole["a"][statistic]["value"]
    backwards = json.loads(cli("compare", "--flow", "poem", "version=v2", "version=v1", "--json").stdout)
    change = backwards["whole_flow"]["change"]["p95"]
    assert change["change_pct"] == pytest.approx(-100 / 3, abs=0.5) and change["verdict"] == "faster"
    # nodes: per-instance upper bounds are shown but never called significant
    assert report["nodes"]["Prompt-1"]["change"]["p95"]["significant"] is False
    llm = report["nodes"]["LLM-1"]["change"]["p95"]  # from the fleet node stream: twice as slow
    assert llm["change_pct"] == pytest.approx(100.0, abs=1) and llm["verdict"] == "slower"


def test_compare_says_when_a_side_has_no_runs(cli):
    report = json.loads(cli("compare", "--flow", "poem", "version=v1", "version=V1", "--json").stdout)
    assert report["whole_flow"]["b"]["runs"] == 0
    assert report["notes"] == ["no runs of poem with version=V1 in this range"]
    assert report["whole_flow"]["change"]["p50"]["verdict"] == "unknown"


def test_top_and_compare_name_the_flows_seen_when_the_flow_has_no_runs(cli):
    """#25: a flow renamed or copied (poem -> poem_slow) must not silently show nothing."""
    expected = "no runs of 'poem_slow' in this range; flows seen: poem, summarize"
    report = json.loads(cli("compare", "--flow", "poem_slow", "version=v1", "version=v2", "--json").stdout)
    assert report["notes"] == [expected]
    assert expected in " ".join(
        cli("compare", "--flow", "poem_slow", "version=v1", "version=v2").stdout.split()
    )
    top = json.loads(cli("top", "--flow", "poem_slow", "--json").stdout)
    assert top["flows"] == [] and expected in top["notes"]
    assert expected in " ".join(cli("top", "--flow", "poem_slow").stdout.split())


def test_compare_noise_is_not_significant(cli):
    report = json.loads(cli("compare", "--flow", "poem", "version=v1", "version=v3", "--json").stdout)
    change = report["whole_flow"]["change"]["p50"]
    assert abs(change["change_pct"]) < 0.2
    assert change["significant"] is False and change["verdict"] == "within noise"


def test_compare_table_and_png(cli, tmp_path):
    png = tmp_path / "charts" / "compare.png"
    result = cli("compare", "--flow", "poem", "version=v1", "version=v2", "--png", str(png))
    assert "slower" in result.stdout and "+50.0%" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_bad_side_is_a_usage_error(cli):
    cli("compare", "--flow", "poem", "version", "version=v2", code=2)
    cli("compare", "--flow", "poem", "version=v1", "version=v2", "--end", "yesterday", code=2)


def test_png_without_matplotlib_says_what_to_install(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # a broken install: import matplotlib fails
    result = cli(
        "compare", "--flow", "poem", "version=v1", "version=v2", "--png", str(tmp_path / "x.png"), code=1
    )
    assert "pip install --force-reinstall langflow-cms" in result.output
    assert not (tmp_path / "x.png").exists()


def chart_texts(report: dict) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from langflow_cms.ops.compare import chart

    fig = chart(report)
    try:
        texts = [t.get_text() for t in fig.findobj(Text)]
        texts += [label.get_text() for ax in fig.axes for label in ax.get_yticklabels()]
        return "\n".join(texts)
    finally:
        plt.close(fig)


def test_the_png_shows_each_sides_run_count_and_marks_significant_differences(cli):
    """Issue #27 point 6 (failed before: the chart had neither run counts nor verdicts)."""
    report = json.loads(cli("compare", "--flow", "poem", "version=v1", "version=v2", "--json").stdout)
    texts = chart_texts(report)
    runs_a = sum(ok + errors for (version, _), (ok, errors) in FLOW_RUNS.items() if version == "v1")
    runs_b = sum(ok + errors for (version, _), (ok, errors) in FLOW_RUNS.items() if version == "v2")
    assert f"version=v1 ({runs_a} runs)" in texts and f"version=v2 ({runs_b} runs)" in texts, texts
    assert f"{runs_a} vs {runs_b} runs" in texts, texts
    assert "slower*" in texts and "significant difference" in texts, texts
    assert "faster*" not in texts and "†" not in texts  # 50 runs a side, no lone slow run


def lone_side(runs: int, p50: float, p99: float) -> dict:
    def pct(statistic: str, value: float) -> dict:
        return {
            "statistic": statistic,
            "kind": "exact",
            "value": value,
            "low": value,
            "high": value,
            "cells": 1,
            "window_ms": 300_000,
            "runs": runs,
            "interval": [value * 0.9, value * 1.1],
        }

    return {
        "runs": runs,
        "errors": 0,
        "error_rate": 0.0,
        "p50": pct("P50", p50),
        "p95": pct("P95", p50 * 1.2),
        "p99": pct("P99", p99),
    }


def test_the_png_notes_a_percentile_that_is_one_cold_start():
    """A P99 of 8 runs is the slowest run: with a 40x cold start it sets the bar, and the chart says so."""
    a, b = lone_side(8, 100.0, 4000.0), lone_side(500, 110.0, 150.0)
    change = {"slower": {"verdict": "slower"}, "faster": {"verdict": "faster"}}
    report = {
        "flow": "poem",
        "a": {"version": "v1"},
        "b": {"version": "v2"},
        "nodes": {},
        "whole_flow": {
            "a": a,
            "b": b,
            "change": {"p50": change["slower"], "p95": {"verdict": "within noise"}, "p99": change["faster"]},
        },
    }
    texts = chart_texts(report)
    assert "P99 of 8 runs is its slowest run alone (a cold start?)" in texts, texts
    assert texts.count("†") >= 2  # the mark on the bar and the note
    assert "slower*" in texts and "faster*" in texts


def test_an_earlier_end_excludes_the_data(cli, seeded):
    report = json.loads(
        cli("top", "--json", "--minutes", "2", "--end", str(seeded.seeded["now"] - 600_000)).stdout
    )
    assert report["flows"] == []


def test_significance_interval_rule():
    values = stats(V1)
    values.update({f"P{q}": V1[int(q / 100 * 50) - 1] for q in (10, 20, 30, 40, 60, 70, 75, 80, 90, 98)})
    assert quantile_from_ladder(values, 0.0) == 100.0 and quantile_from_ladder(values, 1.0) == 149.0
    cell = {"values": values, "time": 0, "dimensions": {}}
    low, high = interval([cell], "P50", accuracy=0.0075)
    assert low < values["P50"] < high
    # more runs, narrower interval
    many = dict(values, SampleCount=5000)
    low_many, high_many = interval([{"values": many}], "P50", accuracy=0.0075)
    assert high_many - low_many < high - low
    assert low_many == pytest.approx(values["P50"] * (1 - 0.0075), rel=0.01)


def test_a_range_shorter_than_the_fleet_period_still_reads_one_window(cli, seeded):
    report = json.loads(cli("top", "--json", "--minutes", "1", "--where", "version=v1").stdout)
    (poem,) = report["flows"]
    assert poem["runs"] == 53 and poem["p95"]["kind"] == "exact"
    window = report["percentile_range"]
    # from just before the start of the 300 s window holding the range's start (the query is left-open)
    assert window["period"] == 300 and window["start_ms"] % 300_000 == 299_999
    assert 0 < window["end_ms"] - window["start_ms"] <= 360_000 + 1
