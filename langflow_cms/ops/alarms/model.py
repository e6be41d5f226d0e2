"""The alarms spec as values: the constants of the TOML vocabulary and the frozen dataclasses
(contacts, groups, metric alarms, event alarms) that parsing produces and every other module reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from langflow_cms import contract
from langflow_cms.redact import mask_key_id, register_secret

RULE_PREFIX = "langflow-cms-"
"""Every RuleId (and RuleName) this tool creates starts with this; ``--prune`` deletes nothing else."""
STATISTICS = {
    # spec name -> (metric, CMS statistic, kind); kind "duration" thresholds are in ms
    "P50": (contract.FLEET_FLOW_METRIC, "P50", "duration"),
    "P90": (contract.FLEET_FLOW_METRIC, "P90", "duration"),
    "P95": (contract.FLEET_FLOW_METRIC, "P95", "duration"),
    "P99": (contract.FLEET_FLOW_METRIC, "P99", "duration"),
    "Average": (contract.FLEET_FLOW_METRIC, "Average", "duration"),
    "Maximum": (contract.FLEET_FLOW_METRIC, "Maximum", "duration"),
    "error_rate": (contract.FLEET_ERROR_METRIC, "Average", "ratio"),
    "run_count": (contract.FLEET_ERROR_METRIC, "SampleCount", "count"),
    "runs_in_a_row": (contract.SLOW_STREAK_METRIC, "Maximum", "streak"),
}
COMPARISONS = {"above": ">", "at_least": ">=", "below": "<", "at_most": "<="}
OPERATOR_SYMBOLS = {
    "GreaterThanOrEqualToThreshold": ">=",
    "GreaterThanThreshold": ">",
    "LessThanOrEqualToThreshold": "<=",
    "LessThanThreshold": "<",
    "NotEqualToThreshold": "!=",
    "EqualToThreshold": "=",
}
LEVELS = ("CRITICAL", "WARN", "INFO")
DEFAULT_SILENCE_S = 86400
DEFAULT_HOURS = "00:00-23:59"
ALL_FLOWS = "*"
EVENT_KINDS = {
    "flow_failed": contract.EVENT_FLOW_FAILED,
    "node_failed": contract.EVENT_NODE_FAILED,
    "flow_slow": contract.EVENT_FLOW_SLOW,
    "events_suppressed": contract.EVENT_SUPPRESSED,
    "guard": contract.EVENT_GUARD,
}
"""Spec name -> the CMS event name the reporter sends (contract.EVENT_*)."""
EVENT_PRODUCT = "CustomEvent"
"""``EventPattern.N.Product`` of a custom-event rule: a guess (the docs list products of system events)."""
EVENT_LOOKBACK_S = 3600
"""``check`` counts the matching events of the last hour."""


class SpecError(ValueError):
    """The spec file is invalid; the message names the file, the table and the field."""


def mask_webhook(url: str) -> str:
    """A webhook with its secret parts masked: every query value (``access_token``, ``sign``...) shows
    only a few characters; the host and path stay readable."""
    parts = urlsplit(url)
    if not parts.query:
        return url if len(url) < 12 else mask_key_id(url)
    query = "&".join(f"{k}={mask_key_id(v)}" for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{query}"


def register_webhook(url: str) -> None:
    register_secret(url)
    for _, value in parse_qsl(urlsplit(url).query):
        register_secret(value)


@dataclass(frozen=True)
class Contact:
    name: str
    describe: str
    dingtalk_webhook: str | None = None
    dingtalk_webhook_env: str | None = None
    mail: str | None = None

    def shown(self) -> dict[str, str]:
        out = {"describe": self.describe}
        if self.dingtalk_webhook:
            out["dingtalk_webhook"] = mask_webhook(self.dingtalk_webhook)
        if self.mail:
            out["mail"] = self.mail
        return out


@dataclass(frozen=True)
class ContactGroup:
    name: str
    describe: str
    contacts: tuple[str, ...]

    def shown(self) -> dict[str, str]:
        return {"describe": self.describe, "contacts": ",".join(self.contacts)}


@dataclass(frozen=True)
class Alarm:
    name: str
    flow: str
    statistic: str
    operator: str
    threshold: float
    periods: int
    period: int
    level: str
    contact_groups: tuple[str, ...]
    effective_hours: str = DEFAULT_HOURS
    silence_s: int = DEFAULT_SILENCE_S
    node: str | None = None
    where: tuple[tuple[str, str], ...] = ()
    slower_than_ms: int | None = None

    @property
    def rule_id(self) -> str:
        return rule_id(self.name)

    @property
    def metric(self) -> str:
        if self.node is not None:
            return contract.FLEET_NODE_METRIC
        return STATISTICS[self.statistic][0]

    @property
    def cms_statistic(self) -> str:
        return STATISTICS[self.statistic][1]

    def dimensions(self) -> dict[str, str]:
        """The dimensions the rule names (and ``check`` reads): flow, node, status=ok for durations,
        threshold_ms for streaks, and the ``where`` pairs."""
        dims: dict[str, str] = dict(self.where)
        if self.flow != ALL_FLOWS:
            dims[contract.FLOW] = self.flow
        kind = STATISTICS[self.statistic][2]
        if kind == "duration":
            dims[contract.STATUS] = contract.OK
            if self.node is not None:
                dims[contract.NODE] = self.node
        if kind == "streak":
            dims[contract.THRESHOLD] = str(self.slower_than_ms)
        return dims


@dataclass(frozen=True)
class EventAlarm:
    """``[[event_alarms]]``: notify the contact groups of every event of these names for this flow."""

    name: str
    flow: str
    events: tuple[str, ...]
    level: str
    contact_groups: tuple[str, ...]
    silence_s: int = DEFAULT_SILENCE_S
    enabled: bool = True

    @property
    def rule_name(self) -> str:
        return rule_id(self.name)

    @property
    def event_names(self) -> tuple[str, ...]:
        return tuple(EVENT_KINDS[e] for e in self.events)

    @property
    def keyword(self) -> str | None:
        """The flow as it appears in the event's content (compact JSON, events.event_entry), or None for
        every flow: ``"flow":"poem"`` matches that flow and no other (the closing quote is part of it)."""
        if self.flow == ALL_FLOWS:
            return None
        return json.dumps({contract.FLOW: self.flow}, separators=(",", ":"), ensure_ascii=False)[1:-1]


@dataclass(frozen=True)
class Spec:
    path: str
    contacts: tuple[Contact, ...] = ()
    groups: tuple[ContactGroup, ...] = ()
    alarms: tuple[Alarm, ...] = field(default_factory=tuple)
    event_alarms: tuple[EventAlarm, ...] = ()


def rule_id(name: str) -> str:
    """``langflow-cms-`` + the alarm name as a slug (lower case, runs of other characters as ``-``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return RULE_PREFIX + slug
