"""The emulator's control-plane and event actions through the real SDK request classes over real HTTP:
alarm rules, contacts, contact groups, custom events, the STS GetCallerIdentity stand-in, faults on events,
and the admin routes that expose what was stored. Sources are cited per test (cms-api.md is
/work/shared/reference/cms-api.md; "Tea" is the alibabacloud_cms20190101 model docstring of the action).
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import pytest
from aliyunsdkcms.request.v20190101.DeleteContactGroupRequest import DeleteContactGroupRequest
from aliyunsdkcms.request.v20190101.DeleteContactRequest import DeleteContactRequest
from aliyunsdkcms.request.v20190101.DeleteEventRulesRequest import DeleteEventRulesRequest
from aliyunsdkcms.request.v20190101.DeleteMetricRulesRequest import DeleteMetricRulesRequest
from aliyunsdkcms.request.v20190101.DescribeContactGroupListRequest import DescribeContactGroupListRequest
from aliyunsdkcms.request.v20190101.DescribeContactListRequest import DescribeContactListRequest
from aliyunsdkcms.request.v20190101.DescribeCustomEventAttributeRequest import (
    DescribeCustomEventAttributeRequest,
)
from aliyunsdkcms.request.v20190101.DescribeEventRuleListRequest import DescribeEventRuleListRequest
from aliyunsdkcms.request.v20190101.DescribeEventRuleTargetListRequest import (
    DescribeEventRuleTargetListRequest,
)
from aliyunsdkcms.request.v20190101.DescribeMetricRuleListRequest import DescribeMetricRuleListRequest
from aliyunsdkcms.request.v20190101.DisableMetricRulesRequest import DisableMetricRulesRequest
from aliyunsdkcms.request.v20190101.EnableMetricRulesRequest import EnableMetricRulesRequest
from aliyunsdkcms.request.v20190101.PutContactGroupRequest import PutContactGroupRequest
from aliyunsdkcms.request.v20190101.PutContactRequest import PutContactRequest
from aliyunsdkcms.request.v20190101.PutCustomEventRequest import PutCustomEventRequest
from aliyunsdkcms.request.v20190101.PutCustomEventRuleRequest import PutCustomEventRuleRequest
from aliyunsdkcms.request.v20190101.PutCustomMetricRuleRequest import PutCustomMetricRuleRequest
from aliyunsdkcms.request.v20190101.PutEventRuleRequest import PutEventRuleRequest
from aliyunsdkcms.request.v20190101.PutEventRuleTargetsRequest import PutEventRuleTargetsRequest
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest

from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET
from langflow_cms.emulator import Emulator

NO_PROXY = {"http": None, "https": None}
USER_ID = "1357924680"
T0 = 1_795_625_400_000


@pytest.fixture(scope="module")
def emu():
    with Emulator(port=0, user_id=USER_ID) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _fresh(emu):
    emu.reset()


@pytest.fixture
def client() -> AcsClient:
    return AcsClient(
        DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, "cn-hangzhou", auto_retry=False, proxy=NO_PROXY
    )


def act(client, emu, request_class, **setters) -> dict:
    """Build an SDK request with ``set_<Name>(value)`` for each keyword and send it to the emulator."""
    request = request_class()
    request.set_endpoint(emu.endpoint)
    for name, value in setters.items():
        getattr(request, f"set_{name}")(value)
    return json.loads(client.do_action_with_exception(request))


def refused(client, emu, request_class, **setters) -> ServerException:
    with pytest.raises(ServerException) as info:
        act(client, emu, request_class, **setters)
    return info.value


def admin(emu, route: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{emu.endpoint}/_emulator/{route}", timeout=5) as response:
        return json.loads(response.read())


def contact(client, emu, name="oncall", **overrides) -> dict:
    setters = {
        "ContactName": name,
        "Describe": "on-call engineer",
        "ChannelsDingWebHook": "https://oapi.dingtalk.com/robot/send?access_token=x",
    }
    setters.update(overrides)
    return act(client, emu, PutContactRequest, **{k: v for k, v in setters.items() if v is not None})


def group(client, emu, name="langflow-oncall", members=("oncall",), **overrides) -> dict:
    setters = {"ContactGroupName": name, "Describe": "langflow alerts", "ContactNamess": list(members)}
    setters.update(overrides)
    return act(client, emu, PutContactGroupRequest, **{k: v for k, v in setters.items() if v is not None})


RULE = {
    "RuleId": "langflow-errors",
    "RuleName": "langflow error rate",
    "MetricName": "langflow_run_errors",
    "GroupId": "0",
    "Resources": json.dumps([{"groupId": 0, "dimension": "flow=poem"}]),
    "Statistics": "Sum",
    "ComparisonOperator": ">=",
    "Threshold": "5",
    "EvaluationCount": "3",
    "Period": "300",
    "Level": "CRITICAL",
    "ContactGroups": "langflow-oncall",
    "EffectiveInterval": "00:00-23:59",
    "SilenceTime": "3600",
}


def metric_rule(client, emu, **overrides) -> dict:
    setters = {**RULE, **overrides}
    return act(client, emu, PutCustomMetricRuleRequest, **{k: v for k, v in setters.items() if v is not None})


def rule_list(client, emu, **setters) -> dict:
    return act(client, emu, DescribeMetricRuleListRequest, **setters)


@pytest.fixture
def oncall(client, emu):
    contact(client, emu)
    group(client, emu)


# --- alarm rules --------------------------------------------------------------------------------------


def test_custom_metric_rule_round_trip(client, emu, oncall):
    # PutCustomMetricRule answers Code/Message/RequestId/Success (Tea model); DescribeMetricRuleList
    # answers Alarms.Alarm[], Total, Success, Code (Tea model; cms-api.md §6.3).
    body = metric_rule(client, emu)
    assert body["Code"] == "200" and body["Success"] is True and body["RequestId"]
    listed = rule_list(client, emu)
    assert listed["Success"] is True and int(listed["Code"]) == 200 and listed["Total"] == "1"
    (alarm,) = listed["Alarms"]["Alarm"]
    assert alarm["RuleId"] == "langflow-errors" and alarm["RuleName"] == "langflow error rate"
    assert (
        alarm["Namespace"] == f"acs_customMetric_{USER_ID}" and alarm["MetricName"] == "langflow_run_errors"
    )
    assert alarm["ContactGroups"] == "langflow-oncall" and alarm["EnableState"] is True
    assert alarm["Period"] == "300" and alarm["SilenceTime"] == 3600
    assert alarm["Escalations"]["Critical"]["Statistics"] == "Sum"
    assert alarm["Escalations"]["Critical"]["Threshold"] == "5"
    assert alarm["Escalations"]["Critical"]["Times"] == 3
    (stored,) = emu.rules()
    assert stored["ComparisonOperator"] == ">=" and stored["Kind"] == "metric"


def test_existing_rule_id_updates_a_new_one_creates(client, emu, oncall):
    # "You can specify an existing ID to modify the corresponding alert rule or specify a new ID to create
    # an alert rule" (Tea docstring of PutCustomMetricRule.RuleId).
    metric_rule(client, emu)
    metric_rule(client, emu, Threshold="9", Level="WARN")
    assert [(r["RuleId"], r["Threshold"], r["Level"]) for r in emu.rules()] == [
        ("langflow-errors", "9", "WARN")
    ]
    metric_rule(
        client, emu, RuleId="langflow-latency", MetricName="langflow_run_latency_ms", Statistics="P95"
    )
    assert [r["RuleId"] for r in emu.rules()] == ["langflow-errors", "langflow-latency"]
    assert rule_list(client, emu)["Total"] == "2"


@pytest.mark.parametrize(
    "missing",
    [
        "RuleId",
        "MetricName",
        "Resources",
        "Statistics",
        "ComparisonOperator",
        "Threshold",
        "EvaluationCount",
        "Level",
        "ContactGroups",
    ],
)
def test_rule_without_a_required_parameter_is_missing_parameter(client, emu, oncall, missing):
    # Required per the Tea docstrings of PutCustomMetricRule ("This parameter is required.").
    error = refused(
        client, emu, PutCustomMetricRuleRequest, **{k: v for k, v in RULE.items() if k != missing}
    )
    assert (error.get_error_code(), error.get_http_status()) == ("MissingParameter", 400)
    assert missing in error.get_error_msg()
    assert emu.rules() == []


@pytest.mark.parametrize(
    "bad",
    [
        {"ComparisonOperator": "GreaterThanThreshold"},  # PutCustomMetricRule takes >=, =, <=, >, <, !=
        {"ComparisonOperator": "=>"},
        {"Statistics": "Mean"},  # not a documented statistic
        {"Statistics": "P42"},
        {"EvaluationCount": "0"},
        {"EvaluationCount": "two"},
        {"Period": "90"},  # a multiple of 60
        {"Period": "0"},
        {"Level": "FATAL"},  # CRITICAL, WARN, INFO
        {"Level": "critical"},
        {"EffectiveInterval": "9:00-18:00"},  # hh:mm-hh:mm within 00:00-23:59
        {"EffectiveInterval": "00:00-24:00"},
        {"SilenceTime": "1h"},
        {"Threshold": "high"},
        {"ContactGroups": "nobody-home"},  # strict: the contact group must exist (inferred)
        {"Resources": "flow=poem"},  # strict: a JSON array (inferred)
    ],
)
def test_invalid_rule_values_are_invalid_parameter(client, emu, oncall, bad):
    # Value sets from the Tea docstrings of PutCustomMetricRule (cms-api.md §6.3).
    error = refused(client, emu, PutCustomMetricRuleRequest, **{**RULE, **bad})
    assert (error.get_error_code(), error.get_http_status()) == ("InvalidParameter", 400)
    assert emu.rules() == []


@pytest.mark.parametrize("operator", [">=", "=", "<=", ">", "<", "!="])
def test_every_documented_operator_is_accepted(client, emu, oncall, operator):
    assert metric_rule(client, emu, ComparisonOperator=operator)["Code"] == "200"


def test_rule_list_filters_and_pages(client, emu, oncall):
    # DescribeMetricRuleList: RuleIds (comma-separated), RuleName (fuzzy), Namespace, MetricName,
    # Page/PageSize default 1/10 (Tea docstrings).
    for i in range(12):
        metric_rule(client, emu, RuleId=f"r{i:02d}", RuleName=f"rule {i:02d}", MetricName=f"m{i % 3}")
    assert rule_list(client, emu)["Total"] == "12"
    assert len(rule_list(client, emu)["Alarms"]["Alarm"]) == 10
    page2 = rule_list(client, emu, Page="2", PageSize="5")["Alarms"]["Alarm"]
    assert [a["RuleId"] for a in page2] == ["r05", "r06", "r07", "r08", "r09"]
    by_ids = rule_list(client, emu, RuleIds="r01,r03")["Alarms"]["Alarm"]
    assert [a["RuleId"] for a in by_ids] == ["r01", "r03"]
    assert rule_list(client, emu, RuleName="rule 1")["Total"] == "2"  # "rule 10", "rule 11"
    assert rule_list(client, emu, MetricName="m0")["Total"] == "4"
    assert rule_list(client, emu, Namespace=emu.namespace)["Total"] == "12"
    assert rule_list(client, emu, Namespace="acs_ecs_dashboard")["Total"] == "0"


def test_delete_enable_and_disable_rules(client, emu, oncall):
    # DeleteMetricRules takes Id.N; EnableMetricRules/DisableMetricRules take RuleId.N (SDK classes).
    for rule_id in ("a", "b", "c"):
        metric_rule(client, emu, RuleId=rule_id)
    assert act(client, emu, DisableMetricRulesRequest, RuleIds=["a", "b"])["Code"] == "200"
    assert rule_list(client, emu, EnableState="false")["Total"] == "2"
    act(client, emu, EnableMetricRulesRequest, RuleIds=["a"])
    assert [a["RuleId"] for a in rule_list(client, emu, EnableState="true")["Alarms"]["Alarm"]] == ["a", "c"]
    metric_rule(client, emu, RuleId="b", Threshold="7")  # an update keeps the rule disabled
    assert {r["RuleId"]: r["EnableState"] for r in emu.rules()}["b"] is False
    assert act(client, emu, DeleteMetricRulesRequest, Ids=["a", "c"])["Success"] is True
    assert [r["RuleId"] for r in emu.rules()] == ["b"]
    error = refused(client, emu, DeleteMetricRulesRequest, Ids=["b", "gone"])  # inferred 404
    assert (error.get_error_code(), error.get_http_status()) == ("404", 404)
    assert [r["RuleId"] for r in emu.rules()] == ["b"]  # nothing deleted


def test_custom_event_rule(client, emu, oncall):
    # PutCustomEventRule: GroupId, RuleId, RuleName, EventName, ContactGroups, Threshold, Level required;
    # Period a multiple of 60, default 300 (Tea docstrings).
    setters = {
        "RuleId": "flow-failures",
        "RuleName": "flow failures",
        "EventName": "langflow_run_failed",
        "GroupId": "0",
        "ContactGroups": "langflow-oncall",
        "Threshold": "1",
        "Level": "WARN",
    }
    assert act(client, emu, PutCustomEventRuleRequest, **setters)["Success"] is True
    (stored,) = emu.rules()
    assert (
        stored["Kind"] == "event" and stored["Period"] == 300 and stored["EventName"] == "langflow_run_failed"
    )
    error = refused(client, emu, PutCustomEventRuleRequest, **{**setters, "Period": "45"})
    assert error.get_error_code() == "InvalidParameter"
    error = refused(
        client, emu, PutCustomEventRuleRequest, **{k: v for k, v in setters.items() if k != "EventName"}
    )
    assert error.get_error_code() == "MissingParameter"
    # Listed and deleted with the metric-rule actions (a guess: the SDK has no describe/delete for them).
    (alarm,) = rule_list(client, emu)["Alarms"]["Alarm"]
    assert alarm["SourceType"] == "EVENT" and alarm["MetricName"] == "langflow_run_failed"
    act(client, emu, DeleteMetricRulesRequest, Ids=["flow-failures"])
    assert emu.rules() == []


def test_event_rule_the_documented_way(client, emu, oncall):
    # PutEventRule (EventType=CUSTOM) + PutEventRuleTargets, listed by DescribeEventRuleList and
    # DescribeEventRuleTargetList, removed by DeleteEventRules (SDK classes; Tea models).
    pattern = {"Product": "CustomEvent", "NameList": ["langflow_run_failed"], "LevelList": ["CRITICAL"]}
    body = act(
        client, emu, PutEventRuleRequest, RuleName="flow-failed", EventType="CUSTOM", EventPatterns=[pattern]
    )
    assert body["Code"] == "200" and body["Success"] is True
    targets = act(
        client,
        emu,
        PutEventRuleTargetsRequest,
        RuleName="flow-failed",
        ContactParameterss=[{"Id": "1", "ContactGroupName": "langflow-oncall", "Level": "3"}],
        WebhookParameterss=[
            {"Id": "2", "Protocol": "http", "Url": "https://hooks.example/cms", "Method": "POST"}
        ],
    )
    assert targets["Success"] is True
    listed = act(client, emu, DescribeEventRuleListRequest, NamePrefix="flow")
    assert listed["Total"] == 1
    (rule,) = listed["EventRules"]["EventRule"]
    assert (rule["Name"], rule["EventType"], rule["State"]) == ("flow-failed", "CUSTOM", "ENABLED")
    (shown,) = rule["EventPattern"]["EventPattern"]
    assert shown["NameList"]["NameList"] == ["langflow_run_failed"] and shown["Product"] == "CustomEvent"
    got = act(client, emu, DescribeEventRuleTargetListRequest, RuleName="flow-failed")
    assert got["ContactParameters"]["ContactParameter"][0]["ContactGroupName"] == "langflow-oncall"
    assert got["WebhookParameters"]["WebhookParameter"][0]["Url"] == "https://hooks.example/cms"
    assert act(client, emu, DescribeEventRuleListRequest, NamePrefix="other")["Total"] == 0
    assert emu.event_rules()[0]["Targets"]["Contact"][0]["Id"] == "1"

    # Required: RuleName and EventPattern.N.Product; unknown rules and groups are refused.
    assert refused(client, emu, PutEventRuleRequest, RuleName="x").get_error_code() == "MissingParameter"
    error = refused(client, emu, PutEventRuleRequest, RuleName="x", EventPatterns=[{"NameList": ["a"]}])
    assert error.get_error_code() == "MissingParameter"
    error = refused(
        client,
        emu,
        PutEventRuleTargetsRequest,
        RuleName="flow-failed",
        ContactParameterss=[{"Id": "3", "ContactGroupName": "ghost", "Level": "3"}],
    )
    assert error.get_error_code() == "InvalidParameter"  # strict (inferred)
    assert refused(client, emu, DescribeEventRuleTargetListRequest, RuleName="nope").get_http_status() == 404

    assert act(client, emu, DeleteEventRulesRequest, RuleNamess=["flow-failed"])["Success"] is True
    assert emu.event_rules() == [] and admin(emu, "event-rules")["event_rules"] == []


# --- contacts and contact groups ----------------------------------------------------------------------


def test_contacts_and_groups_round_trip(client, emu):
    # PutContact: ContactName and Describe required, Channels.* (cms-api.md §6.4); DescribeContactList
    # answers Contacts.Contact[] with Channels and ContactGroups (Tea model).
    assert contact(client, emu, ChannelsMail="oncall@example.com")["Success"] is True
    contact(client, emu, "backup", ChannelsDingWebHook=None, ChannelsMail="backup@example.com")
    assert group(client, emu, members=["oncall", "backup"])["Code"] == "200"

    listed = act(client, emu, DescribeContactListRequest)
    assert listed["Total"] == 2
    first = listed["Contacts"]["Contact"][0]
    assert first["Name"] == "oncall" and first["Desc"] == "on-call engineer"
    assert first["Channels"]["Mail"] == "oncall@example.com"
    assert first["Channels"]["DingWebHook"].startswith("https://oapi.dingtalk.com/")
    assert first["ContactGroups"]["ContactGroup"] == ["langflow-oncall"]
    only = act(client, emu, DescribeContactListRequest, ContactName="backup")["Contacts"]["Contact"]
    assert [c["Name"] for c in only] == ["backup"]

    groups = act(client, emu, DescribeContactGroupListRequest)
    assert groups["Total"] == 1 and groups["ContactGroups"]["ContactGroup"] == ["langflow-oncall"]
    (detail,) = groups["ContactGroupList"]["ContactGroup"]
    assert detail["Contacts"]["Contact"] == ["oncall", "backup"] and detail["Describe"] == "langflow alerts"

    assert [c["Name"] for c in emu.contacts()] == ["oncall", "backup"]
    assert emu.contact_groups()[0]["Contacts"] == ["oncall", "backup"]


def test_put_contact_again_updates_it(client, emu):
    contact(client, emu)
    contact(client, emu, Describe="new owner", ChannelsMail="x@example.com")
    (stored,) = emu.contacts()
    assert stored["Desc"] == "new owner" and stored["Channels"]["Mail"] == "x@example.com"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"ContactName": None}, "MissingParameter"),
        ({"Describe": None}, "MissingParameter"),
        ({"ChannelsMail": "not-an-address"}, "InvalidParameter"),  # strict (inferred)
        ({"ChannelsDingWebHook": "oapi.dingtalk.com/robot"}, "InvalidParameter"),  # strict (inferred)
    ],
)
def test_invalid_contacts_are_refused(client, emu, overrides, code):
    with pytest.raises(ServerException) as info:
        contact(client, emu, **overrides)
    assert info.value.get_error_code() == code and emu.contacts() == []


def test_group_needs_a_name_and_known_members(client, emu):
    contact(client, emu)
    with pytest.raises(ServerException) as info:
        group(client, emu, ContactGroupName=None)
    assert info.value.get_error_code() == "MissingParameter"
    with pytest.raises(ServerException) as info:
        group(client, emu, members=["oncall", "ghost"])  # strict (inferred)
    assert info.value.get_error_code() == "InvalidParameter" and emu.contact_groups() == []


def test_delete_contact_and_group(client, emu):
    contact(client, emu)
    contact(client, emu, "backup")
    group(client, emu, members=["oncall", "backup"])
    assert act(client, emu, DeleteContactRequest, ContactName="oncall")["Success"] is True
    assert [c["Name"] for c in emu.contacts()] == ["backup"]
    assert emu.contact_groups()[0]["Contacts"] == ["backup"]  # it left the group too (a guess)
    act(client, emu, DeleteContactGroupRequest, ContactGroupName="langflow-oncall")
    assert emu.contact_groups() == []
    error = refused(client, emu, DeleteContactRequest, ContactName="oncall")  # inferred 404
    assert (error.get_error_code(), error.get_http_status()) == ("404", 404)
    assert refused(client, emu, DeleteContactGroupRequest, ContactGroupName="x").get_http_status() == 404


# --- custom events ------------------------------------------------------------------------------------


def event(name="langflow_run_failed", content="flow poem failed: TimeoutError", **fields) -> dict:
    return {"EventName": name, "Content": content, **fields}


def test_put_custom_event_is_stored_and_described(client, emu):
    # PutCustomEvent: EventName and Content required, GroupId default 0, Time ms or yyyyMMddTHHmmss.SSSZ
    # (cms-api.md §2.2); answer {"Code":"200","Message":"success"}.
    body = act(
        client,
        emu,
        PutCustomEventRequest,
        EventInfos=[
            event(Time=str(T0)),
            event("langflow_run_slow", "flow poem took 31 s", GroupId="7", Time="20261125T101010.000+0000"),
        ],
    )
    assert (body["Code"], body["Message"]) == ("200", "success")
    stored = emu.events()
    assert [(e["name"], e["group_id"], e["time"]) for e in stored] == [
        ("langflow_run_failed", "0", T0),
        ("langflow_run_slow", "7", 1_795_601_410_000),  # 2026-11-25T10:10:10Z
    ]
    # DescribeCustomEventAttribute answers CustomEvents.CustomEvent[{Id, GroupId, Name, Content, Time}].
    found = act(client, emu, DescribeCustomEventAttributeRequest, Name="langflow_run_failed")
    assert found["Code"] == "200"
    (item,) = found["CustomEvents"]["CustomEvent"]
    assert item == {
        "Id": stored[0]["id"],
        "GroupId": "0",
        "Name": "langflow_run_failed",
        "Content": "flow poem failed: TimeoutError",
        "Time": str(T0),
    }
    assert [e["name"] for e in emu.events("langflow_run_slow")] == ["langflow_run_slow"]
    assert admin(emu, "events?name=langflow_run_slow")["events"][0]["content"] == "flow poem took 31 s"


def test_describe_events_filters(client, emu):
    act(
        client,
        emu,
        PutCustomEventRequest,
        EventInfos=[
            event(content="timeout in node A", Time=str(T0)),
            event(content="quota exceeded", Time=str(T0 + 60_000), GroupId="3"),
            event(content="timeout and quota", Time=str(T0 + 120_000)),
        ],
    )

    def contents(**setters):
        body = act(client, emu, DescribeCustomEventAttributeRequest, **setters)
        return sorted(e["Content"] for e in body["CustomEvents"]["CustomEvent"])

    assert contents(StartTime=str(T0 + 1), EndTime=str(T0 + 120_000)) == [
        "quota exceeded",
        "timeout and quota",
    ]
    assert contents(GroupId="3") == ["quota exceeded"]
    assert contents(SearchKeywords="timeout") == ["timeout and quota", "timeout in node A"]
    assert contents(SearchKeywords="timeout and quota") == ["timeout and quota"]
    assert contents(SearchKeywords="node or exceeded") == ["quota exceeded", "timeout in node A"]
    first = emu.events()[0]["id"]
    assert contents(EventId=first) == ["timeout in node A"]
    assert (
        len(
            act(client, emu, DescribeCustomEventAttributeRequest, PageSize="2")["CustomEvents"]["CustomEvent"]
        )
        == 2
    )


@pytest.mark.parametrize(
    ("infos", "code"),
    [
        ([{"Content": "x"}], "MissingParameter"),
        ([{"EventName": "x"}], "MissingParameter"),
        ([event(GroupId="abc")], "InvalidParameter"),
        ([event(Time="2026-11-25 10:10:10")], "InvalidParameter"),
        ([event()] * 51, "InvalidParameter"),  # N = 1..50 (API metadata; cms-api.md §6.5)
    ],
)
def test_invalid_events_are_refused(client, emu, infos, code):
    with pytest.raises((ServerException, ClientException)) as info:
        act(client, emu, PutCustomEventRequest, EventInfos=infos)
    assert info.value.get_error_code() == code
    assert emu.events() == []


def signed_form(emu, params: dict) -> tuple[int, dict]:
    """POST ``params`` hand-signed as an x-www-form-urlencoded body (the SDK puts everything in the URL,
    which cannot carry 500 KB)."""
    from urllib.error import HTTPError
    from urllib.parse import urlencode

    from langflow_cms.emulator import signature as sig

    params = {
        "Version": "2019-01-01",
        "Format": "JSON",
        "AccessKeyId": DEV_ACCESS_KEY_ID,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": uuid.uuid4().hex,
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **params,
    }
    params["Signature"] = sig.sign(DEV_ACCESS_KEY_SECRET, sig.string_to_sign("POST", params))
    request = urllib.request.Request(
        f"{emu.endpoint}/",
        data=urlencode(params).encode(),
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_report_is_at_most_500_kb(emu):
    # doc 60196: 500 KB per PutCustomEvent report (cms-api.md §6.5).
    def report(*contents: str) -> tuple[int, dict]:
        params = {"Action": "PutCustomEvent"}
        for n, content in enumerate(contents, 1):
            params |= {f"EventInfo.{n}.EventName": "big", f"EventInfo.{n}.Content": content}
        return signed_form(emu, params)

    status, body = report("x" * 250_000, "y" * 250_000)
    assert (status, body["Code"]) == (200, "200")
    status, body = report("x" * 300_000, "y" * 250_000)
    assert (status, body["Code"]) == (400, "InvalidParameter")
    assert len(emu.events()) == 2


def test_fifty_events_are_accepted(client, emu):
    assert act(client, emu, PutCustomEventRequest, EventInfos=[event()] * 50)["Code"] == "200"
    assert len(emu.events()) == 50


def test_events_can_be_faulted(client, emu):
    # Faults apply to PutCustomMetric by default; actions=[...] extends them to PutCustomEvent.
    emu.set_faults(throttle_ratio=1.0)
    assert act(client, emu, PutCustomEventRequest, EventInfos=[event()])["Code"] == "200"
    emu.set_faults(script=["Throttling.User", "body:500", "drop"], actions=["PutCustomEvent"])
    with pytest.raises(ServerException) as info:
        act(client, emu, PutCustomEventRequest, EventInfos=[event()])
    assert (info.value.get_error_code(), info.value.get_http_status()) == ("Throttling.User", 400)
    assert act(client, emu, PutCustomEventRequest, EventInfos=[event()])["Code"] == "500"
    with pytest.raises(ClientException):
        act(client, emu, PutCustomEventRequest, EventInfos=[event()])
    assert len(emu.events()) == 1  # only the unfaulted call landed
    assert [r["fault"] for r in emu.requests("PutCustomEvent")][1:] == [
        "script:Throttling.User",
        "script:body:500",
        "script:drop",
    ]


# --- STS stand-in -------------------------------------------------------------------------------------


def caller_identity(client, emu, version="2015-04-01", action="GetCallerIdentity") -> dict:
    request = CommonRequest(domain=emu.endpoint.removeprefix("http://"), version=version, action_name=action)
    request.set_method("POST")
    return json.loads(client.do_action_with_exception(request))


def test_get_caller_identity_reports_the_emulator_account(client, emu):
    # STS GetCallerIdentity (2015-04-01): AccountId, UserId, Arn, IdentityType (Tea model of sts20150401).
    body = caller_identity(client, emu)
    assert body["AccountId"] == USER_ID and body["IdentityType"] == "RAMUser"
    assert body["Arn"] == f"acs:ram::{USER_ID}:user/{DEV_ACCESS_KEY_ID}"
    assert body["UserId"] and body["RequestId"]
    assert f"acs_customMetric_{body['AccountId']}" == emu.namespace
    assert emu.requests("GetCallerIdentity")[-1]["code"] == "200" and emu.stats()["accepted"] == 1


def test_sts_needs_a_valid_signature_and_a_known_action(client, emu):
    wrong = AcsClient(DEV_ACCESS_KEY_ID, "wrong", "cn-hangzhou", auto_retry=False, proxy=NO_PROXY)
    with pytest.raises(ServerException) as info:
        caller_identity(wrong, emu)
    # (A CommonRequest keeps its StringToSign elsewhere, so the SDK does not rewrite this code to
    # InvalidAccessKeySecret as it does for the typed CMS requests.)
    assert (info.value.get_error_code(), info.value.get_http_status()) == ("SignatureDoesNotMatch", 400)
    with pytest.raises(ServerException) as info:
        caller_identity(client, emu, action="AssumeRole")
    assert info.value.get_error_code() == "InvalidAction.NotFound"
    with pytest.raises(ServerException) as info:
        caller_identity(client, emu, version="2019-01-01")  # a CMS version has no such action
    assert info.value.get_error_code() == "InvalidAction.NotFound"


# --- admin routes -------------------------------------------------------------------------------------


def test_admin_routes_expose_what_was_stored(client, emu, oncall):
    metric_rule(client, emu)
    act(client, emu, PutCustomEventRequest, EventInfos=[event(Time=str(int(time.time() * 1000)))])
    assert [r["RuleId"] for r in admin(emu, "rules")["rules"]] == ["langflow-errors"]
    assert [c["Name"] for c in admin(emu, "contacts")["contacts"]] == ["oncall"]
    assert [g["Name"] for g in admin(emu, "contact-groups")["contact_groups"]] == ["langflow-oncall"]
    assert [e["name"] for e in admin(emu, "events")["events"]] == ["langflow_run_failed"]
    stats = admin(emu, "stats")
    assert (stats["rules"], stats["contacts"], stats["contact_groups"], stats["events"]) == (1, 1, 1, 1)
    emu.reset()
    assert (emu.rules(), emu.contacts(), emu.contact_groups(), emu.events()) == ([], [], [], [])


def test_cli_fault_action_flag_targets_events(client, emu):
    import argparse

    from langflow_cms.emulator import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    default = cli._faults_from(parser.parse_args(["--throttle-ratio", "1"]))
    assert default.actions == ["PutCustomMetric"]
    faults = cli._faults_from(
        parser.parse_args(["--throttle-ratio", "1", "--fault-action", "PutCustomEvent"])
    )
    emu.set_faults(**faults.to_dict())
    with pytest.raises(ServerException) as info:
        act(client, emu, PutCustomEventRequest, EventInfos=[event()])
    assert info.value.get_error_code() == "Throttling.User"
