"""Alarms as code (langflow_cms.alarms, ``langflow-cms alarms``) against the real emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aliyunsdkcms.request.v20190101.PutCustomMetricRequest import PutCustomMetricRequest
from aliyunsdkcore.client import AcsClient
from typer.testing import CliRunner

from langflow_cms import alarms, contract
from langflow_cms.cli import app
from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET

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


def put_raw(emulator, metric, dims, points):
    """Raw (Type=0) points ``[(time_ms, value)]`` through the real SDK, 21 per call."""
    client = AcsClient(
        DEV_ACCESS_KEY_ID,
        DEV_ACCESS_KEY_SECRET,
        "cn-hangzhou",
        auto_retry=False,
        proxy={"http": None, "https": None},
    )
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
    assert alarms.longest_streak([6000, 6000, 6000], 5000) == (3, 3)
    assert alarms.longest_streak([6000, 6000, 100, 6000], 5000) == (2, 1)
    assert alarms.longest_streak([], 5000) == (0, 0)
    assert alarms.longest_streak([100, 200], 5000, carried=2) == (0, 0)
    # a streak carries over the window boundary: 2 slow at the end of the last minute + 1 now = 3
    assert alarms.longest_streak([6000, 100], 5000, carried=2) == (3, 0)
    assert alarms.longest_streak([5000], 5000) == (0, 0)  # "slower than": strictly greater
    with pytest.raises(ValueError):
        alarms.longest_streak([1], 5, carried=-1)


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


# --- apply, plan, prune against the emulator ---------------------------------------------------------------


def test_apply_is_idempotent_and_plan_shows_exactly_the_edit(emulator, cli_env, tmp_path):
    result = invoke(cli_env, "plan", EXAMPLE)
    assert result.exit_code == 2, result.output
    assert "Plan: 5 to create, 0 to change, 0 to delete." in result.output

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
    three = alarms.longest_streak([6000, 6000, 6000], 5000)[0]
    two_then_fast = alarms.longest_streak([6000, 6000, 100, 6000], 5000)[0]
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
