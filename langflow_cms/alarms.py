"""Alarms as code: a monitoring spec file (TOML) turned into CloudMonitor contacts, contact groups and
alarm rules, planned as a diff, applied idempotently and checked against the data CMS holds.

* :func:`load_spec` reads and validates the file (docs/alarms.md documents every field).
* :func:`desired_rules` turns each alarm into the exact ``PutCustomMetricRule`` parameters. Alarms target
  the fleet stream (contract.FLEET_*): series without an ``instance`` dimension, so a rule survives restarts
  and scaling. ``RuleId`` is ``langflow-cms-`` + a slug of the alarm name: deterministic, so a second apply
  updates the same rule, and recognisable, so ``--prune`` only ever deletes rules this tool made.
* :class:`AlarmClient` makes the calls through :class:`langflow_cms.delivery.transport.Transport` (signed
  RPC, retries, hard deadlines, body-``Code`` check) and turns a permission error into one that names the
  missing RAM action.
* :func:`plan`, :func:`apply`, :func:`managed_rules` and :func:`check` are what the CLI runs.
* ``[[event_alarms]]`` ("any failure of flow X -> contact group") become CMS event rules: PutEventRule with
  ``EventType=CUSTOM``, the reporter's event names (contract.EVENT_*) in ``EventPattern.1.NameList`` and the
  flow as a keyword of the event's JSON content (``"flow":"poem"``), plus PutEventRuleTargets for the
  contact groups. That family has a describe (DescribeEventRuleList, DescribeEventRuleTargetList) and a
  delete (DeleteEventRules); PutCustomEventRule has neither (docs/alarms.md). Rule names use the same
  ``langflow-cms-`` prefix.
* With SLS configured (``LANGFLOW_CMS_SLS_PROJECT``/``_LOGSTORE``), :func:`flow_logs_link` gives the SLS
  console search for one flow, built from :func:`langflow_cms.events.sls_link`; event rules carry it in
  their ``Description``, ``list`` and ``check`` show it (PutCustomMetricRule has no text field for it).
* :func:`longest_streak` is the pure computation behind ``SLOW_STREAK_METRIC`` ("N runs in a row"), for the
  reporter to reuse.

Webhook URLs carry a token: they come from environment variables, are registered with
:func:`langflow_cms.redact.register_secret`, and are only ever shown through :func:`mask_webhook`.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from langflow_cms import contract, events
from langflow_cms.delivery.transport import CmsError, Transport
from langflow_cms.ops import readback
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
RAM_ACTIONS = {
    "PutCustomMetricRule": "cms:PutCustomMetricRule",
    "DescribeMetricRuleList": "cms:DescribeMetricRuleList",
    "DeleteMetricRules": "cms:DeleteMetricRules",
    "PutContact": "cms:PutContact",
    "PutContactGroup": "cms:PutContactGroup",
    "DescribeContactList": "cms:DescribeContactList",
    "DescribeContactGroupList": "cms:DescribeContactGroupList",
    "DescribeMetricList": "cms:QueryMetricList",
    "DescribeCustomMetricList": "cms:DescribeCustomMetricList",
    "PutEventRule": "cms:PutEventRule",
    "PutEventRuleTargets": "cms:PutEventRuleTargets",
    "DescribeEventRuleList": "cms:DescribeEventRuleList",
    "DescribeEventRuleTargetList": "cms:DescribeEventRuleTargetList",
    "DeleteEventRules": "cms:DeleteEventRules",
    "DescribeCustomEventAttribute": "cms:DescribeCustomEventAttribute",
}
"""API -> the RAM action that authorises it (DescribeMetricList is authorised by ``cms:QueryMetricList``)."""
_READ_RULES = ("DescribeMetricRuleList", "DescribeEventRuleList", "DescribeEventRuleTargetList")
COMMAND_ACTIONS = {
    "plan": ("DescribeContactList", "DescribeContactGroupList", *_READ_RULES),
    "apply": (
        "DescribeContactList",
        "DescribeContactGroupList",
        *_READ_RULES,
        "PutContact",
        "PutContactGroup",
        "PutCustomMetricRule",
        "PutEventRule",
        "PutEventRuleTargets",
    ),
    "apply --prune": ("DeleteMetricRules", "DeleteEventRules"),
    "list": _READ_RULES,
    "check": ("DescribeCustomMetricList", "DescribeMetricList", "DescribeCustomEventAttribute"),
}
"""The RAM actions each command needs (``apply --prune`` needs apply's plus these)."""
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
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}")
_HOURS_RE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")
_DIM_RE = re.compile(r"[A-Za-z0-9._\-/\\]{1,64}")
_DURATION_RE = re.compile(r"(\d+)\s*(s|m|h|d)?")


class SpecError(ValueError):
    """The spec file is invalid; the message names the file, the table and the field."""


class AlarmError(RuntimeError):
    """A CMS call failed; ``code`` is the CMS error code, ``ram_action`` the missing permission if any."""

    def __init__(self, message: str, code: str = "", ram_action: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.ram_action = ram_action


# --- the streak --------------------------------------------------------------------------------------------


def longest_streak(durations_ms: Iterable[float], threshold_ms: float, carried: int = 0) -> tuple[int, int]:
    """The longest run of consecutive runs slower than ``threshold_ms`` reached in this batch, and the
    streak still open at its end.

    ``durations_ms`` are one process's runs of one flow in completion order (one window, e.g. a minute);
    ``carried`` is the streak open at the end of the previous window, so streaks continue across window
    boundaries. A run is slow when its duration is strictly greater than the threshold. Returns
    ``(longest, carry)``: ``longest`` counts the carried runs when the streak continues into this batch
    and is 0 when no run of this batch was slow; ``carry`` is what to pass as ``carried`` next time.
    """
    if carried < 0:
        raise ValueError("carried must be >= 0")
    streak, longest = carried, 0
    for duration in durations_ms:
        if duration > threshold_ms:
            streak += 1
            longest = max(longest, streak)
        else:
            streak = 0
    return longest, streak


# --- the spec ----------------------------------------------------------------------------------------------


def mask_webhook(url: str) -> str:
    """A webhook with its secret parts masked: every query value (``access_token``, ``sign``...) shows
    only a few characters; the host and path stay readable."""
    parts = urlsplit(url)
    if not parts.query:
        return url if len(url) < 12 else mask_key_id(url)
    query = "&".join(f"{k}={mask_key_id(v)}" for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{query}"


def _secret_values(url: str) -> None:
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


def _duration_s(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _DURATION_RE.fullmatch(str(value).strip()) if isinstance(value, str) else None
    if not match:
        raise SpecError(f"{where}: expected seconds (an integer) or a duration like '90s', '10m', '1h'")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2) or "s"]


def _str(table: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}: {key} must be a non-empty string")
    return value.strip()


def _name(value: str, where: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise SpecError(f"{where}: {value!r} is not a valid name (letters, digits, space . _ -; <= 63)")
    return value


def _unknown(table: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    extra = sorted(set(table) - set(allowed))
    if extra:
        raise SpecError(f"{where}: unknown field(s) {', '.join(extra)}")


def _contact(
    name: str, table: Any, environ: Mapping[str, str], where: str, *, secrets: bool = True
) -> Contact:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: must be a table")
    if "dingtalk_webhook" in table:
        raise SpecError(
            f"{where}: put the webhook in an environment variable and name it in dingtalk_webhook_env"
        )
    _unknown(table, ("describe", "dingtalk_webhook_env", "mail"), where)
    webhook = env_name = None
    if "dingtalk_webhook_env" in table:
        env_name = _str(table, "dingtalk_webhook_env", where)
        webhook = environ.get(env_name, "").strip() or None
        if webhook is None and secrets:
            raise SpecError(f"{where}: environment variable {env_name} (dingtalk_webhook_env) is not set")
        if webhook is not None and not re.match(r"https?://", webhook):
            raise SpecError(f"{where}: {env_name} must hold an http(s) URL")
        if webhook is not None:
            _secret_values(webhook)
    mail = table.get("mail")
    if mail is not None and (
        not isinstance(mail, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", mail)
    ):
        raise SpecError(f"{where}: mail must be an email address")
    if env_name is None and mail is None:
        raise SpecError(f"{where}: a contact needs dingtalk_webhook_env or mail")
    describe = _str(table, "describe", where, default=name)
    return Contact(_name(name, where), describe, webhook, env_name, mail)


def _group(name: str, table: Any, contacts: set[str], where: str) -> ContactGroup:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: must be a table")
    _unknown(table, ("describe", "contacts"), where)
    members = table.get("contacts")
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise SpecError(f"{where}: contacts must be a non-empty list of contact names")
    unknown = [m for m in members if m not in contacts]
    if unknown:
        raise SpecError(f"{where}: unknown contacts {unknown} (declare them under [contacts])")
    return ContactGroup(_name(name, where), _str(table, "describe", where, default=name), tuple(members))


_ALARM_FIELDS = (
    *("name", "flow", "node", "statistic", "periods", "period", "level", "contact_groups"),
    *("effective_hours", "silence", "where", "runs", "slower_than_ms"),
)


def _alarm(table: Any, groups: set[str], where: str) -> Alarm:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: must be a table")
    comparisons = [k for k in table if k.removesuffix("_ms") in COMPARISONS]
    _unknown(table, [*_ALARM_FIELDS, *comparisons], where)
    name = _name(_str(table, "name", where), where)
    where = f"{where} ({name})"
    statistic = _str(table, "statistic", where)
    if statistic not in STATISTICS:
        raise SpecError(f"{where}: statistic must be one of {', '.join(STATISTICS)}")
    kind = STATISTICS[statistic][2]
    flow = _str(table, "flow", where)
    if flow != ALL_FLOWS and not _DIM_RE.fullmatch(flow):
        raise SpecError(f"{where}: flow {flow!r} is not a CMS dimension value (or '*' for all flows)")
    node = table.get("node")
    if node is not None and (kind != "duration" or not isinstance(node, str) or not _DIM_RE.fullmatch(node)):
        raise SpecError(f"{where}: node must be a node id, and only with a duration statistic")
    slower = None
    if kind == "streak":
        if comparisons:
            raise SpecError(f"{where}: runs_in_a_row takes runs and slower_than_ms, not {comparisons[0]}")
        runs, slower = table.get("runs"), table.get("slower_than_ms")
        if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
            raise SpecError(f"{where}: runs must be an integer >= 1")
        if not isinstance(slower, int) or isinstance(slower, bool) or slower < 1:
            raise SpecError(f"{where}: slower_than_ms must be an integer >= 1 (ms)")
        for key, fixed in (("periods", 1), ("period", 60)):
            if key in table and table[key] != fixed:
                raise SpecError(f"{where}: runs_in_a_row is evaluated at period 60 for 1 period; drop {key}")
        operator, threshold, periods, period = ">=", float(runs), 1, 60
    else:
        for key in ("runs", "slower_than_ms"):
            if key in table:
                raise SpecError(f"{where}: {key} is only for statistic runs_in_a_row")
        if len(comparisons) != 1:
            raise SpecError(f"{where}: exactly one of {', '.join(COMPARISONS)} (with _ms for durations)")
        key = comparisons[0]
        if kind == "duration" and not key.endswith("_ms"):
            raise SpecError(f"{where}: a duration threshold is in ms: write {key}_ms")
        if kind != "duration" and key.endswith("_ms"):
            raise SpecError(f"{where}: {statistic} is not a duration: write {key.removesuffix('_ms')}")
        operator = COMPARISONS[key.removesuffix("_ms")]
        raw = table[key]
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise SpecError(f"{where}: {key} must be a number")
        if kind == "ratio" and not 0 <= raw <= 1:
            raise SpecError(f"{where}: an error rate is a fraction between 0 and 1 (0.05 = 5 %)")
        threshold = float(raw)
        periods = table.get("periods", 1)
        if not isinstance(periods, int) or isinstance(periods, bool) or periods < 1:
            raise SpecError(f"{where}: periods must be an integer >= 1")
        period = _duration_s(table.get("period", 60), f"{where}: period")
        if period not in contract.PERIODS:
            raise SpecError(f"{where}: period must be 60 or 300 (CMS computes raw data at those two only)")
    level = str(table.get("level", "WARN")).upper()
    if level not in LEVELS:
        raise SpecError(f"{where}: level must be one of {', '.join(LEVELS)}")
    names = _contact_groups(table, groups, where)
    hours = str(table.get("effective_hours", DEFAULT_HOURS))
    if not _HOURS_RE.fullmatch(hours):
        raise SpecError(f"{where}: effective_hours must be hh:mm-hh:mm, e.g. 08:00-20:00")
    silence = _duration_s(table.get("silence", DEFAULT_SILENCE_S), f"{where}: silence")
    extra = table.get("where", {})
    if not isinstance(extra, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _DIM_RE.fullmatch(k) and _DIM_RE.fullmatch(v)
        for k, v in extra.items()
    ):
        raise SpecError(f"{where}: where must be a table of dimension = value strings")
    reserved = set(extra) & {
        contract.FLOW,
        contract.NODE,
        contract.STATUS,
        contract.THRESHOLD,
        contract.INSTANCE,
    }
    if reserved:
        raise SpecError(
            f"{where}: where may not set {sorted(reserved)} "
            "(use flow/node; instance is not on the fleet stream)"
        )
    return Alarm(
        name=name,
        flow=flow,
        statistic=statistic,
        operator=operator,
        threshold=threshold,
        periods=periods,
        period=period,
        level=level,
        contact_groups=names,
        effective_hours=hours,
        silence_s=silence,
        node=node,
        where=tuple(sorted(extra.items())),
        slower_than_ms=slower,
    )


_EVENT_ALARM_FIELDS = ("name", "flow", "events", "level", "contact_groups", "silence", "enabled")


def _contact_groups(table: Mapping[str, Any], groups: set[str], where: str) -> tuple[str, ...]:
    names = table.get("contact_groups")
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise SpecError(f"{where}: contact_groups must name at least one contact group")
    unknown = [n for n in names if n not in groups]
    if unknown:
        raise SpecError(f"{where}: unknown contact groups {unknown} (declare them under [groups])")
    return tuple(names)


def _event_alarm(table: Any, groups: set[str], where: str) -> EventAlarm:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: must be a table")
    _unknown(table, _EVENT_ALARM_FIELDS, where)
    name = _name(_str(table, "name", where), where)
    where = f"{where} ({name})"
    flow = _str(table, "flow", where)
    if flow != ALL_FLOWS and not _DIM_RE.fullmatch(flow):
        raise SpecError(f"{where}: flow {flow!r} is not a flow name as the events carry it (or '*')")
    kinds = table.get("events", ["flow_failed"])
    if isinstance(kinds, str):
        kinds = [kinds]
    if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) for k in kinds):
        raise SpecError(f"{where}: events must be a non-empty list of {', '.join(EVENT_KINDS)}")
    unknown = [k for k in kinds if k not in EVENT_KINDS]
    if unknown:
        raise SpecError(f"{where}: unknown events {unknown}: use {', '.join(EVENT_KINDS)}")
    level = str(table.get("level", "WARN")).upper()
    if level not in LEVELS:
        raise SpecError(f"{where}: level must be one of {', '.join(LEVELS)}")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SpecError(f"{where}: enabled must be true or false")
    return EventAlarm(
        name=name,
        flow=flow,
        events=tuple(dict.fromkeys(kinds)),
        level=level,
        contact_groups=_contact_groups(table, groups, where),
        silence_s=_duration_s(table.get("silence", DEFAULT_SILENCE_S), f"{where}: silence"),
        enabled=enabled,
    )


def parse_spec(
    data: Mapping[str, Any],
    path: str = "<spec>",
    environ: Mapping[str, str] | None = None,
    *,
    secrets: bool = True,
) -> Spec:
    """Validate a parsed spec (see docs/alarms.md); webhook URLs are read from ``environ``. With
    ``secrets=False`` (``check``, which writes no contact) an unset webhook variable is allowed."""
    environ = os.environ if environ is None else environ
    _unknown(data, ("contacts", "groups", "alarms", "event_alarms", "guard"), path)  # guard: docs/guard.md
    raw_contacts = data.get("contacts", {})
    raw_groups = data.get("groups", {})
    raw_alarms = data.get("alarms", [])
    raw_events = data.get("event_alarms", [])
    if (
        not isinstance(raw_contacts, dict)
        or not isinstance(raw_groups, dict)
        or not isinstance(raw_alarms, list)
        or not isinstance(raw_events, list)
    ):
        raise SpecError(
            f"{path}: [contacts.NAME] and [groups.NAME] are tables, [[alarms]] and [[event_alarms]] "
            "arrays of tables"
        )
    contacts = tuple(
        _contact(n, t, environ, f"{path}: [contacts.{n}]", secrets=secrets) for n, t in raw_contacts.items()
    )
    groups = tuple(
        _group(n, t, {c.name for c in contacts}, f"{path}: [groups.{n}]") for n, t in raw_groups.items()
    )
    alarms = tuple(
        _alarm(t, {g.name for g in groups}, f"{path}: [[alarms]] #{i + 1}") for i, t in enumerate(raw_alarms)
    )
    seen: dict[str, str] = {}
    for alarm in alarms:
        if alarm.rule_id in seen:
            raise SpecError(
                f"{path}: alarms {seen[alarm.rule_id]!r} and {alarm.name!r} "
                f"give the same RuleId {alarm.rule_id}"
            )
        seen[alarm.rule_id] = alarm.name
    event_alarms = tuple(
        _event_alarm(t, {g.name for g in groups}, f"{path}: [[event_alarms]] #{i + 1}")
        for i, t in enumerate(raw_events)
    )
    for event_alarm in event_alarms:  # one name space: `list` shows both kinds by rule name
        if event_alarm.rule_name in seen:
            raise SpecError(
                f"{path}: alarms {seen[event_alarm.rule_name]!r} and {event_alarm.name!r} "
                f"give the same rule name {event_alarm.rule_name}"
            )
        seen[event_alarm.rule_name] = event_alarm.name
    return Spec(path, contacts, groups, alarms, event_alarms)


def load_spec(path: str | Path, environ: Mapping[str, str] | None = None, *, secrets: bool = True) -> Spec:
    """Read and validate a spec file (TOML)."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise SpecError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    return parse_spec(data, str(path), environ, secrets=secrets)


# --- CMS rules ---------------------------------------------------------------------------------------------


def _number_text(value: float) -> str:
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
        resource["dimension"] = readback_dimension(dims)
    return {
        "RuleId": alarm.rule_id,
        "RuleName": alarm.rule_id,
        "MetricName": alarm.metric,
        "GroupId": group_id,
        "Resources": json.dumps([resource], separators=(",", ":")),
        "Statistics": alarm.cms_statistic,
        "ComparisonOperator": alarm.operator,
        "Threshold": _number_text(alarm.threshold),
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


def readback_dimension(dims: Mapping[str, str]) -> str:
    """``k1=v1&k2=v2``, keys ascending (CMS's dimension string)."""
    return "&".join(f"{k}={dims[k]}" for k in sorted(dims))


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
        "Threshold": _number_text(float(params["Threshold"])),
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
        threshold = _number_text(float(escalation.get("Threshold")))
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


# --- event rules and the SLS link --------------------------------------------------------------------------


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


def _event_wanted(alarm: EventAlarm, group_id: str, sls: SlsSettings | None) -> dict[str, str]:
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


# --- calls -------------------------------------------------------------------------------------------------

PERMISSION_CODES = ("Forbidden", "AccessForbidden", "NoPermission", "403")


def is_permission_error(code: str, http_status: int | None = None) -> bool:
    return code.startswith("Forbidden") or code in PERMISSION_CODES or http_status == 403


def permission_message(action: str, detail: str) -> str:
    ram = RAM_ACTIONS.get(action, f"cms:{action}")
    return f"permission denied for {action}: grant the RAM action '{ram}' (policies/alarms.json). {detail}"


class ReplyTransport(Transport):
    """:class:`Transport` whose ``call_json`` returns the parsed reply (``call`` returns the RequestId
    only). The reply is captured on its way through the SDK client, so everything else (deadlines, the
    body-``Code`` check, errors) is the reporter's own code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bodies: dict[int, Any] = {}

    def _acs_client(self) -> Any:
        acs = super()._acs_client()
        bodies = self._bodies

        class _Capture:
            def do_action_with_exception(self, request: Any) -> Any:
                body = acs.do_action_with_exception(request)
                bodies[id(request)] = body
                return body

        return _Capture()

    def call_json(self, request: Any, deadline: float) -> dict[str, Any]:
        try:
            self.call(request, deadline)
            return json.loads(self._bodies[id(request)])
        finally:
            self._bodies.pop(id(request), None)


class AlarmClient:
    """The CMS calls of the alarms commands, through the reporter's Transport: the same endpoint, region,
    credential chain, retry policy and deadlines. ``deadline_s`` bounds each call including its retries."""

    def __init__(self, transport: Any, *, deadline_s: float = 30.0) -> None:
        self.transport = transport
        self.deadline_s = deadline_s

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> AlarmClient:
        from langflow_cms.config import Config
        from langflow_cms.credentials import credential_provider

        environ = os.environ if environ is None else environ
        config = Config.from_env(environ)
        return cls(ReplyTransport(config, credential_provider(dev=config.dev, environ=environ)), **kwargs)

    @property
    def group_id(self) -> str:
        return str(getattr(self.transport.config, "group_id", "0") or "0")

    @property
    def env(self) -> str | None:
        """The ``env`` dimension the reporter adds with the same settings (``LANGFLOW_CMS_ENV``; ``dev`` in
        development mode): the rules name it, so they target exactly the series the reporter sends."""
        return getattr(self.transport.config, "env", None) or None

    def call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        """One action with retries; the parsed reply. Raises AlarmError (naming the RAM action on 403)."""
        from aliyunsdkcore.request import RpcRequest

        def once(deadline: float) -> dict[str, Any]:
            request = RpcRequest("Cms", "2019-01-01", action, "cms")
            request.set_method("POST")
            for key, value in params.items():
                request.add_query_param(key, value)
            return self.transport.call_json(request, deadline)

        try:
            return self.transport.call_with_retry(once, time.monotonic() + self.deadline_s)
        except CmsError as exc:
            if is_permission_error(exc.code, exc.http_status):
                raise AlarmError(
                    permission_message(action, str(exc)), exc.code, RAM_ACTIONS.get(action)
                ) from None
            raise AlarmError(f"{action} failed: {exc}", exc.code) from None

    def _pages(
        self,
        action: str,
        params: Mapping[str, str],
        items: Callable[[dict], list],
        page_key: str,
        size_key: str,
        size: int = 100,
    ) -> list[Any]:
        out: list[Any] = []
        for page in range(1, 101):
            body = self.call(action, {**params, page_key: str(page), size_key: str(size)})
            found = items(body)
            out += found
            total = int(body.get("Total") or 0)
            if len(found) < size or len(out) >= total:
                break
        return out

    def contacts(self) -> dict[str, dict[str, Any]]:
        found = self._pages(
            "DescribeContactList",
            {},
            lambda b: (b.get("Contacts") or {}).get("Contact") or [],
            "PageNumber",
            "PageSize",
        )
        return {c["Name"]: c for c in found}

    def contact_groups(self) -> dict[str, dict[str, Any]]:
        found = self._pages(
            "DescribeContactGroupList",
            {},
            lambda b: (b.get("ContactGroupList") or {}).get("ContactGroup") or [],
            "PageNumber",
            "PageSize",
        )
        return {g["Name"]: g for g in found}

    def rules(self) -> dict[str, dict[str, Any]]:
        """The rules this tool manages (RuleId prefix), by RuleId. Every rule is listed and filtered here:
        DescribeMetricRuleList's ``RuleName`` filter is documented as fuzzy, not as a prefix match."""
        found = self._pages(
            "DescribeMetricRuleList",
            {},
            lambda b: (b.get("Alarms") or {}).get("Alarm") or [],
            "Page",
            "PageSize",
        )
        return {a["RuleId"]: a for a in found if str(a.get("RuleId", "")).startswith(RULE_PREFIX)}

    def put_contact(self, contact: Contact) -> None:
        params = {"ContactName": contact.name, "Describe": contact.describe}
        if contact.dingtalk_webhook:
            params["Channels.DingWebHook"] = contact.dingtalk_webhook
        if contact.mail:
            params["Channels.Mail"] = contact.mail
        self.call("PutContact", params)

    def put_contact_group(self, group: ContactGroup) -> None:
        params = {"ContactGroupName": group.name, "Describe": group.describe}
        params.update({f"ContactNames.{i}": n for i, n in enumerate(group.contacts, 1)})
        self.call("PutContactGroup", params)

    def put_rule(self, params: Mapping[str, str]) -> None:
        self.call("PutCustomMetricRule", params)

    @property
    def sls(self) -> SlsSettings | None:
        return SlsSettings.from_config(getattr(self.transport, "config", None))

    def event_rules(self) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """The event rules this tool manages, by name: ``(DescribeEventRuleList item,
        DescribeEventRuleTargetList answer)``. ``NamePrefix`` is the documented prefix filter; the prefix
        is checked here again."""
        found = self._pages(
            "DescribeEventRuleList",
            {"NamePrefix": RULE_PREFIX},
            lambda b: (b.get("EventRules") or {}).get("EventRule") or [],
            "PageNumber",
            "PageSize",
        )
        return {
            str(r["Name"]): (r, self.call("DescribeEventRuleTargetList", {"RuleName": str(r["Name"])}))
            for r in found
            if str(r.get("Name", "")).startswith(RULE_PREFIX)
        }

    def put_event_rule(self, params: Mapping[str, str], targets: Mapping[str, str]) -> None:
        self.call("PutEventRule", params)
        self.call("PutEventRuleTargets", targets)

    def delete_event_rules(self, names: Sequence[str]) -> None:
        for start in range(0, len(names), 20):  # RuleNames.N: N <= 20
            batch = names[start : start + 20]
            self.call("DeleteEventRules", {f"RuleNames.{i}": n for i, n in enumerate(batch, 1)})

    def delete_rules(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 100):
            batch = ids[start : start + 100]
            self.call("DeleteMetricRules", {f"Id.{i}": rid for i, rid in enumerate(batch, 1)})


# --- plan and apply ----------------------------------------------------------------------------------------


@dataclass
class Change:
    """One planned change: ``action`` create/update/delete, ``kind`` contact/group/rule/event rule."""

    action: str
    kind: str
    name: str
    fields: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    label: str = ""
    payload: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "label": self.label,
            "fields": {k: {"old": o, "new": n} for k, (o, n) in self.fields.items()},
        }


@dataclass
class Plan:
    changes: list[Change]
    unchanged: list[str]
    kept: list[str]
    """Managed rules not in the file that stay because ``--prune`` was not given."""
    kept_events: list[str] = field(default_factory=list)
    """The same for event rules."""
    warnings: list[str] = field(default_factory=list)
    """Rules whose dimensions no series carries exactly (``target_warnings``)."""

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        return {a: sum(c.action == a for c in self.changes) for a in ("create", "update", "delete")}

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": [c.as_dict() for c in self.changes],
            "unchanged": self.unchanged,
            "not_pruned": self.kept,
            "not_pruned_event_rules": self.kept_events,
            "warnings": self.warnings,
            **self.counts(),
        }

    def render(self) -> str:
        """A diff: ``+`` create, ``~`` update (old -> new per field), ``-`` delete. Webhooks are masked."""
        sign = {"create": "+", "update": "~", "delete": "-"}
        lines = [f"! warning: {warning}" for warning in self.warnings]
        for change in self.changes:
            label = f" ({change.label})" if change.label else ""
            lines.append(f"{sign[change.action]} {change.kind} {change.name}{label}")
            for key, (old, new) in change.fields.items():
                if change.action == "create":
                    lines.append(f"    {key}: {new}")
                elif change.action == "update":
                    lines.append(f"    {key}: {old} -> {new}")
        for rid in self.kept:
            lines.append(f"  rule {rid} is not in the file (kept; apply --prune deletes it)")
        for name in self.kept_events:
            lines.append(f"  event rule {name} is not in the file (kept; apply --prune deletes it)")
        counts = self.counts()
        if self.changes:
            lines.append(
                f"Plan: {counts['create']} to create, {counts['update']} to change, "
                f"{counts['delete']} to delete."
            )
        else:
            lines.append("No changes: CloudMonitor matches the file.")
        return "\n".join(lines)


def _contact_state(found: Mapping[str, Any]) -> dict[str, str]:
    channels = found.get("Channels") or {}
    out = {"describe": str(found.get("Desc", found.get("Describe", "")))}
    if channels.get("DingWebHook"):
        out["dingtalk_webhook"] = str(channels["DingWebHook"])
    if channels.get("Mail"):
        out["mail"] = str(channels["Mail"])
    return out


def _contact_wanted(contact: Contact) -> dict[str, str]:
    out = {"describe": contact.describe}
    if contact.dingtalk_webhook:
        out["dingtalk_webhook"] = contact.dingtalk_webhook
    if contact.mail:
        out["mail"] = contact.mail
    return out


def _shown(key: str, value: str | None) -> str | None:
    return mask_webhook(value) if key == "dingtalk_webhook" and value else value


def _diff(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, tuple[str | None, str | None]]:
    return {
        k: (_shown(k, old.get(k)), _shown(k, new.get(k)))
        for k in sorted(set(old) | set(new), key=lambda k: (k not in new, k))
        if old.get(k) != new.get(k)
    }


def plan(spec: Spec, client: AlarmClient, *, prune: bool = False) -> Plan:
    """Compare the file with CloudMonitor: contacts, groups, then rules (the order apply uses)."""
    changes: list[Change] = []
    unchanged: list[str] = []
    current_contacts = client.contacts()
    for contact in spec.contacts:
        wanted = _contact_wanted(contact)
        found = current_contacts.get(contact.name)
        if found is None:
            changes.append(Change("create", "contact", contact.name, _diff({}, wanted), payload=contact))
        elif diff := _diff(_contact_state(found), wanted):
            changes.append(Change("update", "contact", contact.name, diff, payload=contact))
        else:
            unchanged.append(f"contact {contact.name}")
    current_groups = client.contact_groups()
    for group in spec.groups:
        wanted = group.shown()
        found = current_groups.get(group.name)
        if found is None:
            changes.append(Change("create", "group", group.name, _diff({}, wanted), payload=group))
            continue
        members = (found.get("Contacts") or {}).get("Contact") or []
        have = {"describe": str(found.get("Describe", "")), "contacts": ",".join(members)}
        if diff := _diff(have, wanted):
            changes.append(Change("update", "group", group.name, diff, payload=group))
        else:
            unchanged.append(f"group {group.name}")
    current_rules = client.rules()
    for alarm in spec.alarms:
        params = rule_params(alarm, client.group_id, client.env)
        wanted = normalise_params(params)
        found = current_rules.get(alarm.rule_id)
        if found is None:
            fields = {k: (None, wanted[k]) for k in COMPARED}
            changes.append(Change("create", "rule", alarm.rule_id, fields, alarm.name, params))
        elif diff := {
            k: (normalise_alarm(found)[k], wanted[k])
            for k in COMPARED
            if normalise_alarm(found)[k] != wanted[k]
        }:
            changes.append(Change("update", "rule", alarm.rule_id, diff, alarm.name, params))
        else:
            unchanged.append(f"rule {alarm.rule_id}")
    wanted_ids = {a.rule_id for a in spec.alarms}
    stale = sorted(set(current_rules) - wanted_ids)
    kept: list[str] = []
    for rid in stale:
        if prune:
            name = str(current_rules[rid].get("RuleName", ""))
            changes.append(Change("delete", "rule", rid, label="" if name == rid else name))
        else:
            kept.append(rid)
    kept_events = _plan_event_rules(spec, client, changes, unchanged, prune=prune)
    return Plan(changes, unchanged, kept, kept_events, target_warnings(spec))


def _plan_event_rules(
    spec: Spec, client: AlarmClient, changes: list[Change], unchanged: list[str], *, prune: bool
) -> list[str]:
    current = client.event_rules()
    sls = client.sls
    for alarm in spec.event_alarms:
        wanted = _event_wanted(alarm, client.group_id, sls)
        params, targets = event_rule_params(alarm, client.group_id, sls), event_target_params(alarm)
        found = current.get(alarm.rule_name)
        if found is None:
            fields = {k: (None, wanted[k]) for k in EVENT_COMPARED}
            changes.append(
                Change("create", "event rule", alarm.rule_name, fields, alarm.name, (params, targets, False))
            )
            continue
        have = normalise_event_rule(*found)
        if diff := {k: (have[k], wanted[k]) for k in EVENT_COMPARED if have[k] != wanted[k]}:
            # PutEventRuleTargets adds and replaces targets (by Id) but never removes one: a rule that
            # has a target the file no longer wants is deleted and made again
            extra = set(have["ContactGroups"].split(",")) - set(alarm.contact_groups) - {""}
            payload = (params, targets, bool(extra))
            changes.append(Change("update", "event rule", alarm.rule_name, diff, alarm.name, payload))
        else:
            unchanged.append(f"event rule {alarm.rule_name}")
    stale = sorted(set(current) - {a.rule_name for a in spec.event_alarms})
    if prune:
        changes.extend(Change("delete", "event rule", name) for name in stale)
        return []
    return stale


def apply(spec: Spec, client: AlarmClient, *, prune: bool = False) -> Plan:
    """Make CloudMonitor match the file; returns the plan that was carried out (empty when nothing
    changed). Contacts first, then groups, then rules, then deletions."""
    done = plan(spec, client, prune=prune)
    for change in done.changes:
        if change.kind == "contact":
            client.put_contact(change.payload)
        elif change.kind == "group":
            client.put_contact_group(change.payload)
        elif change.kind == "event rule":
            if change.action in ("create", "update"):
                params, targets, recreate = change.payload
                if recreate:
                    client.delete_event_rules([change.name])
                client.put_event_rule(params, targets)
        elif change.action in ("create", "update"):
            client.put_rule(change.payload)
    deletions = [c.name for c in done.changes if c.action == "delete" and c.kind == "rule"]
    if deletions:
        client.delete_rules(deletions)
    event_deletions = [c.name for c in done.changes if c.action == "delete" and c.kind == "event rule"]
    if event_deletions:
        client.delete_event_rules(event_deletions)
    return done


def managed_rules(client: AlarmClient) -> list[dict[str, Any]]:
    """The rules in the account this tool manages, as rows for ``list``."""
    rows = []
    for rid, item in sorted(client.rules().items()):
        norm = normalise_alarm(item)
        rows.append(
            {
                "rule_id": rid,
                "metric": norm["MetricName"],
                "resources": [r["dimension"] for r in json.loads(norm["Resources"])]
                if norm["Resources"].startswith("[")
                else norm["Resources"],
                "condition": f"{norm['Statistics']} {norm['ComparisonOperator']} {norm['Threshold']}",
                "periods": f"{norm['EvaluationCount']} x {norm['Period']}s",
                "level": norm["Level"],
                "contact_groups": norm["ContactGroups"],
                "enabled": bool(item.get("EnableState", True)),
                "alert_state": str(item.get("AlertState", "")),
            }
        )
    return rows


def managed_event_rules(client: AlarmClient) -> list[dict[str, Any]]:
    """The event rules in the account this tool manages, as rows for ``list``."""
    rows = []
    for name, (item, targets) in sorted(client.event_rules().items()):
        norm = normalise_event_rule(item, targets)
        keyword = norm["FlowKeyword"].removeprefix("OR ")
        rows.append(
            {
                "rule_name": name,
                "events": norm["EventNames"],
                "filter": keyword or "(every flow)",
                "level": norm["Level"],
                "contact_groups": norm["ContactGroups"],
                "enabled": norm["State"] == "ENABLED",
                "silence_s": norm["SilenceTime"],
                "description": norm["Description"],
            }
        )
    return rows


# --- check -------------------------------------------------------------------------------------------------

OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    "=": lambda v, t: v == t,
    "!=": lambda v, t: v != t,
}


def evaluate_series(
    values_by_window: Mapping[int, float], *, operator: str, threshold: float, periods: int, period: int
) -> tuple[str, list[tuple[int, float, bool]]]:
    """CMS's evaluation of one series: the latest window with data is compared, then the windows before
    it, one period apart; ``periods`` consecutive breaching windows (no gap) is ALARM, a latest window
    that does not breach (or fewer breaching windows in a row) is OK, no window at all is
    INSUFFICIENT_DATA. Returns the state and the windows behind it, newest first:
    ``[(window_ms, value, breaching)]``."""
    if not values_by_window:
        return INSUFFICIENT, []
    breach = _COMPARE[operator]
    latest = max(values_by_window)
    used = []
    for i in range(periods):
        window = latest - i * period * 1000
        if window not in values_by_window:
            break
        value = values_by_window[window]
        used.append((window, value, breach(value, threshold)))
        if not used[-1][2]:
            break
    state = ALARM if len(used) == periods and all(b for _, _, b in used) else OK
    return state, used


@dataclass
class CheckResult:
    alarm: str
    rule_id: str
    state: str
    condition: str
    series: list[dict[str, Any]]
    kind: str = "metric"
    logs: str | None = None
    """With SLS configured: the flow's log search (over the breaching windows for an ALARM)."""

    def as_dict(self) -> dict[str, Any]:
        out = {
            "alarm": self.alarm,
            "rule_id": self.rule_id,
            "kind": self.kind,
            "state": self.state,
            "condition": self.condition,
            "series": self.series,
        }
        if self.logs:
            out["logs"] = self.logs
        return out


def _condition(alarm: Alarm) -> str:
    unit = " ms" if STATISTICS[alarm.statistic][2] == "duration" else ""
    what = alarm.cms_statistic
    return (
        f"{alarm.metric} {what} {alarm.operator} {_number_text(alarm.threshold)}{unit} "
        f"for {alarm.periods} x {alarm.period}s"
    )


def check(
    spec: Spec,
    reader: Any,
    *,
    end_ms: int | None = None,
    lookback_periods: int = 10,
    sls: SlsSettings | None = None,
) -> list[CheckResult]:
    """Read the last periods of every alarm's series back (DescribeCustomMetricList + DescribeMetricList)
    and evaluate each rule the way CMS does, per series (CMS alarms per resource; nothing is combined
    across series or windows: each value is one series in one window, exactly what CMS compares).

    Only complete windows count (window start + period <= ``end_ms``): the minute in progress is not
    judged on partial data. An alarm is ALARM when any of its series is, else OK when any has data, else
    INSUFFICIENT_DATA.
    ``lookback_periods`` periods beyond the evaluated ones are read, to find the latest window with data.

    Event alarms are not evaluated over windows (CMS notifies on each matching event, then stays silent
    for ``silence``): ``check`` reads the matching events of the last hour (DescribeCustomEventAttribute)
    and says ALARM when there is one, OK when there is none.
    """
    end_ms = int(time.time() * 1000) if end_ms is None else end_ms
    results = []
    for alarm in spec.alarms:
        span_ms = (alarm.periods + lookback_periods) * alarm.period * 1000
        points = readback.read(
            reader,
            alarm.metric,
            alarm.dimensions(),
            period=alarm.period,
            start_ms=end_ms - span_ms,
            end_ms=end_ms,
        )
        by_series = readback.group_by(points, lambda dims: readback_dimension(dims))
        series = []
        for dims_text, group in sorted(by_series.items()):
            values = {
                int(p["time"]): float(p["values"][alarm.cms_statistic])
                for p in group
                if alarm.cms_statistic in p["values"] and int(p["time"]) + alarm.period * 1000 <= end_ms
            }
            state, used = evaluate_series(
                values,
                operator=alarm.operator,
                threshold=alarm.threshold,
                periods=alarm.periods,
                period=alarm.period,
            )
            samples = {int(p["time"]): p["values"].get("SampleCount") for p in group}
            series.append(
                {
                    "dimensions": dims_text,
                    "state": state,
                    "windows": [
                        {
                            "time_ms": w,
                            "value": v,
                            "breaching": b,
                            "samples": samples.get(w),
                        }
                        for w, v, b in used
                    ],
                }
            )
        states = {s["state"] for s in series}
        state = ALARM if ALARM in states else OK if OK in states else INSUFFICIENT
        logs = None
        if state == ALARM:
            first = min(w["time_ms"] for s in series if s["state"] == ALARM for w in s["windows"])
            logs = flow_logs_link(sls, alarm.flow, start_s=first // 1000, end_s=end_ms // 1000)
        results.append(CheckResult(alarm.name, alarm.rule_id, state, _condition(alarm), series, logs=logs))
    results += [_check_events(a, reader, end_ms, sls) for a in spec.event_alarms]
    return results


def _read_events(reader: Any, name: str, start_ms: int) -> list[dict[str, Any]]:
    if hasattr(reader, "events"):
        return reader.events(name, start_ms)
    from langflow_cms.ops.query import describe_custom_events

    return describe_custom_events(
        reader.client, name=name, endpoint=reader.endpoint, start_ms=start_ms, limiter=reader.limiter
    )


def _check_events(alarm: EventAlarm, reader: Any, end_ms: int, sls: SlsSettings | None) -> CheckResult:
    start_ms = end_ms - EVENT_LOOKBACK_S * 1000
    matched = []
    for name in alarm.event_names:
        for event in _read_events(reader, name, start_ms):
            content = event.get("content") or {}
            when = int(event.get("time") or 0)
            if not start_ms <= when <= end_ms:
                continue
            if alarm.flow == ALL_FLOWS or str(content.get(contract.FLOW, "")) == alarm.flow:
                matched.append(
                    {
                        "name": name,
                        "time_ms": when,
                        "run_id": content.get("run_id"),
                        "sls": content.get("sls"),
                    }
                )
    matched.sort(key=lambda e: -e["time_ms"])
    flow = "every flow" if alarm.flow == ALL_FLOWS else f"flow {alarm.flow}"
    condition = f"any {', '.join(alarm.event_names)} event of {flow}"
    state = ALARM if matched else OK
    logs = None
    if matched:
        logs = flow_logs_link(
            sls,
            alarm.flow,
            start_s=matched[-1]["time_ms"] // 1000 - events.LINK_MARGIN_S,
            end_s=matched[0]["time_ms"] // 1000 + events.LINK_MARGIN_S,
        )
    series = [
        {
            "dimensions": f"{contract.FLOW}={alarm.flow}",
            "state": state,
            "events": matched[:10],
            "count": len(matched),
            "since_ms": start_ms,
        }
    ]
    return CheckResult(alarm.name, alarm.rule_name, state, condition, series, kind="event", logs=logs)


def _clock(ms: int) -> str:
    return time.strftime("%H:%M", time.gmtime(ms / 1000))


def render_check(results: Sequence[CheckResult]) -> str:
    """One block per alarm: its state and condition, then each series with the windows behind it."""
    lines = []
    for result in results:
        lines.append(f"{result.state:<17} {result.alarm}  [{result.condition}]")
        if result.kind == "event":
            (found,) = result.series
            latest = found["events"][0] if found["events"] else None
            lines.append(
                f"    {found['count']} in the last {EVENT_LOOKBACK_S // 60} min"
                + (f", latest {_clock(latest['time_ms'])} run {latest['run_id']}" if latest else "")
            )
            if result.logs:
                lines.append(f"    logs: {result.logs}")
            continue
        if result.logs:
            lines.append(f"    logs: {result.logs}")
        if not result.series:
            lines.append("    no data in the range (no series matches)")
        for series in result.series:
            windows = ", ".join(
                _clock(w["time_ms"])
                + "="
                + _number_text(round(w["value"], 3))
                + ("!" if w["breaching"] else "")
                for w in series["windows"]
            )
            lines.append(f"    {series['state']:<17} {series['dimensions']}: {windows or '-'}")
    lines.append("(window start UTC = value; ! breaches the threshold; newest first; event times UTC)")
    return "\n".join(lines)


class PermissionNamingReader:
    """Wraps a :class:`langflow_cms.ops.query.Reader` so a permission error names the RAM action."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    def _wrap(self, action: str, call: Callable[[], Any]) -> Any:
        from aliyunsdkcore.acs_exception.exceptions import ServerException

        from langflow_cms.ops.query import CmsQueryError

        try:
            return call()
        except ServerException as exc:
            if is_permission_error(exc.get_error_code(), exc.get_http_status()):
                raise AlarmError(
                    permission_message(action, exc.get_error_msg()), exc.get_error_code(), RAM_ACTIONS[action]
                ) from None
            raise
        except CmsQueryError as exc:
            if is_permission_error(exc.code):
                raise AlarmError(
                    permission_message(action, exc.message), exc.code, RAM_ACTIONS[action]
                ) from None
            raise

    def series(self, metric_name: str, **filters: Any) -> list[dict[str, Any]]:
        return self._wrap("DescribeCustomMetricList", lambda: self.reader.series(metric_name, **filters))

    def points(self, metric_name: str, dimensions: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return self._wrap("DescribeMetricList", lambda: self.reader.points(metric_name, dimensions, **kwargs))

    def events(self, name: str, start_ms: int) -> list[dict[str, Any]]:
        return self._wrap("DescribeCustomEventAttribute", lambda: _read_events(self.reader, name, start_ms))
