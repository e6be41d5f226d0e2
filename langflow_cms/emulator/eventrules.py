"""Event-triggered alarm rules the documented way: PutEventRule (``EventType=CUSTOM``),
PutEventRuleTargets, DescribeEventRuleList, DescribeEventRuleTargetList and DeleteEventRules.

PutCustomEventRule (alarms.py) has no describe/delete counterpart in the SDK or the docs; this family has
both, keyed by ``RuleName``. Parameters are the installed SDK request classes'; required ones and value sets
come from the Tea docstrings (``RuleName`` and ``EventPattern.N.Product`` required; lists of N ≤ 50;
``State`` ENABLED/DISABLED; ``DeleteEventRules.RuleNames.N`` ≤ 20). Responses follow the Tea models
(``EventRules.EventRule[]`` with ``EventPattern.EventPattern[]`` and its ``NameList.NameList[]``-style
lists; ``ContactParameters.ContactParameter[]`` / ``WebhookParameters.WebhookParameter[]``). Guessed: the
``EventType`` default (CUSTOM), page size 10, and the inferred HTTP 404 ``Code "404"`` for unknown rules.
Only contact-group and webhook targets are kept; SLS, MNS, FC and OpenAPI targets are refused with
InvalidParameter (the emulator has none of those services).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import params as p
from .contacts import not_found
from .errors import invalid_parameter, missing_parameter
from .limits import (
    ALARM_LEVELS,
    DEFAULT_SILENCE_TIME_S,
    MAX_DELETE_EVENT_RULE_NAMES,
    MAX_PATTERN_VALUES,
)
from .store import Store

_LISTS = ("NameList", "LevelList", "StatusList", "EventTypeList")
_UNSUPPORTED_TARGETS = ("SlsParameters", "MnsParameters", "FcParameters", "OpenApiParameters")
OK = {"Code": "200", "Message": "", "Success": True}


def _patterns(params: Mapping[str, str]) -> list[dict[str, Any]]:
    numbers = sorted({int(m.group(1)) for key in params if (m := re.match(r"EventPattern\.(\d+)\.", key))})
    if not numbers:
        raise missing_parameter("EventPattern.1.Product")
    patterns = []
    for n in numbers:
        prefix = f"EventPattern.{n}"
        if not params.get(f"{prefix}.Product"):
            raise missing_parameter(f"{prefix}.Product")
        pattern: dict[str, Any] = {"Product": params[f"{prefix}.Product"]}
        for name in _LISTS:
            pattern[name] = p.indexed(params, f"{prefix}.{name}", limit=MAX_PATTERN_VALUES)
        for level in pattern["LevelList"]:
            if level not in (*ALARM_LEVELS, "*"):
                raise invalid_parameter(f"{prefix}.LevelList", f"must be one of {ALARM_LEVELS} or *")
        keywords = p.indexed(params, f"{prefix}.KeywordFilter.Keywords", limit=MAX_PATTERN_VALUES)
        relation = params.get(f"{prefix}.KeywordFilter.Relation") or ""
        if relation and relation not in ("OR", "NOT"):
            raise invalid_parameter(f"{prefix}.KeywordFilter.Relation", "must be OR or NOT")
        if keywords or relation:
            pattern["KeywordFilter"] = {"Keywords": keywords, "Relation": relation or "OR"}
        for name in ("CustomFilters", "SQLFilter"):
            if params.get(f"{prefix}.{name}"):
                pattern[name] = params[f"{prefix}.{name}"]
        patterns.append(pattern)
    return patterns


def put_event_rule(params: Mapping[str, str], store: Store) -> dict[str, Any]:
    p.required(params, "RuleName")
    event_type = params.get("EventType") or "CUSTOM"
    if event_type not in ("SYSTEM", "CUSTOM"):
        raise invalid_parameter("EventType", "must be SYSTEM or CUSTOM")
    state = params.get("State") or "ENABLED"
    if state not in ("ENABLED", "DISABLED"):
        raise invalid_parameter("State", "must be ENABLED or DISABLED")
    group_id = params.get("GroupId") or ""
    if group_id and not group_id.isdigit():
        raise invalid_parameter("GroupId", "must be a non-negative integer")
    doc = {
        "Name": params["RuleName"],
        "Description": params.get("Description") or "",
        "EventType": event_type,
        "GroupId": group_id,
        "SilenceTime": p.integer(params, "SilenceTime", DEFAULT_SILENCE_TIME_S, minimum=0),
        "State": state,
        "EventPattern": _patterns(params),
    }
    old = {o["key"]: o["doc"] for o in store.objects("event_rule")}.get(params["RuleName"])
    doc["Targets"] = old["Targets"] if old else {"Contact": [], "Webhook": []}
    store.put_object("event_rule", params["RuleName"], doc)
    return {**OK, "Data": "1"}  # Data: "the number of rules created or modified" (Tea model)


def _rule(store: Store, name: str) -> dict[str, Any]:
    doc = {o["key"]: o["doc"] for o in store.objects("event_rule")}.get(name)
    if doc is None:
        raise not_found(f"event rule {name!r}")
    return doc


def _targets(params: Mapping[str, str], kind: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    numbers = sorted({int(m.group(1)) for k in params if (m := re.match(rf"{kind}\.(\d+)\.", k))})
    return [{f: params.get(f"{kind}.{n}.{f}", "") for f in fields} for n in numbers]


def put_event_rule_targets(params: Mapping[str, str], store: Store, *, strict: bool) -> dict[str, Any]:
    p.required(params, "RuleName")
    doc = _rule(store, params["RuleName"])
    for kind in _UNSUPPORTED_TARGETS:
        if any(key.startswith(f"{kind}.") for key in params):
            raise invalid_parameter(f"{kind}.N", "the emulator only keeps contact-group and webhook targets")
    contacts = _targets(params, "ContactParameters", ("Id", "ContactGroupName", "Level"))
    webhooks = _targets(params, "WebhookParameters", ("Id", "Protocol", "Url", "Method"))
    if not contacts and not webhooks:
        raise missing_parameter("ContactParameters.1.Id")
    known_groups = {o["key"] for o in store.objects("contact_group")}
    for n, target in enumerate(contacts, 1):
        for field in ("Id", "ContactGroupName", "Level"):
            if not target[field]:
                raise missing_parameter(f"ContactParameters.{n}.{field}")
        if strict and target["ContactGroupName"] not in known_groups:
            raise invalid_parameter(f"ContactParameters.{n}.ContactGroupName", "unknown contact group")
    for n, target in enumerate(webhooks, 1):
        for field in ("Id", "Url"):
            if not target[field]:
                raise missing_parameter(f"WebhookParameters.{n}.{field}")
        if target["Method"] and target["Method"] not in ("GET", "POST"):
            raise invalid_parameter(f"WebhookParameters.{n}.Method", "must be GET or POST")
    merged = {kind: {t["Id"]: t for t in doc["Targets"][kind]} for kind in ("Contact", "Webhook")}
    merged["Contact"].update({t["Id"]: t for t in contacts})  # the same Id replaces a target
    merged["Webhook"].update({t["Id"]: t for t in webhooks})
    doc["Targets"] = {kind: list(by_id.values()) for kind, by_id in merged.items()}
    store.put_object("event_rule", params["RuleName"], doc)
    return dict(OK)


def describe_event_rule_target_list(params: Mapping[str, str], store: Store) -> dict[str, Any]:
    p.required(params, "RuleName")
    targets = _rule(store, params["RuleName"])["Targets"]
    return {
        "Code": "200",
        "Message": "",
        "ContactParameters": {"ContactParameter": targets["Contact"]},
        "WebhookParameters": {"WebhookParameter": targets["Webhook"]},
    }


def describe_event_rule_list(params: Mapping[str, str], store: Store) -> dict[str, Any]:
    number, size = p.page(params, "PageNumber", "PageSize")
    enabled = p.boolean(params, "IsEnable")
    rules = []
    for obj in store.objects("event_rule"):
        doc = obj["doc"]
        if params.get("NamePrefix") and not doc["Name"].startswith(params["NamePrefix"]):
            continue
        if params.get("GroupId") and doc["GroupId"] != params["GroupId"]:
            continue
        if enabled is not None and (doc["State"] == "ENABLED") != enabled:
            continue
        patterns = []
        for pattern in doc["EventPattern"]:
            shown = {
                "Product": pattern["Product"],
                **{n: {n: pattern[n]} for n in _LISTS if n != "StatusList"},
            }
            if "KeywordFilter" in pattern:
                shown["KeywordFilter"] = {
                    "Keywords": {"Keywords": pattern["KeywordFilter"]["Keywords"]},
                    "Relation": pattern["KeywordFilter"]["Relation"],
                }
            for name in ("CustomFilters", "SQLFilter"):
                if name in pattern:
                    shown[name] = pattern[name]
            patterns.append(shown)
        rules.append(
            {
                "Name": doc["Name"],
                "Description": doc["Description"],
                "EventType": doc["EventType"],
                "GroupId": doc["GroupId"],
                "SilenceTime": doc["SilenceTime"],
                "State": doc["State"],
                "EventPattern": {"EventPattern": patterns},
            }
        )
    return {
        **OK,
        "Total": len(rules),
        "EventRules": {"EventRule": rules[(number - 1) * size : number * size]},
    }


def delete_event_rules(params: Mapping[str, str], store: Store) -> dict[str, Any]:
    names = p.indexed(params, "RuleNames", limit=MAX_DELETE_EVENT_RULE_NAMES)
    if not names:
        raise missing_parameter("RuleNames.1")
    known = {o["key"] for o in store.objects("event_rule")}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise not_found(f"event rules {unknown}")
    store.delete_objects("event_rule", names)
    return dict(OK)
