"""Reading the monitoring TOML: :func:`load_spec` / :func:`parse_spec` validate every table and field
(docs/alarms.md) and raise :class:`SpecError` naming the file, the table and the field. Webhook URLs come
from environment variables and are registered as secrets.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from langflow_cms import contract
from langflow_cms.ops.alarms.model import (
    ALL_FLOWS,
    COMPARISONS,
    DEFAULT_HOURS,
    DEFAULT_SILENCE_S,
    EVENT_KINDS,
    LEVELS,
    STATISTICS,
    Alarm,
    Contact,
    ContactGroup,
    EventAlarm,
    Spec,
    SpecError,
    register_webhook,
)

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}")
_HOURS_RE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")
_DIM_RE = re.compile(r"[A-Za-z0-9._\-/\\]{1,64}")
_DURATION_RE = re.compile(r"(\d+)\s*(s|m|h|d)?")


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
            register_webhook(webhook)
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
    if kind == "streak":
        operator, threshold, periods, period, slower = _streak_condition(table, comparisons, where)
    else:
        operator, threshold, periods, period, slower = _threshold_condition(
            table, comparisons, statistic, kind, where
        )
    level = _level(table, where)
    names = _contact_groups(table, groups, where)
    hours = str(table.get("effective_hours", DEFAULT_HOURS))
    if not _HOURS_RE.fullmatch(hours):
        raise SpecError(f"{where}: effective_hours must be hh:mm-hh:mm, e.g. 08:00-20:00")
    silence = _duration_s(table.get("silence", DEFAULT_SILENCE_S), f"{where}: silence")
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
        where=_where(table, where),
        slower_than_ms=slower,
    )


def _streak_condition(table: Mapping[str, Any], comparisons: list[str], where: str) -> tuple:
    """``runs_in_a_row``: (operator, threshold, periods, period, slower_than_ms)."""
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
    return ">=", float(runs), 1, 60, slower


def _threshold_condition(
    table: Mapping[str, Any], comparisons: list[str], statistic: str, kind: str, where: str
) -> tuple:
    """Every other statistic: one ``above``/``below``... comparison, periods and period."""
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
    raw = table[key]
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise SpecError(f"{where}: {key} must be a number")
    if kind == "ratio" and not 0 <= raw <= 1:
        raise SpecError(f"{where}: an error rate is a fraction between 0 and 1 (0.05 = 5 %)")
    periods = table.get("periods", 1)
    if not isinstance(periods, int) or isinstance(periods, bool) or periods < 1:
        raise SpecError(f"{where}: periods must be an integer >= 1")
    period = _duration_s(table.get("period", 60), f"{where}: period")
    if period not in contract.PERIODS:
        raise SpecError(f"{where}: period must be 60 or 300 (CMS computes raw data at those two only)")
    return COMPARISONS[key.removesuffix("_ms")], float(raw), periods, period, None


def _where(table: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    """The ``where`` table: extra dimension = value pairs the rule names (never the reserved ones)."""
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
    return tuple(sorted(extra.items()))


_EVENT_ALARM_FIELDS = ("name", "flow", "events", "level", "contact_groups", "silence", "enabled")


def _name_list(value: Any, known: Iterable[str], where: str, empty: str, unknown: str) -> tuple[str, ...]:
    """A name or a non-empty list of names, each one of ``known``. ``empty`` is the message for anything
    else, ``unknown`` the one for names not known (``{}`` stands for them)."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise SpecError(f"{where}: {empty}")
    missing = [n for n in names if n not in known]
    if missing:
        raise SpecError(f"{where}: {unknown.format(missing)}")
    return tuple(names)


def _contact_groups(table: Mapping[str, Any], groups: set[str], where: str) -> tuple[str, ...]:
    return _name_list(
        table.get("contact_groups"),
        groups,
        where,
        "contact_groups must name at least one contact group",
        "unknown contact groups {} (declare them under [groups])",
    )


def _level(table: Mapping[str, Any], where: str) -> str:
    level = str(table.get("level", "WARN")).upper()
    if level not in LEVELS:
        raise SpecError(f"{where}: level must be one of {', '.join(LEVELS)}")
    return level


def _event_alarm(table: Any, groups: set[str], where: str) -> EventAlarm:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: must be a table")
    _unknown(table, _EVENT_ALARM_FIELDS, where)
    name = _name(_str(table, "name", where), where)
    where = f"{where} ({name})"
    flow = _str(table, "flow", where)
    if flow != ALL_FLOWS and not _DIM_RE.fullmatch(flow):
        raise SpecError(f"{where}: flow {flow!r} is not a flow name as the events carry it (or '*')")
    kinds = _name_list(
        table.get("events", ["flow_failed"]),
        EVENT_KINDS,
        where,
        f"events must be a non-empty list of {', '.join(EVENT_KINDS)}",
        f"unknown events {{}}: use {', '.join(EVENT_KINDS)}",
    )
    level = _level(table, where)
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
    return parse_spec(read_toml(path, SpecError), str(path), environ, secrets=secrets)


def read_toml(path: str | Path, error: type[Exception]) -> dict[str, Any]:
    """The monitoring TOML as a dict; ``error`` (naming the file) when it cannot be read or parsed. The
    alarms and the guard (its ``[guard]`` section) read the same file this way."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise error(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
