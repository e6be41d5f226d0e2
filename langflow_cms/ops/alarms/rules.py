"""Metric alarms as CMS rules: the ``PutCustomMetricRule`` parameters of an alarm, and the compared
fields of desired and described rules in one canonical text form (so ``plan`` diffs like with like).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from langflow_cms import contract
from langflow_cms.ops.alarms.model import OPERATOR_SYMBOLS, Alarm, Spec
from langflow_cms.ops.query import dimension_query_string


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def rule_params(alarm: Alarm, group_id: str = "0", env: str | None = None) -> dict[str, str]:
    """The ``PutCustomMetricRule`` parameters of one alarm (names as in the SDK request class). ``env``: the
    reporter's ``env`` dimension (``LANGFLOW_CMS_ENV``, ``dev`` in development mode), which the fleet series
    carry, so the rule names it too unless its ``where`` names another."""
    dims = alarm.dimensions()
    if env:
        dims.setdefault(contract.ENV, env)
    resource: dict[str, Any] = {"groupId": int(group_id)}
    if dims:
        resource["dimension"] = dimension_query_string(dims)
    return {
        "RuleId": alarm.rule_id,
        "RuleName": alarm.rule_id,
        "MetricName": alarm.metric,
        "GroupId": group_id,
        "Resources": json.dumps([resource], separators=(",", ":")),
        "Statistics": alarm.cms_statistic,
        "ComparisonOperator": alarm.operator,
        "Threshold": number_text(alarm.threshold),
        "EvaluationCount": str(alarm.periods),
        "Period": str(alarm.period),
        "Level": alarm.level,
        "ContactGroups": ",".join(alarm.contact_groups),
        "EffectiveInterval": alarm.effective_hours,
        "SilenceTime": str(alarm.silence_s),
    }


def target_warnings(spec: Spec) -> list[str]:
    """Rules that name dimensions the series they target do not carry exactly (docs/alarms.md): the fleet
    series alarms target carry exactly ``contract.FLEET_TARGET_DIMENSIONS`` (and ``env``); a flow's own
    dimensions ride only on a second series that carries all of them at once. Under exact matching such a
    rule may watch nothing; under superset matching it works."""
    out = []
    for alarm in spec.alarms:
        exact = set(contract.FLEET_TARGET_DIMENSIONS[alarm.metric]) | {contract.ENV}
        extra = sorted(set(alarm.dimensions()) - exact)
        if extra:
            out.append(
                f"rule {alarm.rule_id} ({alarm.name}) names {', '.join(extra)}: the series it targets "
                f"({alarm.metric}) carry exactly {', '.join(contract.FLEET_TARGET_DIMENSIONS[alarm.metric])}"
                " (and env); the flow's dimensions travel only all together on a second series, so if CMS "
                "matches exact dimension sets this rule fires only when the flow's Flow Dimensions are "
                f"exactly {', '.join(extra)} (docs/alarms.md, 'Which series a rule watches')"
            )
    return out


COMPARED = (
    "MetricName",
    "Resources",
    "Statistics",
    "ComparisonOperator",
    "Threshold",
    "EvaluationCount",
    "Period",
    "Level",
    "ContactGroups",
    "EffectiveInterval",
    "SilenceTime",
)


def _canonical_resources(text: str) -> str:
    try:
        items = json.loads(text)
    except (TypeError, ValueError):
        return str(text)
    if not isinstance(items, list):
        return str(text)
    canon = []
    for item in items:
        if isinstance(item, dict):
            canon.append(
                {"groupId": str(item.get("groupId", "0")), "dimension": str(item.get("dimension", ""))}
            )
    return json.dumps(sorted(canon, key=json.dumps))


def normalise_params(params: Mapping[str, str]) -> dict[str, str]:
    """The compared fields of desired parameters in one canonical text form."""
    return {
        "MetricName": params["MetricName"],
        "Resources": _canonical_resources(params["Resources"]),
        "Statistics": params["Statistics"],
        "ComparisonOperator": params["ComparisonOperator"],
        "Threshold": number_text(float(params["Threshold"])),
        "EvaluationCount": str(int(params["EvaluationCount"])),
        "Period": str(int(params["Period"])),
        "Level": params["Level"],
        "ContactGroups": ",".join(sorted(params["ContactGroups"].split(","))),
        "EffectiveInterval": params["EffectiveInterval"],
        "SilenceTime": str(int(params["SilenceTime"])),
    }


def normalise_alarm(item: Mapping[str, Any]) -> dict[str, str]:
    """The compared fields of a ``DescribeMetricRuleList`` ``Alarm`` item, in the same form."""
    escalations = item.get("Escalations") or {}
    level, escalation = "", {}
    for name in ("Critical", "Warn", "Info"):
        found = escalations.get(name)
        if found and (found.get("Statistics") or found.get("Threshold") not in (None, "")):
            level, escalation = name.upper(), found
            break
    operator = str(escalation.get("ComparisonOperator", ""))
    try:
        threshold = number_text(float(escalation.get("Threshold")))
    except (TypeError, ValueError):
        threshold = str(escalation.get("Threshold"))
    return {
        "MetricName": str(item.get("MetricName", "")),
        "Resources": _canonical_resources(str(item.get("Resources", ""))),
        "Statistics": str(escalation.get("Statistics", "")),
        "ComparisonOperator": OPERATOR_SYMBOLS.get(operator, operator),
        "Threshold": threshold,
        "EvaluationCount": str(escalation.get("Times", "")),
        "Period": str(item.get("Period", "")),
        "Level": level,
        "ContactGroups": ",".join(sorted(str(item.get("ContactGroups", "")).split(","))),
        "EffectiveInterval": str(item.get("EffectiveInterval", "")),
        "SilenceTime": str(item.get("SilenceTime", "")),
    }
