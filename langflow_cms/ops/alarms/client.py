"""The CMS calls of the alarms commands, through the one CMS client
(:class:`langflow_cms.delivery.transport.Transport`: signing, retries, deadlines, errors); a permission
error becomes an :class:`AlarmError` that names the missing RAM action.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from langflow_cms.delivery.transport import CmsError, Transport
from langflow_cms.ops.alarms.event_rules import SlsSettings
from langflow_cms.ops.alarms.model import RULE_PREFIX, Contact, ContactGroup

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


class AlarmError(RuntimeError):
    """A CMS call failed; ``code`` is the CMS error code, ``ram_action`` the missing permission if any."""

    def __init__(self, message: str, code: str = "", ram_action: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.ram_action = ram_action


PERMISSION_CODES = ("Forbidden", "AccessForbidden", "NoPermission", "403")


def is_permission_error(code: str, http_status: int | None = None) -> bool:
    return code.startswith("Forbidden") or code in PERMISSION_CODES or http_status == 403


def permission_message(action: str, detail: str) -> str:
    ram = RAM_ACTIONS.get(action, f"cms:{action}")
    return f"permission denied for {action}: grant the RAM action '{ram}' (policies/alarms.json). {detail}"


def denied(action: str, code: str, detail: str, http_status: int | None = None) -> AlarmError | None:
    """The error naming the RAM action ``action`` needs when the failure is a permission error, else None."""
    if not is_permission_error(code, http_status):
        return None
    return AlarmError(permission_message(action, detail), code, RAM_ACTIONS.get(action))


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
        return cls(Transport(config, credential_provider(dev=config.dev, environ=environ)), **kwargs)

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
            raise denied(action, exc.code, str(exc), exc.http_status) or AlarmError(
                f"{action} failed: {exc}", exc.code
            ) from None

    def _pages(
        self,
        action: str,
        path: tuple[str, str],
        params: Mapping[str, str] | None = None,
        page_key: str = "PageNumber",
    ) -> list[Any]:
        """Every item of a paged Describe* list: ``reply[path[0]][path[1]]`` of each page, 100 a page."""
        out: list[Any] = []
        for page in range(1, 101):
            body = self.call(action, {**(params or {}), page_key: str(page), "PageSize": "100"})
            found = (body.get(path[0]) or {}).get(path[1]) or []
            out += found
            if len(found) < 100 or len(out) >= int(body.get("Total") or 0):
                break
        return out

    def contacts(self) -> dict[str, dict[str, Any]]:
        return {c["Name"]: c for c in self._pages("DescribeContactList", ("Contacts", "Contact"))}

    def contact_groups(self) -> dict[str, dict[str, Any]]:
        found = self._pages("DescribeContactGroupList", ("ContactGroupList", "ContactGroup"))
        return {g["Name"]: g for g in found}

    def rules(self) -> dict[str, dict[str, Any]]:
        """The rules this tool manages (RuleId prefix), by RuleId. Every rule is listed and filtered here:
        DescribeMetricRuleList's ``RuleName`` filter is documented as fuzzy, not as a prefix match."""
        found = self._pages("DescribeMetricRuleList", ("Alarms", "Alarm"), page_key="Page")
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
        found = self._pages("DescribeEventRuleList", ("EventRules", "EventRule"), {"NamePrefix": RULE_PREFIX})
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
