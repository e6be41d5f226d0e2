"""Read back what was reported to CloudMonitor, through the real SDK, against CMS or the local emulator.

CMS splits reading into two APIs (public API models of cms 2019-01-01):

* ``DescribeCustomMetricList`` lists the *series* (metric name + group + dimension set) that exist. It has
  no time range and returns no values; ``Result`` is a JSON string ``{"all", "size", "page", "param",
  "list"}``. Use :func:`describe_custom_metric_list`.
* ``DescribeMetricList`` on namespace ``acs_customMetric_<account id>`` returns the *data points*
  (per Period, ``StartTime < t <= EndTime``); ``Datapoints`` is a JSON string list and paging is by
  ``NextToken``. Use :func:`describe_metric_list`.

Both treat a body ``Code`` other than ``"200"`` as an error even at HTTP 200, because the old SDK only
raises for non-2xx statuses (cms-api.md §1.2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aliyunsdkcms.request.v20190101.DescribeCustomMetricListRequest import DescribeCustomMetricListRequest
from aliyunsdkcms.request.v20190101.DescribeMetricListRequest import DescribeMetricListRequest
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import RpcRequest

CUSTOM_NAMESPACE_PREFIX = "acs_customMetric_"


class CmsQueryError(Exception):
    """CMS answered with a body ``Code`` other than ``"200"``."""

    def __init__(self, code: str, message: str, request_id: str | None) -> None:
        super().__init__(f"{code}: {message} (RequestId {request_id})")
        self.code = code
        self.message = message
        self.request_id = request_id


def dimension_query_string(dimensions: Mapping[str, str]) -> str:
    """CMS's query form of a dimension set: ``k1=v1&k2=v2`` with keys in ascending order."""
    return "&".join(f"{key}={dimensions[key]}" for key in sorted(dimensions))


def parse_dimension_string(text: str) -> dict[str, str]:
    """Inverse of :func:`dimension_query_string` (also accepts a JSON object string)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return {str(k): str(v) for k, v in json.loads(text).items()}
        except ValueError:
            text = text.strip("{}")
    pairs = (part.partition("=") for part in text.split("&") if part)
    return {key: value for key, _, value in pairs}


def _call(client: AcsClient, request: RpcRequest, endpoint: str | None) -> dict[str, Any]:
    if endpoint:
        request.set_endpoint(endpoint)
    if not endpoint or "://" not in endpoint:
        # A bare host name means real CMS: never send credentials over plain HTTP.
        request.set_protocol_type("https")
    body = json.loads(client.do_action_with_exception(request))
    code = str(body.get("Code", "200"))
    if code != "200" or body.get("Success") is False:
        raise CmsQueryError(code, str(body.get("Message", "")), body.get("RequestId"))
    return body


def describe_custom_metric_list(
    client: AcsClient,
    *,
    metric_name: str | None = None,
    dimension: Mapping[str, str] | str | None = None,
    group_id: str | None = "0",
    md5: str | None = None,
    page_size: int = 100,
    max_pages: int = 100,
    endpoint: str | None = None,
) -> list[dict[str, Any]]:
    """All series matching the filters, following pages.

    Each item: ``name``, ``group_id`` (str), ``dimensions`` (dict), ``md5`` and ``raw`` (the item as
    CMS sent it). ``dimension`` may be a dict (sent as ``k=v&...``, keys sorted) or CMS's string form,
    which also allows a bare key to match any value.
    """
    series: list[dict[str, Any]] = []
    for page in range(1, max_pages + 1):
        request = DescribeCustomMetricListRequest()
        if group_id is not None:
            request.set_GroupId(str(group_id))
        if metric_name:
            request.set_MetricName(metric_name)
        if dimension:
            request.set_Dimension(
                dimension if isinstance(dimension, str) else dimension_query_string(dimension)
            )
        if md5:
            request.set_Md5(md5)
        request.set_PageNumber(str(page))
        request.set_PageSize(str(page_size))
        result = json.loads(_call(client, request, endpoint).get("Result") or "{}")
        items = result.get("list") or []
        for item in items:
            series.append(
                {
                    "name": item.get("metricName"),
                    "group_id": str(item.get("groupId")),
                    "dimensions": parse_dimension_string(str(item.get("dimension") or "")),
                    "md5": item.get("md5"),
                    "raw": item,
                }
            )
        total = int(result.get("all") or 0)
        if not items or len(items) < page_size or len(series) >= total:
            break
    return series


def describe_metric_list(
    client: AcsClient,
    *,
    user_id: str,
    metric_name: str,
    dimensions: Mapping[str, str] | None = None,
    group_id: str | None = "0",
    period: int = 60,
    start_ms: int | None = None,
    end_ms: int | None = None,
    length: int = 1000,
    max_pages: int = 100,
    endpoint: str | None = None,
) -> list[dict[str, Any]]:
    """Data points of a custom metric (``StartTime < time <= EndTime``), following NextToken.

    Each item: ``name``, ``group_id``, ``dimensions`` (dict), ``period``, ``time`` (ms) and ``values``
    (the statistics, e.g. Sum/SampleCount/Average/Maximum/Minimum). ``user_id`` is the Alibaba Cloud
    account id: custom metrics live in namespace ``acs_customMetric_<user_id>``.
    """
    selector: dict[str, str] = {}
    if group_id is not None:
        selector["groupId"] = str(group_id)
    if dimensions is not None:
        selector["dimension"] = dimension_query_string(dimensions)
    points: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(max_pages):
        request = DescribeMetricListRequest()
        request.set_Namespace(CUSTOM_NAMESPACE_PREFIX + user_id)
        request.set_MetricName(metric_name)
        request.set_Period(str(period))
        request.set_Length(str(length))
        if selector:
            request.set_Dimensions(json.dumps([selector]))
        if start_ms is not None:
            request.set_StartTime(str(start_ms))
        if end_ms is not None:
            request.set_EndTime(str(end_ms))
        if token:
            request.set_NextToken(token)
        body = _call(client, request, endpoint)
        for raw in json.loads(body.get("Datapoints") or "[]"):
            point = dict(raw)
            meta = {key: point.pop(key, None) for key in ("timestamp", "groupId", "dimension", "userId")}
            points.append(
                {
                    "name": metric_name,
                    "group_id": str(meta["groupId"]),
                    "dimensions": parse_dimension_string(str(meta["dimension"] or "")),
                    "period": int(body.get("Period") or period),
                    "time": int(meta["timestamp"]),
                    "values": point,
                }
            )
        token = body.get("NextToken")
        if not token:
            break
    return points
