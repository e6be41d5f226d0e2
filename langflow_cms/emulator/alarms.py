"""Alarm rules: PutCustomMetricRule, PutCustomEventRule, DescribeMetricRuleList, DeleteMetricRules,
EnableMetricRules and DisableMetricRules.

Request parameters are the installed SDK request classes'; which are required, their value sets and the
``RuleId`` upsert come from the Tea model docstrings and the API pages (cms-api.md §6.3). The
DescribeMetricRuleList response follows its Tea model: ``Code`` (an *int*), ``Message``, ``Success``,
``Total`` (a *string*) and ``Alarms.Alarm[]`` with RuleId, RuleName, Namespace, MetricName, GroupId,
Resources, Dimensions, Period, Escalations.{Critical|Warn|Info}.{Statistics, ComparisonOperator,
Threshold, Times}, ContactGroups, EffectiveInterval, EnableState, AlertState, SilenceTime, MailSubject,
Webhook, SourceType, GmtCreate, GmtUpdate.

Guessed, not documented: how a PutCustomMetricRule maps onto that item (the escalation named after
``Level``; ``>=`` shown as ``GreaterThanOrEqualToThreshold`` etc., ``=`` as ``EqualToThreshold``, which the
documented list lacks); ``AlertState`` (always ``INSUFFICIENT_DATA``: the emulator evaluates nothing); a
missing ``Period`` shown as 60; that PutCustomEventRule rules share the RuleId space and are listed and
deleted with the metric-rule actions (SourceType ``EVENT``, MetricName = the event name, no Namespace;
the SDK has no DescribeCustomEventRule/DeleteCustomEventRule); and that unknown ids answer HTTP 404
``Code "404"``. Strict mode (inferred) also rejects contact groups that do not exist, a Resources value
that is not a JSON array of objects, and a Webhook that is not an http(s) URL.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from . import params as p
from .contacts import not_found
from .errors import invalid_parameter, missing_parameter
from .limits import (
    ALARM_LEVELS,
    COMPARISON_OPERATORS,
    DEFAULT_EVENT_RULE_PERIOD_S,
    DEFAULT_SILENCE_TIME_S,
    MAX_DELETE_RULE_IDS,
    MAX_QUERY_RULE_IDS,
    METRIC_NAME_RE,
    RULE_PERIOD_UNIT_S,
    STATISTICS,
)
from .store import Store

OPERATOR_NAMES = {
    ">=": "GreaterThanOrEqualToThreshold",
    ">": "GreaterThanThreshold",
    "<=": "LessThanOrEqualToThreshold",
    "<": "LessThanThreshold",
    "!=": "NotEqualToThreshold",
    "=": "EqualToThreshold",
}
_INTERVAL_RE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")
OK = {"Code": "200", "Message": "", "Success": True}


def _threshold(params: Mapping[str, str]) -> str:
    raw = params["Threshold"]
    try:
        value = float(raw)
    except ValueError:
        raise invalid_parameter("Threshold", "must be a number") from None
    if not math.isfinite(value):
        raise invalid_parameter("Threshold", "must be finite")
    return raw


def _period(params: Mapping[str, str], default: int | None) -> int | None:
    period = p.integer(params, "Period", default, minimum=RULE_PERIOD_UNIT_S)
    if period is not None and period % RULE_PERIOD_UNIT_S:
        raise invalid_parameter("Period", f"must be a multiple of {RULE_PERIOD_UNIT_S}")
    return period


def _common(params: Mapping[str, str], store: Store, *, strict: bool) -> dict[str, Any]:
    """Fields both rule kinds share: Level, ContactGroups, EffectiveInterval, Webhook, EmailSubject."""
    if params["Level"] not in ALARM_LEVELS:
        raise invalid_parameter("Level", f"must be one of {ALARM_LEVELS}")
    groups = [g.strip() for g in params["ContactGroups"].split(",") if g.strip()]
    if not groups:
        raise missing_parameter("ContactGroups")
    if strict:
        known = {obj["key"] for obj in store.objects("contact_group")}
        unknown = [g for g in groups if g not in known]
        if unknown:
            raise invalid_parameter("ContactGroups", f"unknown contact groups {unknown}")
    interval = params.get("EffectiveInterval") or "00:00-23:59"
    if not _INTERVAL_RE.fullmatch(interval):
        raise invalid_parameter("EffectiveInterval", "must be hh:mm-hh:mm within 00:00-23:59")
    webhook = params.get("Webhook") or ""
    if strict and webhook and not re.match(r"https?://", webhook):
        raise invalid_parameter("Webhook", "must be an http(s) URL")
    group_id = params.get("GroupId") or "0"
    if not group_id.isdigit():
        raise invalid_parameter("GroupId", "must be a non-negative integer")
    return {
        "RuleId": params["RuleId"],
        "Level": params["Level"],
        "ContactGroups": ",".join(groups),
        "EffectiveInterval": interval,
        "Webhook": webhook,
        "EmailSubject": params.get("EmailSubject") or "",
        "GroupId": group_id,
        "Threshold": _threshold(params),
    }


def _resources(raw: str, *, strict: bool) -> list[dict[str, Any]]:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        if strict:
            raise invalid_parameter(
                "Resources", 'must be a JSON array like [{"groupId":0,"dimension":"k=v"}]'
            )
        return []
    return value


def _save(store: Store, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    existing = {obj["key"]: obj["doc"] for obj in store.objects("rule")}
    old = existing.get(doc["RuleId"])
    if old is not None and old["Kind"] != kind:
        raise invalid_parameter("RuleId", f"{doc['RuleId']!r} already names a {old['Kind']} rule")
    doc["Kind"] = kind
    doc["EnableState"] = old["EnableState"] if old is not None else True  # an update keeps the state
    store.put_object("rule", doc["RuleId"], doc)
    return dict(OK)


def put_custom_metric_rule(params: Mapping[str, str], store: Store, *, strict: bool) -> dict[str, Any]:
    p.required(
        params,
        "RuleId",
        "MetricName",
        "Resources",
        "Statistics",
        "ComparisonOperator",
        "Threshold",
        "EvaluationCount",
        "Level",
        "ContactGroups",
    )
    if params["ComparisonOperator"] not in COMPARISON_OPERATORS:
        raise invalid_parameter("ComparisonOperator", f"must be one of {COMPARISON_OPERATORS}")
    if params["Statistics"] not in STATISTICS:
        raise invalid_parameter("Statistics", f"must be one of {STATISTICS}")
    if strict and not METRIC_NAME_RE.fullmatch(params["MetricName"]):
        raise invalid_parameter("MetricName", f"must match {METRIC_NAME_RE.pattern}")
    doc = _common(params, store, strict=strict)
    doc.update(
        RuleName=params.get("RuleName") or params["RuleId"],
        MetricName=params["MetricName"],
        Resources=params["Resources"],
        ResourceList=_resources(params["Resources"], strict=strict),
        Statistics=params["Statistics"],
        ComparisonOperator=params["ComparisonOperator"],
        EvaluationCount=p.integer(params, "EvaluationCount", minimum=1),
        Period=_period(params, None),
        SilenceTime=p.integer(params, "SilenceTime", DEFAULT_SILENCE_TIME_S, minimum=0),
    )
    return _save(store, "metric", doc)


def put_custom_event_rule(params: Mapping[str, str], store: Store, *, strict: bool) -> dict[str, Any]:
    p.required(params, "RuleId", "RuleName", "EventName", "GroupId", "ContactGroups", "Threshold", "Level")
    doc = _common(params, store, strict=strict)
    doc.update(
        RuleName=params["RuleName"],
        EventName=params["EventName"],
        Period=_period(params, DEFAULT_EVENT_RULE_PERIOD_S),
    )
    return _save(store, "event", doc)


def _alarm(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """One ``Alarms.Alarm`` item (the Tea model's field names; the mapping is partly a guess)."""
    doc = obj["doc"]
    escalation: dict[str, Any] = {"Threshold": doc["Threshold"], "Times": doc.get("EvaluationCount", 1)}
    item: dict[str, Any] = {
        "RuleId": doc["RuleId"],
        "RuleName": doc["RuleName"],
        "GroupId": doc["GroupId"],
        "Period": str(doc["Period"] or 60),
        "ContactGroups": doc["ContactGroups"],
        "EffectiveInterval": doc["EffectiveInterval"],
        "NoEffectiveInterval": "",
        "EnableState": doc["EnableState"],
        "AlertState": "INSUFFICIENT_DATA",
        "MailSubject": doc["EmailSubject"],
        "Webhook": doc["Webhook"],
        "GmtCreate": obj["created_ms"],
        "GmtUpdate": obj["updated_ms"],
    }
    if doc["Kind"] == "metric":
        escalation.update(
            Statistics=doc["Statistics"], ComparisonOperator=OPERATOR_NAMES[doc["ComparisonOperator"]]
        )
        item.update(
            Namespace=namespace,
            MetricName=doc["MetricName"],
            Resources=doc["Resources"],
            Dimensions=json.dumps(
                [r.get("dimension", "") for r in doc["ResourceList"]] if doc["ResourceList"] else []
            ),
            SilenceTime=doc["SilenceTime"],
            SourceType="METRIC",
        )
    else:
        item.update(MetricName=doc["EventName"], EventName=doc["EventName"], SourceType="EVENT")
    item["Escalations"] = {doc["Level"].capitalize(): escalation}
    return item


def _dimension_pairs(text: str) -> set[tuple[str, str]]:
    return {tuple(part.split("=", 1)) for part in text.split("&") if "=" in part}  # type: ignore[misc]


def describe_metric_rule_list(params: Mapping[str, str], store: Store, namespace: str) -> dict[str, Any]:
    number, size = p.page(params, "Page", "PageSize")
    ids = [i.strip() for i in (params.get("RuleIds") or "").split(",") if i.strip()]
    if len(ids) > MAX_QUERY_RULE_IDS:
        raise invalid_parameter("RuleIds", f"at most {MAX_QUERY_RULE_IDS} ids")
    enabled = p.boolean(params, "EnableState")
    wanted_dims: set[tuple[str, str]] = set()
    if params.get("Dimensions"):
        try:
            wanted_dims = {(str(k), str(v)) for k, v in json.loads(params["Dimensions"]).items()}
        except (ValueError, AttributeError):
            raise invalid_parameter("Dimensions", 'must be a JSON object like {"k":"v"}') from None
    alarms = []
    for obj in store.objects("rule"):
        item = _alarm(obj, namespace)
        doc = obj["doc"]
        if ids and doc["RuleId"] not in ids:
            continue
        if params.get("RuleName") and params["RuleName"] not in doc["RuleName"]:  # fuzzy: substring
            continue
        if params.get("Namespace") and item.get("Namespace") != params["Namespace"]:
            continue
        if params.get("MetricName") and item["MetricName"] != params["MetricName"]:
            continue
        if params.get("GroupId") and doc["GroupId"] != params["GroupId"]:
            continue
        if enabled is not None and doc["EnableState"] != enabled:
            continue
        if params.get("AlertState") and item["AlertState"] != params["AlertState"]:
            continue
        if wanted_dims and not any(
            wanted_dims <= _dimension_pairs(str(r.get("dimension", ""))) for r in doc.get("ResourceList", [])
        ):
            continue
        alarms.append(item)
    return {
        "Code": 200,
        "Message": "",
        "Success": True,
        "Total": str(len(alarms)),
        "Alarms": {"Alarm": alarms[(number - 1) * size : number * size]},
    }


def _known_ids(store: Store, ids: list[str], name: str) -> None:
    if not ids:
        raise missing_parameter(f"{name}.1")
    known = {obj["key"] for obj in store.objects("rule")}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise not_found(f"alarm rules {unknown}")


def delete_metric_rules(params: Mapping[str, str], store: Store) -> dict[str, Any]:
    ids = p.indexed(params, "Id", limit=MAX_DELETE_RULE_IDS)
    _known_ids(store, ids, "Id")
    store.delete_objects("rule", ids)
    return dict(OK)


def set_metric_rules_enabled(params: Mapping[str, str], store: Store, enabled: bool) -> dict[str, Any]:
    ids = p.indexed(params, "RuleId", limit=MAX_DELETE_RULE_IDS)
    _known_ids(store, ids, "RuleId")
    for obj in store.objects("rule"):
        if obj["key"] in ids:
            store.put_object("rule", obj["key"], {**obj["doc"], "EnableState": enabled})
    return dict(OK)
