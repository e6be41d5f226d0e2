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

Reading is rate limited: every Describe* call of an account shares one quota (50 calls per second,
cms-api.md §6.2) with dashboards and other tools. Pass a :class:`RateLimiter` (``Reader`` always has one,
10 calls per second by default) and every call waits for its turn; ``Throttling*`` answers are retried with
jittered exponential backoff (tenacity) for up to ``THROTTLE_RETRY_S`` seconds.

:func:`account_id` finds the account uid of the namespace: ``LANGFLOW_CMS_USER_ID``, else STS
``GetCallerIdentity`` signed with the same credentials. :func:`open_reader` builds a :class:`Reader` from
the environment the same way the reporter does (``Config.from_env``, ``credential_provider``,
``make_acs_client``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aliyunsdkcms.request.v20190101.DescribeCustomEventAttributeRequest import (
    DescribeCustomEventAttributeRequest,
)
from aliyunsdkcms.request.v20190101.DescribeCustomMetricListRequest import DescribeCustomMetricListRequest
from aliyunsdkcms.request.v20190101.DescribeMetricListRequest import DescribeMetricListRequest
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest

from langflow_cms.contract import CUSTOM_NAMESPACE_PREFIX
from langflow_cms.delivery.transport import CmsError, RateLimiter
from langflow_cms.delivery.transport import read_json as _call

USER_ID_VARIABLE = "LANGFLOW_CMS_USER_ID"
"""The account uid of ``acs_customMetric_<uid>``; when unset it is asked from STS GetCallerIdentity."""
DEFAULT_READ_QPS = 10.0
"""Describe* calls per second from one reader: a fifth of the account's shared 50 per second."""
MAX_SELECTORS = 50
"""DescribeMetricList answers at most 50 dimension selectors ("instances") per request."""
STS_VERSION = "2015-04-01"


CmsQueryError = CmsError
"""The readers' former name of the one CMS error (delivery/transport.py); ``code``, ``message``,
``request_id``."""


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


def describe_custom_events(
    client: AcsClient,
    *,
    name: str,
    endpoint: str | None = None,
    start_ms: int | None = None,
    page_size: int = 50,
    limiter: RateLimiter | None = None,
) -> list[dict[str, Any]]:
    """Custom events called ``name`` (``DescribeCustomEventAttribute``), each with ``content`` parsed from
    its JSON when it is JSON (our events are), newest first as CMS returns them."""
    request = DescribeCustomEventAttributeRequest()
    request.set_Name(name)
    request.set_PageSize(str(page_size))
    if start_ms is not None:
        request.set_StartTime(str(start_ms))
    body = _call(client, request, endpoint, limiter)
    items = (body.get("CustomEvents") or {}).get("CustomEvent") or []
    events = []
    for item in items:
        try:
            content = json.loads(item.get("Content") or "{}")
        except ValueError:
            content = {"text": item.get("Content")}
        events.append(
            {"id": item.get("Id"), "name": item.get("Name"), "time": item.get("Time"), "content": content}
        )
    return events


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
    limiter: RateLimiter | None = None,
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
        result = json.loads(_call(client, request, endpoint, limiter).get("Result") or "{}")
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
    dimensions: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
    group_id: str | None = "0",
    period: int = 60,
    start_ms: int | None = None,
    end_ms: int | None = None,
    length: int = 1000,
    max_pages: int = 100,
    endpoint: str | None = None,
    limiter: RateLimiter | None = None,
) -> list[dict[str, Any]]:
    """Data points of a custom metric (``StartTime < time <= EndTime``), following NextToken.

    Each item: ``name``, ``group_id``, ``dimensions`` (dict), ``period``, ``time`` (ms) and ``values``
    (the statistics, e.g. Sum/SampleCount/Average/Maximum/Minimum, and P10..P99 where CMS has them).
    ``user_id`` is the Alibaba Cloud account id: custom metrics live in namespace
    ``acs_customMetric_<user_id>``. ``dimensions`` is one exact dimension set or a list of them; a list is
    sent ``MAX_SELECTORS`` at a time (one request per batch), an empty list reads nothing.
    """
    if dimensions is None or isinstance(dimensions, Mapping):
        batches: list[list[Mapping[str, str] | None]] = [[dimensions]]
    else:
        wanted = list(dimensions)
        batches = [wanted[i : i + MAX_SELECTORS] for i in range(0, len(wanted), MAX_SELECTORS)]
    points: list[dict[str, Any]] = []
    for batch in batches:
        selectors: list[dict[str, str]] = []
        for dims in batch:
            selector: dict[str, str] = {}
            if group_id is not None:
                selector["groupId"] = str(group_id)
            if dims is not None:
                selector["dimension"] = dimension_query_string(dims)
            if selector:
                selectors.append(selector)
        points += _metric_pages(
            client,
            user_id,
            metric_name,
            selectors,
            period,
            start_ms,
            end_ms,
            length,
            max_pages,
            endpoint,
            limiter,
        )
    return points


def _metric_pages(
    client: AcsClient,
    user_id: str,
    metric_name: str,
    selectors: list[dict[str, str]],
    period: int,
    start_ms: int | None,
    end_ms: int | None,
    length: int,
    max_pages: int,
    endpoint: str | None,
    limiter: RateLimiter | None,
) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(max_pages):
        request = DescribeMetricListRequest()
        request.set_Namespace(CUSTOM_NAMESPACE_PREFIX + user_id)
        request.set_MetricName(metric_name)
        request.set_Period(str(period))
        request.set_Length(str(length))
        if selectors:
            request.set_Dimensions(json.dumps(selectors))
        if start_ms is not None:
            request.set_StartTime(str(start_ms))
        if end_ms is not None:
            request.set_EndTime(str(end_ms))
        if token:
            request.set_NextToken(token)
        body = _call(client, request, endpoint, limiter)
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


def sts_endpoint(cms_endpoint: str, region: str, *, loopback: bool) -> str:
    """Where GetCallerIdentity goes: the configured endpoint when it is the loopback emulator, else
    ``https://sts.<region>.aliyuncs.com``."""
    return cms_endpoint if loopback else f"https://sts.{region}.aliyuncs.com"


def caller_identity(client: AcsClient, endpoint: str, limiter: RateLimiter | None = None) -> dict[str, Any]:
    """STS ``GetCallerIdentity`` (2015-04-01), signed like every other call: ``AccountId``, ``UserId``,
    ``Arn``, ``IdentityType``. ``endpoint`` as from :func:`sts_endpoint`."""
    request = CommonRequest(version=STS_VERSION, action_name="GetCallerIdentity", product="Sts")
    request.set_method("POST")
    request.set_accept_format("JSON")
    request.set_domain(endpoint)
    request.trans_to_acs_request()
    return _call(client, request, endpoint, limiter)


def account_id(
    client: AcsClient,
    *,
    sts_endpoint: str,
    environ: Mapping[str, str] | None = None,
    limiter: RateLimiter | None = None,
) -> str:
    """The account uid of ``acs_customMetric_<uid>``: ``LANGFLOW_CMS_USER_ID``, else STS GetCallerIdentity."""
    environ = os.environ if environ is None else environ
    configured = environ.get(USER_ID_VARIABLE, "").strip()
    if configured:
        if not configured.isdigit():
            raise ValueError(
                f"{USER_ID_VARIABLE}={configured!r} is invalid: accepted: digits (an account uid)"
            )
        return configured
    found = str(caller_identity(client, sts_endpoint, limiter).get("AccountId") or "")
    if not found:
        raise CmsError("NoAccountId", "GetCallerIdentity answered without an AccountId")
    return found


@dataclass
class Reader:
    """Everything a read needs: a signing client, the endpoint, the account uid, one shared rate limiter."""

    client: AcsClient
    endpoint: str | None
    user_id: str
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(DEFAULT_READ_QPS))
    group_id: str | None = "0"

    def series(self, metric_name: str, **filters: Any) -> list[dict[str, Any]]:
        """DescribeCustomMetricList for one metric (see :func:`describe_custom_metric_list`)."""
        filters.setdefault("group_id", self.group_id)
        return describe_custom_metric_list(
            self.client, metric_name=metric_name, endpoint=self.endpoint, limiter=self.limiter, **filters
        )

    def points(
        self,
        metric_name: str,
        dimensions: Mapping[str, str] | Sequence[Mapping[str, str]] | None,
        *,
        period: int,
        start_ms: int,
        end_ms: int,
    ) -> list[dict[str, Any]]:
        """DescribeMetricList for one metric (see :func:`describe_metric_list`)."""
        return describe_metric_list(
            self.client,
            user_id=self.user_id,
            metric_name=metric_name,
            dimensions=dimensions,
            group_id=self.group_id,
            period=period,
            start_ms=start_ms,
            end_ms=end_ms,
            endpoint=self.endpoint,
            limiter=self.limiter,
        )


def open_reader(environ: Mapping[str, str] | None = None, *, qps: float = DEFAULT_READ_QPS) -> Reader:
    """A :class:`Reader` configured like the reporter: same endpoint, region, group and credential chain.

    Raises ``ConfigError``/``CredentialError`` for a bad setup, ``CmsError``/SDK exceptions when the
    account id cannot be found.
    """
    from langflow_cms.config import Config
    from langflow_cms.credentials import credential_provider, make_acs_client, proxies_for

    environ = os.environ if environ is None else environ
    config = Config.from_env(environ)
    provider = credential_provider(dev=config.dev, environ=environ)
    sts = sts_endpoint(config.endpoint, config.region, loopback=config.is_loopback)
    client = make_acs_client(
        provider,
        region=config.region,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        proxy=proxies_for(config.endpoint, environ),
    )
    limiter = RateLimiter(qps)
    uid = account_id(client, sts_endpoint=sts, environ=environ, limiter=limiter)
    return Reader(client, config.endpoint, uid, limiter, config.group_id)
