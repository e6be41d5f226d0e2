"""query.py reading back through the real SDK from the emulator: series listing and data points."""

from __future__ import annotations

import json
import time

import pytest
from aliyunsdkcms.request.v20190101.PutCustomMetricRequest import PutCustomMetricRequest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient

from langflow_cms.dev import emulator_client
from langflow_cms.emulator import Emulator
from langflow_cms.ops.query import (
    USER_ID_VARIABLE,
    RateLimiter,
    account_id,
    describe_custom_metric_list,
    describe_metric_list,
    dimension_query_string,
    parse_dimension_string,
    sts_endpoint,
)

T0 = 1_795_625_520_000  # a minute boundary


@pytest.fixture(scope="module")
def client() -> AcsClient:
    return emulator_client()


@pytest.fixture
def emu():
    with Emulator() as emulator:
        yield emulator


def report(client, emu, *items):
    request = PutCustomMetricRequest()
    request.set_endpoint(emu.endpoint)
    request.set_MetricLists(list(items))
    assert json.loads(client.do_action_with_exception(request))["Code"] == "200"


def point(name, dims, time_ms, value=None, period=None, group="0", **stats):
    item = {"GroupId": group, "MetricName": name, "Dimensions": json.dumps(dims), "Time": str(time_ms)}
    if period is None:
        return {**item, "Type": "0", "Values": json.dumps({"value": value})}
    return {**item, "Type": "1", "Period": str(period), "Values": json.dumps(stats)}


def test_dimension_string_round_trip():
    dims = {"status": "ok", "flow": "summarize"}
    assert dimension_query_string(dims) == "flow=summarize&status=ok"
    assert parse_dimension_string("flow=summarize&status=ok") == dims
    assert parse_dimension_string('{"flow":"summarize"}') == {"flow": "summarize"}


def test_series_listing_follows_pages_and_filters(client, emu):
    report(
        client,
        emu,
        *[point("runs", {"flow": f"f{i}", "status": "ok"}, T0, period=60, Sum=i) for i in range(5)],
        point("latency", {"flow": "f0"}, T0, value=3.0),
        point("runs", {"flow": "f0", "status": "ok"}, T0 + 60_000, period=60, Sum=9),  # same series again
        point("runs", {"flow": "g"}, T0, period=60, group="42", Sum=1),
    )
    everything = describe_custom_metric_list(client, group_id=None, page_size=2, endpoint=emu.endpoint)
    assert len(everything) == 7
    assert len([r for r in emu.requests() if r["action"] == "DescribeCustomMetricList"]) == 4

    runs = describe_custom_metric_list(client, metric_name="runs", page_size=2, endpoint=emu.endpoint)
    assert sorted(s["dimensions"]["flow"] for s in runs) == ["f0", "f1", "f2", "f3", "f4"]
    assert all(s["group_id"] == "0" and len(s["md5"]) == 32 for s in runs)

    exact = describe_custom_metric_list(
        client, metric_name="runs", dimension={"status": "ok", "flow": "f3"}, endpoint=emu.endpoint
    )
    assert [s["dimensions"] for s in exact] == [{"flow": "f3", "status": "ok"}]
    by_key = describe_custom_metric_list(client, dimension="flow", group_id="42", endpoint=emu.endpoint)
    assert [(s["name"], s["group_id"]) for s in by_key] == [("runs", "42")]
    by_md5 = describe_custom_metric_list(client, md5=exact[0]["md5"], endpoint=emu.endpoint)
    assert by_md5 == exact


def test_data_points_by_period_time_range_and_dimension(client, emu):
    dims = {"flow": "summarize", "status": "ok"}
    report(
        client,
        emu,
        point("runs", dims, T0, period=60, Sum=3, SampleCount=3),
        point("runs", dims, T0 + 60_000, period=60, Sum=4, SampleCount=4),
        point("runs", dims, T0, period=300, Sum=7, SampleCount=7),
        point("runs", {"flow": "other"}, T0, period=60, Sum=100, SampleCount=100),
    )
    common = {"user_id": emu.user_id, "metric_name": "runs", "endpoint": emu.endpoint}
    minute = describe_metric_list(client, dimensions=dims, start_ms=T0 - 1, end_ms=T0 + 60_000, **common)
    assert [(p["time"], p["period"], p["values"]) for p in minute] == [
        (T0, 60, {"Sum": 3, "SampleCount": 3}),
        (T0 + 60_000, 60, {"Sum": 4, "SampleCount": 4}),
    ]
    assert minute[0]["dimensions"] == dims and minute[0]["name"] == "runs" and minute[0]["group_id"] == "0"

    # StartTime is exclusive, EndTime inclusive
    only_second = describe_metric_list(client, dimensions=dims, start_ms=T0, end_ms=T0 + 60_000, **common)
    assert [p["time"] for p in only_second] == [T0 + 60_000]

    five = describe_metric_list(client, dimensions=dims, period=300, start_ms=T0 - 1, end_ms=T0, **common)
    assert [p["values"]["Sum"] for p in five] == [7]

    paged = describe_metric_list(client, start_ms=T0 - 1, end_ms=T0 + 60_000, length=1, **common)
    assert sorted(p["values"]["Sum"] for p in paged) == [3, 4, 100]

    other_account = describe_metric_list(client, **{**common, "user_id": "999"}, start_ms=T0 - 1, end_ms=T0)
    assert other_account == []


def test_raw_points_are_aggregated_per_period(client, emu):
    dims = {"flow": "summarize"}
    report(
        client,
        emu,
        point("latency", dims, T0 + 1_000, value=10.0),
        point("latency", dims, T0 + 2_000, value=30.0),
        point("latency", dims, T0 + 61_000, value=5.0),
    )
    points = describe_metric_list(
        client,
        user_id=emu.user_id,
        metric_name="latency",
        dimensions=dims,
        start_ms=T0,
        end_ms=T0 + 120_000,
        endpoint=emu.endpoint,
    )
    basic = ("Average", "Maximum", "Minimum", "Sum", "SampleCount")
    assert [(p["time"], {k: p["values"][k] for k in basic}) for p in points] == [
        (T0, {"Average": 20.0, "Maximum": 30.0, "Minimum": 10.0, "Sum": 40.0, "SampleCount": 2}),
        (T0 + 60_000, {"Average": 5.0, "Maximum": 5.0, "Minimum": 5.0, "Sum": 5.0, "SampleCount": 1}),
    ]
    # CMS computes the percentiles of raw data itself: the fleet stream relies on it
    assert all(key in points[0]["values"] for key in ("P10", "P50", "P95", "P99"))


def test_many_series_are_read_fifty_selectors_per_request(client, emu):
    dims = [{"flow": f"f{i:02d}", "status": "ok"} for i in range(60)]
    report(client, emu, *[point("runs", d, T0, period=60, Sum=1, SampleCount=1) for d in dims[:20]])
    report(client, emu, *[point("runs", d, T0, period=60, Sum=1, SampleCount=1) for d in dims[20:40]])
    report(client, emu, *[point("runs", d, T0, period=60, Sum=1, SampleCount=1) for d in dims[40:]])
    before = len(emu.requests("DescribeMetricList"))
    points = describe_metric_list(
        client,
        user_id=emu.user_id,
        metric_name="runs",
        dimensions=dims,
        start_ms=T0 - 1,
        end_ms=T0,
        endpoint=emu.endpoint,
    )
    assert sorted(p["dimensions"]["flow"] for p in points) == [d["flow"] for d in dims]
    assert len(emu.requests("DescribeMetricList")) - before == 2
    nothing = describe_metric_list(
        client, user_id=emu.user_id, metric_name="runs", dimensions=[], endpoint=emu.endpoint
    )
    assert nothing == [] and len(emu.requests("DescribeMetricList")) - before == 2


def test_throttled_reads_are_retried_and_paced(client, emu):
    report(client, emu, point("runs", {"flow": "f"}, T0, period=60, Sum=1, SampleCount=1))
    emu.set_faults(script=["Throttling.User", "Throttling", "ok"], actions=["DescribeMetricList"])
    limiter = RateLimiter(20)
    started = time.monotonic()
    points = describe_metric_list(
        client,
        user_id=emu.user_id,
        metric_name="runs",
        start_ms=T0 - 1,
        end_ms=T0,
        endpoint=emu.endpoint,
        limiter=limiter,
    )
    assert [p["values"]["Sum"] for p in points] == [1]
    codes = [r["code"] for r in emu.requests("DescribeMetricList")]
    assert codes == ["Throttling.User", "Throttling", "200"]
    assert time.monotonic() - started >= 2 * limiter.interval


def test_errors_other_than_throttling_are_not_retried(client, emu):
    emu.set_faults(script=["InternalError"], actions=["DescribeMetricList"])
    with pytest.raises(ServerException):
        describe_metric_list(client, user_id=emu.user_id, metric_name="runs", endpoint=emu.endpoint)
    assert len(emu.requests("DescribeMetricList")) == 1


def test_rate_limiter_spaces_calls():
    limiter = RateLimiter(50)
    started = time.monotonic()
    for _ in range(6):
        limiter.wait()
    assert time.monotonic() - started >= 5 * 0.02 * 0.9
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_account_id_from_the_environment_first(client):
    assert account_id(client, sts_endpoint="http://127.0.0.1:9", environ={USER_ID_VARIABLE: "1234"}) == "1234"
    with pytest.raises(ValueError, match=USER_ID_VARIABLE):
        account_id(client, sts_endpoint="http://127.0.0.1:9", environ={USER_ID_VARIABLE: "abc"})
    assert sts_endpoint("http://127.0.0.1:8765", "cn-shanghai", loopback=True) == "http://127.0.0.1:8765"
    assert (
        sts_endpoint("https://metrics.cn-shanghai.aliyuncs.com", "cn-shanghai", loopback=False)
        == "https://sts.cn-shanghai.aliyuncs.com"
    )
