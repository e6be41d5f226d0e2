"""``plan`` and ``apply``: the file compared with CloudMonitor as a list of changes (contacts, groups,
rules, event rules), carried out in that order; ``list``'s rows of the managed rules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langflow_cms.ops.alarms.client import AlarmClient
from langflow_cms.ops.alarms.event_rules import (
    EVENT_COMPARED,
    event_rule_params,
    event_target_params,
    event_wanted,
    normalise_event_rule,
)
from langflow_cms.ops.alarms.model import Contact, Spec, mask_webhook
from langflow_cms.ops.alarms.rules import (
    COMPARED,
    normalise_alarm,
    normalise_params,
    rule_params,
    target_warnings,
)


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
        wanted = event_wanted(alarm, client.group_id, sls)
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
