"""Event alarms as CMS event rules (PutEventRule / PutEventRuleTargets) and the SLS console link of a
flow's logs that event rules carry and ``check`` shows.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from langflow_cms import contract, events
from langflow_cms.ops.alarms.model import ALL_FLOWS, EVENT_PRODUCT, EventAlarm


@dataclass(frozen=True)
class SlsSettings:
    project: str
    logstore: str
    region: str

    @classmethod
    def from_config(cls, config: Any) -> SlsSettings | None:
        project, logstore = getattr(config, "sls_project", None), getattr(config, "sls_logstore", None)
        if not project or not logstore:
            return None
        return cls(project, logstore, str(getattr(config, "region", "") or ""))


def flow_logs_link(
    sls: SlsSettings | None, flow: str, *, start_s: int | None = None, end_s: int | None = None
) -> str | None:
    """The SLS console search for one flow's log lines (``flow: "poem"``; every line for ``*``): the link
    of :func:`langflow_cms.events.sls_link` with its run-id query swapped for the flow. Without
    ``start_s``/``end_s`` (a rule, made long before it fires) the link names no time range and the console
    opens its default range; with them (``check``) it covers that range. None without SLS settings."""
    if sls is None:
        return None
    base = events.sls_link(sls.project, sls.logstore, sls.region, run_id="", at=start_s or 0)
    if base is None:
        return None
    parts = urlsplit(base)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    text = "*" if flow == ALL_FLOWS else f'{contract.FLOW}: "{flow}"'
    query["queryString"] = base64.b64encode(text.encode()).decode()
    if start_s is None or end_s is None:
        for key in ("queryTimeType", "startTime", "endTime"):
            query.pop(key, None)
    else:
        query.update(startTime=str(int(start_s)), endTime=str(int(end_s)))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote, safe="")))


def event_rule_description(alarm: EventAlarm, sls: SlsSettings | None = None) -> str:
    """``Description`` of the event rule: what it matches, and the flow's SLS search when configured."""
    flow = "every flow" if alarm.flow == ALL_FLOWS else f"flow {alarm.flow}"
    text = f"langflow-cms: {', '.join(alarm.event_names)} events of {flow}."
    link = flow_logs_link(sls, alarm.flow)
    return f"{text} Logs: {link}" if link else text


def event_rule_params(
    alarm: EventAlarm, group_id: str = "0", sls: SlsSettings | None = None
) -> dict[str, str]:
    """The ``PutEventRule`` parameters of one event alarm (names as in the SDK request class)."""
    params = {
        "RuleName": alarm.rule_name,
        "EventType": "CUSTOM",
        "Description": event_rule_description(alarm, sls),
        "State": "ENABLED" if alarm.enabled else "DISABLED",
        "SilenceTime": str(alarm.silence_s),
        "EventPattern.1.Product": EVENT_PRODUCT,
    }
    if group_id and group_id != "0":
        params["GroupId"] = group_id
    params.update({f"EventPattern.1.NameList.{i}": n for i, n in enumerate(alarm.event_names, 1)})
    if alarm.keyword is not None:
        params["EventPattern.1.KeywordFilter.Keywords.1"] = alarm.keyword
        params["EventPattern.1.KeywordFilter.Relation"] = "OR"
    return params


def event_target_params(alarm: EventAlarm) -> dict[str, str]:
    """The ``PutEventRuleTargets`` parameters: one contact-group target per group, Ids 1..N."""
    params = {"RuleName": alarm.rule_name}
    for i, group in enumerate(alarm.contact_groups, 1):
        params.update(
            {
                f"ContactParameters.{i}.Id": str(i),
                f"ContactParameters.{i}.ContactGroupName": group,
                f"ContactParameters.{i}.Level": alarm.level,
            }
        )
    return params


EVENT_COMPARED = (
    "EventType",
    "EventNames",
    "FlowKeyword",
    "Product",
    "State",
    "SilenceTime",
    "Description",
    "ContactGroups",
    "Level",
)


def event_wanted(alarm: EventAlarm, group_id: str, sls: SlsSettings | None) -> dict[str, str]:
    params = event_rule_params(alarm, group_id, sls)
    return {
        "EventType": "CUSTOM",
        "EventNames": ",".join(sorted(alarm.event_names)),
        "FlowKeyword": "" if alarm.keyword is None else f"OR {alarm.keyword}",
        "Product": EVENT_PRODUCT,
        "State": params["State"],
        "SilenceTime": params["SilenceTime"],
        "Description": params["Description"],
        "ContactGroups": ",".join(sorted(alarm.contact_groups)),
        "Level": alarm.level,
    }


def _listed(value: Any, key: str) -> list[str]:
    """A Tea-model list, ``{"NameList": [...]}`` or already ``[...]``."""
    if isinstance(value, dict):
        value = value.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []


def normalise_event_rule(item: Mapping[str, Any], targets: Mapping[str, Any]) -> dict[str, str]:
    """The compared fields of a DescribeEventRuleList item and its DescribeEventRuleTargetList answer."""
    patterns = item.get("EventPattern") or {}
    if isinstance(patterns, dict):
        patterns = patterns.get("EventPattern") or []
    pattern = patterns[0] if patterns and isinstance(patterns[0], dict) else {}
    keywords = pattern.get("KeywordFilter") or {}
    words = _listed(keywords.get("Keywords"), "Keywords")
    contacts = (targets.get("ContactParameters") or {}).get("ContactParameter") or []
    return {
        "EventType": str(item.get("EventType", "")),
        "EventNames": ",".join(sorted(_listed(pattern.get("NameList"), "NameList"))),
        "FlowKeyword": f"{keywords.get('Relation') or 'OR'} {','.join(sorted(words))}" if words else "",
        "Product": str(pattern.get("Product", "")),
        "State": str(item.get("State", "")),
        "SilenceTime": str(item.get("SilenceTime", "")),
        "Description": str(item.get("Description", "")),
        "ContactGroups": ",".join(sorted(str(c.get("ContactGroupName", "")) for c in contacts)),
        "Level": ",".join(sorted({str(c.get("Level", "")) for c in contacts})),
    }
