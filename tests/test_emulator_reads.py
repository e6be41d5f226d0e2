"""The emulator's read side through the real SDK request classes over real HTTP: DescribeCustomMetricList's
``param.metric``, DescribeMetricList's documented limits, and the statistics CMS computes from raw points.
"""

from __future__ import annotations

import json
import math

import pytest
from aliyunsdkcms.request.v20190101.DescribeCustomMetricListRequest import DescribeCustomMetricListRequest
from aliyunsdkcms.request.v20190101.DescribeMetricListRequest import DescribeMetricListRequest
from aliyunsdkcms.request.v20190101.PutCustomMetricRequest import PutCustomMetricRequest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient

from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET
from langflow_cms.emulator import Emulator

NO_PROXY = {"http": None, "https": None}
T0 = 1_795_625_400_000  # divisible by 300 000 ms: the start of a 5-minute window
DIMS = {"flow": "summarize"}


@pytest.fixture(scope="module")
def emu():
    with Emulator(port=0, user_id="1234567890") as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _fresh(emu):
    emu.reset()


@pytest.fixture
def client() -> AcsClient:
    return AcsClient(
        DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, "cn-hangzhou", auto_retry=False, proxy=NO_PROXY
    )


def call(client, emu, request) -> dict:
    request.set_endpoint(emu.endpoint)
    return json.loads(client.do_action_with_exception(request))


def raw(time_ms: int, value: float, dims=DIMS, name="latency") -> dict:
    return {
        "GroupId": "0",
        "MetricName": name,
        "Dimensions": json.dumps(dims),
        "Type": "0",
        "Values": json.dumps({"value": value}),
        "Time": str(time_ms),
    }


def put(client, emu, entries) -> None:
    for start in range(0, len(entries), 21):
        request = PutCustomMetricRequest()
        request.set_MetricLists(entries[start : start + 21])
        assert call(client, emu, request)["Code"] == "200"


def metric_list(client, emu, name="latency", **params) -> dict:
    request = DescribeMetricListRequest()
    request.set_Namespace(emu.namespace)
    request.set_MetricName(name)
    request.set_Dimensions(json.dumps([{"groupId": "0", "dimension": "flow=summarize"}]))
    for key, value in {
        "Period": "60",
        "StartTime": str(T0 - 1),
        "EndTime": str(T0 + 600_000),
        **params,
    }.items():
        request.add_query_param(key, value)
    return call(client, emu, request)


def points(client, emu, **params) -> list[dict]:
    return json.loads(metric_list(client, emu, **params)["Datapoints"])


def rejected(client, emu, **params) -> ServerException:
    with pytest.raises(ServerException) as info:
        metric_list(client, emu, **params)
    return info.value


# --- DescribeCustomMetricList -------------------------------------------------------------------------


def test_custom_metric_list_param_metric_is_a_json_string_naming_the_project(client, emu):
    # cms-api.md §6.1: Result.param.metric is a JSON *string* with metricName, groupId,
    # project (acs_customMetric_<uid>), dimension and status.
    put(client, emu, [raw(T0, 1.0)])
    request = DescribeCustomMetricListRequest()
    request.set_MetricName("latency")
    request.set_Dimension("{flow=summarize}")
    body = call(client, emu, request)
    result = json.loads(body["Result"])
    metric = json.loads(result["param"]["metric"])
    assert metric == {
        "metricName": "latency",
        "groupId": 0,
        "project": "acs_customMetric_1234567890",
        "dimension": "flow=summarize",
        "status": 1,
    }
    assert [item["dimension"] for item in result["list"]] == ["flow=summarize"]


# --- DescribeMetricList limits ------------------------------------------------------------------------


@pytest.mark.parametrize("period", ["15", "120", "900", "3600"])
def test_query_period_other_than_60_or_300_is_invalid(client, emu, period):
    # Custom metrics exist at 60 s and 300 s only (cms-api.md §1.1 Period, §6.1 raw aggregation).
    error = rejected(client, emu, Period=period)
    assert (error.get_error_code(), error.get_http_status()) == ("InvalidParameter", 400)


def test_query_length_is_at_most_1440(client, emu):
    # DescribeMetricList: Length ≤ 1440 (cms-api.md §6.2).
    assert metric_list(client, emu, Length="1440")["Code"] == "200"
    assert rejected(client, emu, Length="1441").get_error_code() == "InvalidParameter"


def test_query_range_is_at_most_31_days(client, emu):
    # DescribeMetricList: the time range is at most 31 days (cms-api.md §6.2).
    day = 24 * 3600 * 1000
    assert metric_list(client, emu, StartTime=str(T0), EndTime=str(T0 + 31 * day))["Code"] == "200"
    error = rejected(client, emu, StartTime=str(T0), EndTime=str(T0 + 31 * day + 1))
    assert error.get_error_code() == "InvalidParameter"


# --- statistics of raw points -------------------------------------------------------------------------


def test_raw_points_get_every_documented_statistic(client, emu):
    # cms-api.md §6.1: CMS computes Average, Maximum, Minimum, Sum, SampleCount, SumPerSecond,
    # CountPerSecond, LastValue and P10..P99 from raw data, at 60 s and 300 s.
    values = [float(v) for v in range(1, 101)]  # 1..100, sent out of time order below
    entries = [raw(T0 + 100 + i * 100, v) for i, v in enumerate(values)]
    entries.reverse()
    put(client, emu, entries)
    (point,) = points(client, emu)
    assert point["timestamp"] == T0 and point["groupId"] == "0" and point["dimension"] == "flow=summarize"
    expected = {
        "Average": 50.5,
        "Maximum": 100.0,
        "Minimum": 1.0,
        "Sum": 5050.0,
        "SampleCount": 100,
        "SumPerSecond": 5050.0 / 60,
        "CountPerSecond": 100 / 60,
        "LastValue": 100.0,  # the latest *time*, although it arrived first
        # nearest rank over 1..100: P<n> = n (CMS's method is undocumented; nearest-rank is our guess)
        **{f"P{n}": float(n) for n in (10, 20, 30, 40, 50, 60, 70, 75, 80, 90, 95, 98, 99)},
    }
    assert set(point) - {"timestamp", "userId", "groupId", "dimension"} == set(expected)
    for key, value in expected.items():
        assert math.isclose(point[key], value), key


def test_nearest_rank_percentiles_on_a_small_window(client, emu):
    # Nearest rank: the value at ceil(p/100 * n) in sorted order (our documented guess).
    put(client, emu, [raw(T0 + 1_000 * i, v) for i, v in enumerate([40.0, 10.0, 30.0, 20.0])])
    (point,) = points(client, emu)
    assert (point["P10"], point["P50"], point["P75"], point["P80"], point["P99"]) == (10, 20, 30, 40, 40)
    assert point["LastValue"] == 20.0 and point["SampleCount"] == 4


def test_raw_windows_align_to_the_period_at_60_and_300(client, emu):
    # Windows start at t - t % period and are reported with timestamp = window start (cms-api.md §6.1).
    put(client, emu, [raw(T0 + 59_999, 1.0), raw(T0 + 60_000, 2.0), raw(T0 + 299_999, 4.0)])
    minute = points(client, emu)
    assert [(p["timestamp"], p["Sum"], p["SampleCount"]) for p in minute] == [
        (T0, 1.0, 1),
        (T0 + 60_000, 2.0, 1),
        (T0 + 240_000, 4.0, 1),
    ]
    (five,) = points(client, emu, Period="300")
    assert (five["timestamp"], five["Sum"], five["SampleCount"], five["LastValue"]) == (T0, 7.0, 3, 4.0)
    assert math.isclose(five["SumPerSecond"], 7 / 300) and math.isclose(five["CountPerSecond"], 3 / 300)
