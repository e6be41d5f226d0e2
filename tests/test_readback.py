"""The one read-back rule (langflow_cms.ops.readback): counts summed, averages weighted, max/min taken,
percentiles from the fleet stream and never averaged."""

from __future__ import annotations

import pytest

from langflow_cms import contract
from langflow_cms.dev import emulator_client
from langflow_cms.ops.readback import (
    combine,
    count,
    fleet_percentile,
    format_table,
    latest_window,
    narrowest,
    percentiles,
    rows,
    upper_bound,
)

T0 = 1_795_625_700_000  # a 5-minute boundary


def pt(dims, values, time=T0, name=contract.FLOW_METRIC):
    return {"name": name, "group_id": "0", "dimensions": dims, "period": 60, "time": time, "values": values}


def stats(samples):
    """What an instance (or CMS over raw points) reports for these samples: nearest-rank percentiles."""
    ordered = sorted(samples)
    n = len(ordered)

    def rank(q):
        return ordered[min(n - 1, max(0, -(-q * n // 100) - 1))]

    return {
        "SampleCount": n,
        "Sum": sum(ordered),
        "Average": sum(ordered) / n,
        "Maximum": ordered[-1],
        "Minimum": ordered[0],
        **{f"P{q}": rank(q) for q in (10, 20, 30, 40, 50, 60, 70, 75, 80, 90, 95, 98, 99)},
    }


# A fast instance (90 runs at 10 ms) and a slow one (10 runs at 1000 ms): the fleet's P95 is 1000 ms.
FAST = [10.0] * 90
SLOW = [1000.0] * 10
A = pt({"flow": "poem", "instance": "a", "status": "ok"}, stats(FAST))
B = pt({"flow": "poem", "instance": "b", "status": "ok"}, stats(SLOW))
FLEET = pt({"flow": "poem", "status": "ok"}, stats(FAST + SLOW), name=contract.FLEET_FLOW_METRIC)


def test_averaging_p95s_would_be_wrong_and_the_rule_is_not():
    truth = stats(FAST + SLOW)["P95"]
    assert truth == 1000.0
    weighted_mean_of_p95 = (A["values"]["P95"] * 90 + B["values"]["P95"] * 10) / 100
    assert weighted_mean_of_p95 == pytest.approx(109.0)  # what readback.py used to print: 9x too low

    exact = fleet_percentile([FLEET], "P95")
    assert (exact.kind, exact.value, exact.runs, exact.window_ms) == ("exact", truth, 100, T0)
    bound = upper_bound([A, B], "P95")
    assert bound.kind == "upper_bound" and bound.value is None and bound.high >= truth
    assert bound.label() == "<=1000.0"
    assert percentiles([FLEET], [A, B])["P95"] == exact  # the fleet stream wins when it is there
    assert percentiles([], [A, B])["P95"] == bound


def test_upper_bound_is_the_max_because_a_mean_can_also_be_too_high():
    # Two instances with 100 runs each: a's P95 is 100 (6 runs at 100, rest 1), b's P95 is 1 (all 1 ms).
    a = [1.0] * 94 + [100.0] * 6
    b = [1.0] * 100
    truth = stats(a + b)["P95"]
    assert truth == 1.0  # 6 slow runs out of 200 are under 5 %
    mean = (stats(a)["P95"] + stats(b)["P95"]) / 2
    assert mean == 50.5  # averaging overstates it 50x
    bound = upper_bound([pt({"instance": "a"}, stats(a)), pt({"instance": "b"}, stats(b))], "P95")
    assert bound.low <= truth <= bound.high


def test_counts_and_sums_summed_averages_weighted_max_min_taken():
    out = combine([A, B])
    assert out["SampleCount"] == 100 and out["Sum"] == 90 * 10 + 10 * 1000
    assert out["Average"] == pytest.approx(109.0)  # weighted, not (10 + 1000) / 2
    assert (out["Maximum"], out["Minimum"]) == (1000.0, 10.0)
    assert not any(key.startswith("P") for key in out)  # percentiles are never combined here
    assert count([A, B]) == 100
    assert combine([]) == {}


def test_last_value_from_the_latest_point():
    older = pt({}, {"LastValue": 1, "SampleCount": 1}, time=T0)
    newer = pt({}, {"LastValue": 7, "SampleCount": 1}, time=T0 + 60_000)
    assert combine([newer, older])["LastValue"] == 7


def test_several_fleet_windows_give_bounds_not_a_value():
    first = pt({"flow": "poem"}, stats([10.0] * 100), name=contract.FLEET_FLOW_METRIC)
    second = pt({"flow": "poem"}, stats([30.0] * 100), time=T0 + 300_000, name=contract.FLEET_FLOW_METRIC)
    both = fleet_percentile([first, second], "P95")
    assert (both.kind, both.value, both.low, both.high, both.cells) == ("bounds", None, 10.0, 30.0, 2)
    assert both.label() == "10.0..30.0"
    # the true P95 of the union (30 ms) lies in the bounds; the average (20 ms) would be wrong
    assert both.low <= stats([10.0] * 100 + [30.0] * 100)["P95"] <= both.high
    latest = fleet_percentile(latest_window([first, second]), "P95")
    assert (latest.kind, latest.value, latest.window_ms) == ("exact", 30.0, T0 + 300_000)


def test_missing_statistics_and_empty_windows():
    empty = pt({}, {"SampleCount": 0, "P95": 5.0})
    assert fleet_percentile([empty], "P95").kind == "none"
    assert fleet_percentile([pt({}, {"SampleCount": 3})], "P95").label() == "-"


def test_rows_exact_runs_and_errors_fleet_percentiles():
    error = pt({"flow": "poem", "instance": "a", "status": "error"}, stats([5.0] * 3))
    other = pt({"flow": "other", "instance": "a", "status": "ok"}, stats([7.0] * 4))
    other_b = pt({"flow": "other", "instance": "b", "status": "ok"}, stats([9.0] * 2))
    table = rows([A, B, error, other, other_b], ["flow"], [FLEET])
    assert [(r.dimensions, r.count, r.errors) for r in table] == [
        ({"flow": "other"}, 6, 0),
        ({"flow": "poem"}, 103, 3),
    ]
    poem = table[1]
    assert poem.p95.kind == "exact" and poem.p95.value == 1000.0
    assert table[0].p95.kind == "upper_bound"  # no fleet stream for "other"
    text = format_table(table, ["flow"])
    assert "1000.0" in text and "<=9.0" in text and "103" in text


def test_a_single_instance_window_is_exact():
    only = upper_bound([A], "P95")
    assert (only.kind, only.value) == ("exact", 10.0)


def test_fleet_percentiles_read_from_the_emulator(emulator):
    """Raw points through the real SDK; CMS (the emulator) computes the percentiles, errors are left out."""
    import json
    import time

    from aliyunsdkcms.request.v20190101.PutCustomMetricRequest import PutCustomMetricRequest

    from langflow_cms.ops.query import Reader
    from langflow_cms.ops.readback import fleet_percentiles

    client = emulator_client()
    now = int(time.time() * 1000)
    window = now - now % 300_000
    samples = [("ok", 10.0 * (i + 1)) for i in range(20)] + [("error", 5000.0)] * 5
    entries = [
        {
            "GroupId": "0",
            "MetricName": contract.FLEET_FLOW_METRIC,
            "Dimensions": json.dumps({"flow": "poem", "status": status, "env": "dev"}),
            "Time": str(min(window + i, now)),
            "Type": "0",
            "Values": json.dumps({"value": value}),
        }
        for i, (status, value) in enumerate(samples)
    ]
    for i in range(0, len(entries), 20):
        request = PutCustomMetricRequest()
        request.set_endpoint(emulator.endpoint)
        request.set_MetricLists(entries[i : i + 20])
        client.do_action_with_exception(request)
    reader = Reader(client, emulator.endpoint, emulator.user_id)
    # runs inside a range whose start falls in the middle of a 300 s window (stamped with its start)
    earlier = window - 300_000
    edge = [
        dict(e, Time=str(earlier + 150_000), Dimensions=json.dumps({"flow": "edge"})) for e in entries[:20]
    ]
    request = PutCustomMetricRequest()
    request.set_endpoint(emulator.endpoint)
    request.set_MetricLists(edge)
    client.do_action_with_exception(request)
    assert fleet_percentiles(reader, {"flow": "edge"}, earlier + 120_000, now)["P95"].runs == 20

    found = fleet_percentiles(reader, {"flow": "poem"}, now - 60_000, now)
    assert found["P95"].kind == "exact" and found["P95"].runs == 20
    assert 180.0 <= found["P95"].value <= 200.0  # the error runs (5000 ms) are not in it
    assert fleet_percentiles(reader, {"flow": "other"}, now - 60_000, now)["P95"].kind == "none"


def test_one_fleet_series_per_cell_when_a_flow_sends_its_runs_twice():
    """#25: a flow with dimensions sends each run on {flow, status} (alarms) and with its dimensions; a
    whole-flow row reads the first (one exact cell), a per-version row the second."""
    exact = pt({"flow": "poem", "status": "ok", "env": "dev"}, {"P95": 10.0})
    v1 = pt({"flow": "poem", "status": "ok", "env": "dev", "version": "v1"}, {"P95": 8.0})
    v2 = pt({"flow": "poem", "status": "ok", "env": "dev", "version": "v2"}, {"P95": 12.0})
    plain = pt({"flow": "haiku", "status": "ok"}, {"P95": 5.0})  # no dimensions: one series only
    points = [exact, v1, v2, plain]
    assert narrowest(points, ["flow"]) == [exact, plain]
    assert narrowest(points, ["flow", "version"]) == [v1, v2, plain]
    assert fleet_percentile(narrowest(points, ["flow"])[:1], "P95").kind == "exact"
