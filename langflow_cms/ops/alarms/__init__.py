"""Alarms as code: a monitoring spec file (TOML) turned into CloudMonitor contacts, contact groups,
alarm rules and event rules, planned as a diff, applied idempotently and checked against the data CMS holds.

One module per concern:

* :mod:`.model`: the spec's vocabulary and values (Contact, ContactGroup, Alarm, EventAlarm, Spec);
* :mod:`.spec`: :func:`load_spec` reads and validates the file (docs/alarms.md documents every field);
* :mod:`.rules`: each alarm as the exact ``PutCustomMetricRule`` parameters. Alarms target the fleet
  stream (contract.FLEET_*): series without an ``instance`` dimension, so a rule survives restarts and
  scaling. ``RuleId`` is ``langflow-cms-`` + a slug of the alarm name: deterministic, so a second apply
  updates the same rule, and recognisable, so ``--prune`` only ever deletes rules this tool made;
* :mod:`.event_rules`: ``[[event_alarms]]`` ("any failure of flow X -> contact group") as CMS event rules:
  PutEventRule with ``EventType=CUSTOM``, the reporter's event names (contract.EVENT_*) in
  ``EventPattern.1.NameList`` and the flow as a keyword of the event's JSON content (``"flow":"poem"``),
  plus PutEventRuleTargets for the contact groups (describe: DescribeEventRuleList,
  DescribeEventRuleTargetList; delete: DeleteEventRules; PutCustomEventRule has neither). With SLS
  configured, :func:`flow_logs_link` gives the SLS console search for one flow;
* :mod:`.client`: :class:`AlarmClient` makes the calls through the one CMS client
  (:class:`langflow_cms.delivery.transport.Transport`) and names the missing RAM action on a 403;
* :mod:`.plan`: :func:`plan`, :func:`apply`, :func:`managed_rules`, :func:`managed_event_rules`;
* :mod:`.check`: :func:`check`, CMS's evaluation of every rule over the data read back.

The streak rule behind ``runs_in_a_row`` lives with the runtime (:mod:`langflow_cms.pipeline.streaks`).
This package exports what the CLI runs; the other names live in their modules.
Webhook URLs carry a token: they come from environment variables, are registered with
:func:`langflow_cms.redact.register_secret`, and are only ever shown through :func:`mask_webhook`.
"""

from langflow_cms.ops.alarms.check import (
    ALARM,
    CheckResult,
    PermissionNamingReader,
    check,
    evaluate_series,
    render_check,
)
from langflow_cms.ops.alarms.client import AlarmClient, AlarmError
from langflow_cms.ops.alarms.event_rules import SlsSettings, flow_logs_link
from langflow_cms.ops.alarms.model import Spec, SpecError, mask_webhook
from langflow_cms.ops.alarms.plan import Plan, apply, managed_event_rules, managed_rules, plan
from langflow_cms.ops.alarms.rules import rule_params
from langflow_cms.ops.alarms.spec import load_spec, parse_spec

__all__ = [
    "ALARM",
    "AlarmClient",
    "AlarmError",
    "CheckResult",
    "PermissionNamingReader",
    "Plan",
    "SlsSettings",
    "Spec",
    "SpecError",
    "apply",
    "check",
    "evaluate_series",
    "flow_logs_link",
    "load_spec",
    "managed_event_rules",
    "managed_rules",
    "mask_webhook",
    "parse_spec",
    "plan",
    "render_check",
    "rule_params",
]
