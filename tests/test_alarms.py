"""Alarms as code (langflow_cms.ops.alarms, ``langflow-cms alarms``) against the real emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aliyunsdkcms.request.v20190101.DescribeEventRuleListRequest import DescribeEventRuleListRequest
from aliyunsdkcms.request.v20190101.DescribeEventRuleTargetListRequest import (
    DescribeEventRuleTargetListRequest,
)
from aliyunsdkcms.request.v20190101.PutCustomEventRequest import PutCustomEventRequest
from aliyunsdkcms.request.v20190101.PutCustomMetricRequest import PutCustomMetricRequest
from typer.testing import CliRunner

from langflow_cms import contract
from langflow_cms.cli import app
from langflow_cms.dev import emulator_client
from langflow_cms.ops import alarms
from langflow_cms.pipeline.streaks import longest_streak

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "monitoring.toml"
TOKEN = "0123456789abcdef0123456789abcdef"
WEBHOOK = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
runner = CliRunner()


@pytest.fixture
def cli_env(emulator):
    return {
        "LANGFLOW_CMS_DEV": "1",
        "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
        "LANGFLOW_CMS_USER_ID": emulator.user_id,
        "DINGTALK_WEBHOOK": WEBHOOK,
    }


def invoke(env, *args):
    return runner.invoke(app, ["alarms", *map(str, args)], env=env)


def sdk_client():
    return emulator_client()


def sdk_call(emulator, request):
    request.set_endpoint(emulator.endpoint)
    body = json.loads(sdk_client().do_action_with_exception(request))
    assert str(body.get("Code", "200")) == "200", body
    return body


def put_raw(emulator, metric, dims, points):
    """Raw (Type=0) points ``[(time_ms, value)]`` through the real SDK, 21 per call."""
    client = sdk_client()
    for start in range(0, len(points), 21):
        request = PutCustomMetricRequest()
        request.set_endpoint(emulator.endpoint)
        request.set_MetricLists(
            [
                {
                    "MetricName": metric,
                    "GroupId": "0",
                    "Type": "0",
                    "Time": str(t),
                    "Dimensions": json.dumps(dims),
                    "Values": json.dumps({"value": v}),
                }
                for t, v in points[start : start + 21]
            ]
        )
        body = json.loads(client.do_action_with_exception(request))
        assert body["Code"] == "200", body


# --- the streak --------------------------------------------------------------------------------------------


def test_longest_streak():
    assert longest_streak([6000, 6000, 6000], 5000) == (3, 3)
    assert longest_streak([6000, 6000, 100, 6000], 5000) == (2, 1)
    assert longest_streak([], 5000) == (0, 0)
    assert longest_streak([100, 200], 5000, carried=2) == (0, 0)
    # a streak carries over the window boundary: 2 slow at the end of the last minute + 1 now = 3
    assert longest_streak([6000, 100], 5000, carried=2) == (3, 0)
    assert longest_streak([5000], 5000) == (0, 0)  # "slower than": strictly greater
    with pytest.raises(ValueError):
        longest_streak([1], 5, carried=-1)


# --- the spec ----------------------------------------------------------------------------------------------


def test_example_spec_maps_to_rules():
    spec = alarms.load_spec(EXAMPLE, {"DINGTALK_WEBHOOK": WEBHOOK})
    rules = {a.name: alarms.rule_params(a) for a in spec.alarms}
    p95 = rules["poem-p95-slow"]
    assert p95["RuleId"] == "langflow-cms-poem-p95-slow"
    assert p95["MetricName"] == contract.FLEET_FLOW_METRIC
    assert json.loads(p95["Resources"]) == [{"groupId": 0, "dimension": "flow=poem&status=ok"}]
    assert (p95["Statistics"], p95["ComparisonOperator"], p95["Threshold"]) == ("P95", ">", "5000")
    assert (p95["EvaluationCount"], p95["Period"], p95["Level"]) == ("3", "60", "CRITICAL")
    assert p95["ContactGroups"] == "langflow-oncall"
    errors = rules["poem-error-rate"]
    assert (errors["MetricName"], errors["Statistics"], errors["Threshold"]) == (
        contract.FLEET_ERROR_METRIC,
        "Average",
        "0.05",
    )
    streak = rules["poem-3-slow-runs-in-a-row"]
    assert streak["MetricName"] == contract.SLOW_STREAK_METRIC
    assert json.loads(streak["Resources"])[0]["dimension"] == "flow=poem&threshold_ms=5000"
    assert (streak["Statistics"], streak["ComparisonOperator"], streak["Threshold"]) == ("Maximum", ">=", "3")
    assert (streak["EvaluationCount"], streak["Period"]) == ("1", "60")
    assert spec.contacts[0].dingtalk_webhook == WEBHOOK


def _spec(text, environ=None):
    import tomllib

    return alarms.parse_spec(tomllib.loads(text), "t.toml", {"HOOK": WEBHOOK} if environ is None else environ)


BASE = """
[contacts.c]
dingtalk_webhook_env = "HOOK"
[groups.g]
contacts = ["c"]
"""


@pytest.mark.parametrize(
    ("alarm", "message"),
    [
        ('name="a"\nflow="poem"\nstatistic="P95"\nabove=5000\ncontact_groups=["g"]', "write above_ms"),
        ('name="a"\nflow="poem"\nstatistic="P42"\nabove_ms=1\ncontact_groups=["g"]', "statistic must be"),
        ('name="a"\nflow="poem"\nstatistic="P95"\nabove_ms=1\ncontact_groups=["nope"]', "unknown contact"),
        ('name="a"\nflow="poem"\nstatistic="P95"\nabove_ms=1\nperiod=120\ncontact_groups=["g"]', "60 or 300"),
        ('name="a"\nflow="poem"\nstatistic="error_rate"\nabove=5\ncontact_groups=["g"]', "fraction"),
        ('name="a"\nflow="poem"\nstatistic="runs_in_a_row"\nruns=3\ncontact_groups=["g"]', "slower_than_ms"),
        (
            'name="a"\nflow="poem"\nstatistic="P95"\nabove_ms=1\ncontact_groups=["g"]\ncolour=1',
            "unknown field",
        ),
    ],
)
def test_spec_errors(alarm, message):
    with pytest.raises(alarms.SpecError, match=message):
        _spec(BASE + "[[alarms]]\n" + alarm)


def test_spec_refuses_a_literal_webhook_and_a_missing_variable():
    with pytest.raises(alarms.SpecError, match="environment variable"):
        _spec('[contacts.c]\ndingtalk_webhook = "https://x/?access_token=abc"')
    with pytest.raises(alarms.SpecError, match=r"HOOK .* is not set"):
        _spec(BASE, environ={})
    import tomllib

    read_only = alarms.parse_spec(tomllib.loads(BASE), "t.toml", {}, secrets=False)  # what check loads
    assert read_only.contacts[0].dingtalk_webhook is None


def test_mask_webhook():
    shown = alarms.mask_webhook(WEBHOOK)
    assert TOKEN not in shown
    assert shown.startswith("https://oapi.dingtalk.com/robot/send?access_token=0123****")
    assert alarms.mask_webhook("https://oapi.dingtalk.com/robot/send?access_token=test").endswith("=t****")


# --- exact matching: the series each rule targets carry exactly the rule's dimensions ---------------------

POEM = ROOT / "examples" / "flows" / "poem.json"


@pytest.mark.slow
def test_every_example_rule_targets_a_series_with_exactly_its_dimensions(emulator, env, cli_env, tmp_path):
    """#25: if CMS matches a rule's Resources against series with exactly those dimensions, every alarm of
    examples/monitoring.toml still watches a series that was sent, whatever the flow's own dimensions."""
    flow = json.loads(POEM.read_text(encoding="utf-8"))
    (cms,) = [n for n in flow["data"]["nodes"] if "flow_dimensions" in n["data"]["node"]["template"]]
    cms["data"]["node"]["template"]["flow_dimensions"]["value"] = {"version": "v2", "topic": "sea"}
    path = tmp_path / "poem.json"
    path.write_text(json.dumps(flow), encoding="utf-8")
    lfx = Path(sys.executable).parent / "lfx"
    done = subprocess.run(
        [str(lfx), "run", str(path), "the sea"],
        env={**env, "LANGFLOW_CMS_SLOW_RUN_MS": "5000"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sent = {
        (e["name"], json.dumps(e["dimensions"], sort_keys=True)) for e in emulator.entries() if e["type"] == 0
    }
    assert any('"topic": "sea"' in dims for _, dims in sent)  # the flow's dimensions still travel

    assert invoke(cli_env, "apply", EXAMPLE).exit_code == 0
    rules = alarms.AlarmClient.from_env(cli_env).rules()
    assert len(rules) == len(alarms.load_spec(EXAMPLE, cli_env).alarms) == 3
    for rule in rules.values():
        (resource,) = json.loads(rule["Resources"])
        wanted = dict(pair.split("=", 1) for pair in resource["dimension"].split("&"))
        exact = (rule["MetricName"], json.dumps(wanted, sort_keys=True))
        assert exact in sent, (rule["RuleId"], wanted, sorted(d for m, d in sent if m == rule["MetricName"]))


def test_plan_warns_when_a_rule_names_dimensions_no_series_carries_exactly(emulator, cli_env, tmp_path):
    spec = tmp_path / "m.toml"
    spec.write_text(
        EXAMPLE.read_text(encoding="utf-8")
        + '\n[[alarms]]\nname = "poem-v2-p95"\nflow = "poem"\nstatistic = "P95"\nabove_ms = 3000\n'
        'contact_groups = ["langflow-oncall"]\nwhere = { version = "v2" }\n',
        encoding="utf-8",
    )
    result = invoke(cli_env, "plan", spec)
    assert result.exit_code == 2, result.output  # changes to make: nothing was applied yet
    text = " ".join(result.output.split())
    assert "poem-v2-p95" in text and "version" in text and "exact" in text
    assert "warning" in text.lower()
    plain = " ".join(invoke(cli_env, "plan", EXAMPLE).output.split())
    assert "warning" not in plain.lower()
    report = json.loads(invoke(cli_env, "plan", spec, "--json").output)
    assert len(report["warnings"]) == 1 and "poem-v2-p95" in report["warnings"][0]


# --- apply, plan, prune against the emulator ---------------------------------------------------------------


def test_apply_is_idempotent_and_plan_shows_exactly_the_edit(emulator, cli_env, tmp_path):
    result = invoke(cli_env, "plan", EXAMPLE)
    assert result.exit_code == 2, result.output
    assert "Plan: 6 to create, 0 to change, 0 to delete." in result.output

    result = invoke(cli_env, "apply", EXAMPLE)
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    (contact,) = emulator.contacts()
    assert contact["Name"] == "langflow-oncall-dingtalk"
    assert contact["Channels"]["DingWebHook"] == WEBHOOK
    (group,) = emulator.contact_groups()
    assert (group["Name"], group["Contacts"]) == ("langflow-oncall", ["langflow-oncall-dingtalk"])
    rules = {r["RuleId"]: r for r in emulator.rules()}
    assert set(rules) == {
        "langflow-cms-poem-p95-slow",
        "langflow-cms-poem-error-rate",
        "langflow-cms-poem-3-slow-runs-in-a-row",
    }
    assert rules["langflow-cms-poem-p95-slow"]["Threshold"] == "5000"

    writes = len(emulator.requests())
    result = invoke(cli_env, "apply", EXAMPLE)
    assert result.exit_code == 0, result.output
    assert "No changes" in result.output
    new = [r["action"] for r in emulator.requests()[writes:]]
    assert not [a for a in new if a.startswith(("Put", "Delete"))], new
    assert invoke(cli_env, "plan", EXAMPLE).exit_code == 0

    edited = tmp_path / "monitoring.toml"
    edited.write_text(EXAMPLE.read_text().replace("above_ms = 5000", "above_ms = 4000"))
    result = invoke(cli_env, "plan", edited, "--json")
    assert result.exit_code == 2, result.output
    found = json.loads(result.output)
    assert found["changes"] == [
        {
            "action": "update",
            "kind": "rule",
            "name": "langflow-cms-poem-p95-slow",
            "label": "poem-p95-slow",
            "fields": {"Threshold": {"old": "5000", "new": "4000"}},
        }
    ]
    text = invoke(cli_env, "plan", edited).output
    assert "~ rule langflow-cms-poem-p95-slow (poem-p95-slow)\n    Threshold: 5000 -> 4000\n" in text
    assert "Plan: 0 to create, 1 to change, 0 to delete." in text


def test_prune_removes_only_the_rule_deleted_from_the_file(emulator, cli_env, tmp_path):
    # a rule this tool did not make survives every prune
    assert invoke(cli_env, "apply", EXAMPLE).exit_code == 0
    client = alarms.AlarmClient.from_env(cli_env)
    client.put_rule({**alarms.rule_params(alarms.load_spec(EXAMPLE, cli_env).alarms[0]), "RuleId": "by-hand"})
    text = EXAMPLE.read_text()
    start = text.index("# More than 5 %")
    end = text.index("# 3 runs in a row")
    smaller = tmp_path / "monitoring.toml"
    smaller.write_text(text[:start] + text[end:])

    result = invoke(cli_env, "plan", smaller)
    assert result.exit_code == 0, result.output  # without --prune nothing would change
    assert "langflow-cms-poem-error-rate is not in the file (kept" in result.output
    result = invoke(cli_env, "apply", smaller, "--prune")
    assert result.exit_code == 0, result.output
    assert "- rule langflow-cms-poem-error-rate" in result.output
    assert sorted(r["RuleId"] for r in emulator.rules()) == [
        "by-hand",
        "langflow-cms-poem-3-slow-runs-in-a-row",
        "langflow-cms-poem-p95-slow",
    ]
    assert len(emulator.contacts()) == 1 and len(emulator.contact_groups()) == 1
    assert invoke(cli_env, "plan", smaller, "--prune").exit_code == 0

    listed = json.loads(invoke(cli_env, "list", "--json").output)["rules"]
    assert [r["rule_id"] for r in listed] == [
        "langflow-cms-poem-3-slow-runs-in-a-row",
        "langflow-cms-poem-p95-slow",
    ]
    table = invoke(cli_env, "list").output
    assert "langflow-cms-poem-p95-slow" in table and "by-hand" not in table


def test_permission_error_names_the_ram_action(emulator, cli_env):
    emulator.set_faults(script=["Forbidden:403"], actions=["PutCustomMetricRule"])
    result = invoke(cli_env, "apply", EXAMPLE)
    assert result.exit_code == 1
    assert "'cms:PutCustomMetricRule'" in result.output
    assert TOKEN not in result.output


def test_retries_like_the_reporter(emulator, cli_env):
    emulator.set_faults(script=["Throttling.User", "ServiceUnavailable", "ok"], actions=["PutContact"])
    result = invoke(cli_env, "apply", EXAMPLE)
    assert result.exit_code == 0, result.output
    codes = [r["code"] for r in emulator.requests(action="PutContact")]
    assert codes == ["Throttling.User", "ServiceUnavailable", "200"]


# --- check -------------------------------------------------------------------------------------------------

CHECK_SPEC = """
[contacts.c]
dingtalk_webhook_env = "DINGTALK_WEBHOOK"
[groups.g]
contacts = ["c"]

[[alarms]]
name = "poem-p95"
flow = "poem"
statistic = "P95"
above_ms = 5000
periods = 3
contact_groups = ["g"]

[[alarms]]
name = "haiku-p95"
flow = "haiku"
statistic = "P95"
above_ms = 5000
periods = 3
contact_groups = ["g"]

[[alarms]]
name = "poem-errors"
flow = "poem"
statistic = "error_rate"
above = 0.05
contact_groups = ["g"]

[[alarms]]
name = "nothing-yet"
flow = "limerick"
statistic = "P95"
above_ms = 5000
contact_groups = ["g"]

[[alarms]]
name = "poem-3-in-a-row"
flow = "poem"
statistic = "runs_in_a_row"
runs = 3
slower_than_ms = 5000
contact_groups = ["g"]

[[alarms]]
name = "haiku-3-in-a-row"
flow = "haiku"
statistic = "runs_in_a_row"
runs = 3
slower_than_ms = 5000
contact_groups = ["g"]
"""


def _minute(offset: int, now_ms: int) -> int:
    return (now_ms // 60000 - offset) * 60000


def test_check_reports_alarm_ok_and_insufficient_data(emulator, cli_env, tmp_path):
    now_ms = int(time.time() * 1000)
    end_ms = _minute(0, now_ms)  # evaluate as of the start of this minute: the last 3 whole minutes
    slow, fast = [], []
    for offset in (1, 2, 3):
        start = _minute(offset, now_ms)
        # 20 runs a minute; poem's P95 is 6-7 s, haiku's 300 ms
        slow += [(start + i * 1000, 1000.0 if i < 10 else 6000.0 + i) for i in range(20)]
        fast += [(start + i * 1000, 200.0 + i * 5) for i in range(20)]
    put_raw(emulator, contract.FLEET_FLOW_METRIC, {"flow": "poem", "status": "ok"}, slow)
    put_raw(emulator, contract.FLEET_FLOW_METRIC, {"flow": "haiku", "status": "ok"}, fast)
    put_raw(emulator, contract.FLEET_ERROR_METRIC, {"flow": "poem"}, [(t, 0.0) for t, _ in slow])
    # the streak series as the reporter would write it: one point per process and minute
    minute = _minute(1, now_ms)
    three = longest_streak([6000, 6000, 6000], 5000)[0]
    two_then_fast = longest_streak([6000, 6000, 100, 6000], 5000)[0]
    assert (three, two_then_fast) == (3, 2)
    streak_dims = {"flow": "poem", "threshold_ms": "5000"}
    put_raw(emulator, contract.SLOW_STREAK_METRIC, streak_dims, [(minute + 5000, three), (minute + 9000, 1)])
    put_raw(
        emulator,
        contract.SLOW_STREAK_METRIC,
        {**streak_dims, "flow": "haiku"},
        [(minute + 5000, two_then_fast)],
    )

    spec_file = tmp_path / "check.toml"
    spec_file.write_text(CHECK_SPEC)
    result = invoke(cli_env, "check", spec_file, "--end", end_ms, "--json")
    assert result.exit_code == 1, result.output  # a rule is in ALARM
    states = {a["alarm"]: a for a in json.loads(result.output)["alarms"]}
    assert {k: v["state"] for k, v in states.items()} == {
        "poem-p95": "ALARM",
        "haiku-p95": "OK",
        "poem-errors": "OK",
        "nothing-yet": "INSUFFICIENT_DATA",
        "poem-3-in-a-row": "ALARM",
        "haiku-3-in-a-row": "OK",
    }
    windows = states["poem-p95"]["series"][0]["windows"]
    assert [w["time_ms"] for w in windows] == [_minute(o, now_ms) for o in (1, 2, 3)]
    assert all(w["breaching"] and w["value"] > 5000 and w["samples"] == 20 for w in windows)
    assert states["poem-3-in-a-row"]["series"][0]["windows"][0]["value"] == 3
    assert states["haiku-3-in-a-row"]["series"][0]["windows"][0]["value"] == 2

    # two slow minutes are not three: as of the end of the second slow minute the P95 rule is OK
    early = invoke(cli_env, "check", spec_file, "--end", _minute(1, now_ms), "--json")
    early_states = {a["alarm"]: a["state"] for a in json.loads(early.output)["alarms"]}
    assert early_states["poem-p95"] == "OK"

    text = invoke(cli_env, "check", spec_file, "--end", end_ms).output
    assert "ALARM             poem-p95" in text
    assert "OK                haiku-p95" in text


def test_evaluate_series_needs_consecutive_periods():
    w = 60_000
    kwargs = {"operator": ">", "threshold": 5, "periods": 3, "period": 60}
    assert alarms.evaluate_series({0: 6, w: 6, 2 * w: 6}, **kwargs)[0] == "ALARM"
    assert alarms.evaluate_series({0: 6, 2 * w: 6, 3 * w: 6}, **kwargs)[0] == "OK"  # a gap breaks it
    assert alarms.evaluate_series({0: 6, w: 6, 2 * w: 4}, **kwargs)[0] == "OK"
    assert alarms.evaluate_series({}, **kwargs)[0] == "INSUFFICIENT_DATA"


# --- the installed command ---------------------------------------------------------------------------------


def test_subprocess_apply_then_plan(emulator, cli_env):
    binary = Path(sys.executable).with_name("langflow-cms")
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    env.update(cli_env)
    env["DINGTALK_WEBHOOK"] = "https://oapi.dingtalk.com/robot/send?access_token=test"
    run = subprocess.run(
        [str(binary), "alarms", "apply", str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "access_token=t****" in run.stdout and "access_token=test" not in run.stdout
    run = subprocess.run(
        [str(binary), "alarms", "plan", str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "No changes" in run.stdout
    assert emulator.contacts()[0]["Channels"]["DingWebHook"].endswith("access_token=test")


def test_all_flows_and_where():
    spec = _spec(
        BASE
        + '[[alarms]]\nname = "Any flow - Errors"\nflow = "*"\nstatistic = "error_rate"\nabove = 0.1\n'
        + 'period = "5m"\nsilence = "30m"\ncontact_groups = "g"\nwhere = { env = "prod" }\n'
    )
    (alarm,) = spec.alarms
    params = alarms.rule_params(alarm)
    assert params["RuleId"] == "langflow-cms-any-flow-errors"
    assert json.loads(params["Resources"]) == [{"groupId": 0, "dimension": "env=prod"}]
    assert (params["Period"], params["SilenceTime"]) == ("300", "1800")


def test_check_permission_error_names_the_ram_action(emulator, cli_env):
    emulator.set_faults(script=["Forbidden:403"], actions=["DescribeMetricList"])
    put_raw(
        emulator,
        contract.FLEET_FLOW_METRIC,
        {"flow": "poem", "status": "ok"},
        [(int(time.time() * 1000), 1.0)],
    )
    result = invoke(cli_env, "check", EXAMPLE)
    assert result.exit_code == 1, result.output
    assert "'cms:QueryMetricList'" in result.output


def test_help_lists_the_commands():
    result = runner.invoke(app, ["alarms", "--help"])
    assert result.exit_code == 0
    for command in ("plan", "apply", "list", "check"):
        assert command in result.output


# --- event alarms (PutEventRule + PutEventRuleTargets) -----------------------------------------------------


def described_event_rules(emulator):
    """DescribeEventRuleList and DescribeEventRuleTargetList through the real SDK, by rule name."""
    request = DescribeEventRuleListRequest()
    request.set_PageSize("100")
    rules = sdk_call(emulator, request)["EventRules"]["EventRule"]
    out = {}
    for rule in rules:
        targets = DescribeEventRuleTargetListRequest()
        targets.set_RuleName(rule["Name"])
        out[rule["Name"]] = (rule, sdk_call(emulator, targets))
    return out


def test_event_alarm_apply_makes_a_custom_event_rule_for_the_flow(emulator, cli_env):
    result = invoke(cli_env, "plan", EXAMPLE)
    assert "+ event rule langflow-cms-poem-failed (poem-failed)" in result.output
    result = invoke(cli_env, "apply", EXAMPLE)
    assert result.exit_code == 0, result.output

    (name,) = described_event_rules(emulator)
    rule, targets = described_event_rules(emulator)[name]
    assert name == "langflow-cms-poem-failed"
    assert (rule["EventType"], rule["State"], rule["SilenceTime"]) == ("CUSTOM", "ENABLED", 600)
    (pattern,) = rule["EventPattern"]["EventPattern"]
    assert pattern["NameList"]["NameList"] == [contract.EVENT_FLOW_FAILED]
    # the flow filter: the flow as it appears in the event's compact JSON content
    assert pattern["KeywordFilter"] == {"Keywords": {"Keywords": ['"flow":"poem"']}, "Relation": "OR"}
    (contact,) = targets["ContactParameters"]["ContactParameter"]
    assert (contact["ContactGroupName"], contact["Level"]) == ("langflow-oncall", "CRITICAL")
    assert targets["WebhookParameters"]["WebhookParameter"] == []
    assert "langflow_flow_failed events of flow poem" in rule["Description"]
    assert "sls.console" not in rule["Description"]  # no SLS settings, no link

    # the filter matches the reporter's own content for that flow, and not for another
    from langflow_cms import events

    content = events.event_entry(contract.EVENT_FLOW_FAILED, {"flow": "poem", "run_id": "r"}, 0, "0")[
        "Content"
    ]
    other = events.event_entry(contract.EVENT_FLOW_FAILED, {"flow": "poem2", "run_id": "r"}, 0, "0")[
        "Content"
    ]
    keyword = pattern["KeywordFilter"]["Keywords"]["Keywords"][0]
    assert keyword in content and keyword not in other

    writes = len(emulator.requests())
    result = invoke(cli_env, "apply", EXAMPLE)
    assert "No changes" in result.output, result.output
    new = [r["action"] for r in emulator.requests()[writes:]]
    assert not [a for a in new if a.startswith(("Put", "Delete"))], new

    listed = json.loads(invoke(cli_env, "list", "--json").output)["event_rules"]
    assert [(r["rule_name"], r["events"], r["filter"], r["contact_groups"]) for r in listed] == [
        ("langflow-cms-poem-failed", contract.EVENT_FLOW_FAILED, '"flow":"poem"', "langflow-oncall")
    ]
    table = invoke(cli_env, "list").output
    assert "langflow-cms-poem-failed" in table and "langflow-cms-poem-p95-slow" in table


EVENT_SPEC = (
    BASE.replace("[groups.g]", '[groups.h]\ncontacts = ["c"]\n[groups.g]')
    + """
[[event_alarms]]
name = "poem-failed"
flow = "poem"
contact_groups = ["g", "h"]

[[event_alarms]]
name = "any-flow-node-failed"
flow = "*"
events = ["node_failed", "events_suppressed"]
level = "INFO"
contact_groups = ["g"]
silence = 300
"""
)


def test_event_alarm_update_and_prune_touch_only_ours(emulator, cli_env, tmp_path):
    env = {**cli_env, "HOOK": WEBHOOK}
    spec = tmp_path / "events.toml"
    spec.write_text(EVENT_SPEC)
    assert invoke(env, "apply", spec).exit_code == 0
    rules = described_event_rules(emulator)
    assert set(rules) == {"langflow-cms-poem-failed", "langflow-cms-any-flow-node-failed"}
    (pattern,) = rules["langflow-cms-any-flow-node-failed"][0]["EventPattern"]["EventPattern"]
    assert "KeywordFilter" not in pattern  # every flow: no filter
    assert sorted(pattern["NameList"]["NameList"]) == sorted(
        [contract.EVENT_NODE_FAILED, contract.EVENT_SUPPRESSED]
    )
    # an event rule made by hand (not langflow-cms-*) survives every prune
    client = alarms.AlarmClient.from_env(env)
    client.put_event_rule(
        {"RuleName": "by-hand", "EventType": "CUSTOM", "EventPattern.1.Product": "CustomEvent"},
        {
            "RuleName": "by-hand",
            "ContactParameters.1.Id": "1",
            "ContactParameters.1.ContactGroupName": "g",
            "ContactParameters.1.Level": "WARN",
        },
    )

    # one group fewer and another level: the rule is made again (targets cannot be removed one by one)
    spec.write_text(
        EVENT_SPEC.replace('contact_groups = ["g", "h"]', 'contact_groups = ["g"]\nlevel = "CRITICAL"')
    )
    found = json.loads(invoke(env, "plan", spec, "--json").output)
    assert found["changes"] == [
        {
            "action": "update",
            "kind": "event rule",
            "name": "langflow-cms-poem-failed",
            "label": "poem-failed",
            "fields": {
                "ContactGroups": {"old": "g,h", "new": "g"},
                "Level": {"old": "WARN", "new": "CRITICAL"},
            },
        }
    ]
    assert invoke(env, "apply", spec).exit_code == 0
    targets = described_event_rules(emulator)["langflow-cms-poem-failed"][1]
    assert [
        (t["ContactGroupName"], t["Level"]) for t in targets["ContactParameters"]["ContactParameter"]
    ] == [("g", "CRITICAL")]
    assert invoke(env, "plan", spec).exit_code == 0

    spec.write_text(spec.read_text().split('[[event_alarms]]\nname = "any-flow')[0])
    result = invoke(env, "plan", spec)
    assert result.exit_code == 0, result.output
    assert "event rule langflow-cms-any-flow-node-failed is not in the file (kept" in result.output
    result = invoke(env, "apply", spec, "--prune")
    assert result.exit_code == 0, result.output
    assert "- event rule langflow-cms-any-flow-node-failed" in result.output
    assert sorted(described_event_rules(emulator)) == ["by-hand", "langflow-cms-poem-failed"]
    assert [r["action"] for r in emulator.requests(action="DeleteEventRules")] == ["DeleteEventRules"] * 2


@pytest.mark.parametrize(
    ("event_alarm", "message"),
    [
        ('name="a"\ncontact_groups=["g"]', "flow must be a non-empty string"),
        ('name="a"\nflow="poem"\nevents=["flow_exploded"]\ncontact_groups=["g"]', "unknown events"),
        ('name="a"\nflow="poem"\nevents=[]\ncontact_groups=["g"]', "events must be a non-empty list"),
        ('name="a"\nflow="poem"\ncontact_groups=["nope"]', "unknown contact groups"),
        ('name="a"\nflow="poem"\ncontact_groups=["g"]\nlevel="LOUD"', "level must be"),
        ('name="a"\nflow="poem"\ncontact_groups=["g"]\nthreshold=3', r"unknown field\(s\) threshold"),
        ('name="a"\nflow="po em"\ncontact_groups=["g"]', "is not a flow name"),
        ('name="a"\nflow="poem"\ncontact_groups=["g"]\nenabled="yes"', "enabled must be true or false"),
    ],
)
def test_event_alarm_spec_errors(event_alarm, message):
    with pytest.raises(alarms.SpecError, match=message) as caught:
        _spec(BASE + "[[event_alarms]]\n" + event_alarm)
    assert "[[event_alarms]] #1" in str(caught.value)


def test_event_alarm_and_alarm_may_not_share_a_rule_name():
    metric = '[[alarms]]\nname="poem failed"\nflow="poem"\nstatistic="error_rate"\nabove=0.1\n'
    metric += 'contact_groups=["g"]\n'
    event = '[[event_alarms]]\nname="poem-failed"\nflow="poem"\ncontact_groups=["g"]\n'
    with pytest.raises(alarms.SpecError, match="same rule name langflow-cms-poem-failed"):
        _spec(BASE + metric + event)


def test_sls_link_in_the_event_rule_and_no_secret_anywhere(emulator, cli_env):
    env = {
        **cli_env,
        "LANGFLOW_CMS_SLS_PROJECT": "langflow-logs",
        "LANGFLOW_CMS_SLS_LOGSTORE": "runs",
        "LANGFLOW_CMS_REGION": "cn-shanghai",
    }
    result = invoke(env, "apply", EXAMPLE)
    assert result.exit_code == 0, result.output
    (rule,) = emulator.event_rules()
    description = rule["Description"]
    link = description.split("Logs: ", 1)[1]
    assert link.startswith("https://sls.console.aliyun.com/lognext/project/langflow-logs/logsearch/runs?")
    import base64
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(link).query)
    assert base64.b64decode(query["queryString"][0]).decode() == 'flow: "poem"'
    assert query["slsRegion"] == ["cn-shanghai"] and "startTime" not in query  # a rule has no time range
    assert alarms.flow_logs_link(None, "poem") is None
    sls = alarms.SlsSettings("langflow-logs", "runs", "cn-shanghai")
    ranged = parse_qs(urlsplit(alarms.flow_logs_link(sls, "poem", start_s=100, end_s=200)).query)
    assert (ranged["startTime"], ranged["endTime"]) == (["100"], ["200"])

    assert invoke(env, "apply", EXAMPLE).output.startswith("No changes")  # the link is stable
    stored = json.dumps([emulator.event_rules(), emulator.rules()])
    assert TOKEN not in stored and TOKEN not in result.output
    for request in emulator.requests():
        if request["action"] != "PutContact":  # the contact's DingTalk channel is the one place for it
            assert TOKEN not in json.dumps(request, default=str), request["action"]
    listed = invoke(env, "list", "--json").output
    assert TOKEN not in listed and "sls.console" in listed


def put_event(emulator, name, content, time_ms):
    request = PutCustomEventRequest()
    request.set_EventInfos(
        [{"EventName": name, "Content": json.dumps(content), "Time": str(time_ms), "GroupId": "0"}]
    )
    sdk_call(emulator, request)


def test_check_reports_event_alarms(emulator, cli_env, tmp_path):
    now_ms = int(time.time() * 1000)
    spec = tmp_path / "events.toml"
    spec.write_text(
        BASE.replace("HOOK", "DINGTALK_WEBHOOK")
        + '[[event_alarms]]\nname = "poem-failed"\nflow = "poem"\ncontact_groups = ["g"]\n'
        + '[[event_alarms]]\nname = "haiku-failed"\nflow = "haiku"\ncontact_groups = ["g"]\n'
    )
    put_event(emulator, contract.EVENT_FLOW_FAILED, {"flow": "poem", "run_id": "run-1"}, now_ms - 120_000)
    put_event(emulator, contract.EVENT_FLOW_FAILED, {"flow": "poem2", "run_id": "run-2"}, now_ms - 60_000)
    env = {**cli_env, "LANGFLOW_CMS_SLS_PROJECT": "langflow-logs", "LANGFLOW_CMS_SLS_LOGSTORE": "runs"}
    result = invoke(env, "check", spec, "--json")
    assert result.exit_code == 1, result.output
    found = {a["alarm"]: a for a in json.loads(result.output)["alarms"]}
    assert (found["poem-failed"]["state"], found["haiku-failed"]["state"]) == ("ALARM", "OK")
    assert found["poem-failed"]["series"][0]["count"] == 1
    assert found["poem-failed"]["series"][0]["events"][0]["run_id"] == "run-1"
    assert "sls.console" in found["poem-failed"]["logs"] and "logs" not in found["haiku-failed"]
    text = invoke(env, "check", spec).output
    assert "ALARM             poem-failed" in text and "1 in the last 60 min" in text
