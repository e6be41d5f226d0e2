"""The `langflow-cms` command line: help, version, exit codes, ASCII fallback, every command wired, and
runs as a real subprocess from outside the repository."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aliyunsdkcms.request.v20190101.PutCustomMetricRequest import PutCustomMetricRequest
from typer.testing import CliRunner

from langflow_cms import contract
from langflow_cms.cli import app, main
from langflow_cms.cli.output import ascii_text, marks, package_version, table_box
from langflow_cms.dev import emulator_client

REPO = Path(__file__).resolve().parents[1]
POEM = REPO / "examples" / "flows" / "poem.json"
EXECUTABLE = Path(sys.executable).parent / "langflow-cms"
COMMANDS = [
    [],
    ["emulator"],
    ["demo"],
    ["doctor"],
    ["export"],
    ["top"],
    ["compare"],
    ["dashboard"],
    ["dashboard", "grafana"],
]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def put_runs(endpoint: str, flow: str, counts: dict[str, int]) -> None:
    """Per-instance FLOW_METRIC aggregates for the current minute, through the real SDK."""
    now = int(time.time() * 1000)
    entries = [
        {
            "GroupId": "0",
            "MetricName": contract.FLOW_METRIC,
            "Dimensions": json.dumps({"flow": flow, "status": "ok", "instance": instance, "env": "dev"}),
            "Time": str(now - now % 60_000),
            "Type": "1",
            "Period": "60",
            "Values": json.dumps({"SampleCount": n, "Sum": 10.0 * n, "P95": 10.0}),
        }
        for instance, n in counts.items()
    ]
    client = emulator_client()
    request = PutCustomMetricRequest()
    request.set_endpoint(endpoint)
    request.set_MetricLists(entries)
    assert json.loads(client.do_action_with_exception(request))["Code"] == "200"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_help_and_version_of_every_command_exit_0(runner, command):
    helped = runner.invoke(app, [*command, "--help"])
    assert helped.exit_code == 0, helped.output
    assert "Examples" in helped.output and "Exit codes" in helped.output
    versioned = runner.invoke(app, [*command, "--version"])
    assert versioned.exit_code == 0, versioned.output
    assert versioned.output.strip() == f"langflow-cms {package_version()}"


def test_every_command_is_listed_and_usage_errors_exit_2(runner):
    listed = runner.invoke(app, ["--help"]).output
    for name in ("emulator", "demo", "doctor", "export", "top", "compare", "dashboard"):
        assert name in listed
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2
    assert runner.invoke(app, ["top", "--minutes", "zero"]).exit_code == 2
    assert runner.invoke(app, ["emulator", "--no-such-flag"]).exit_code == 2
    assert main(["top", "--where", "broken"]) == 2


def test_emulator_flags_are_the_emulators_own(runner):
    text = runner.invoke(app, ["emulator", "--help"]).output
    for flag in (
        "--port",
        "--host",
        "--db",
        "--key",
        "--no-strict",
        "--user-id",
        "--throttle-ratio",
        "--script",
    ):
        assert flag in text


def test_demo_takes_its_options(runner, monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr("langflow_cms.ops.demo.main", lambda argv: seen.append(argv) or 0)
    done = runner.invoke(
        app, ["demo", "--runs", "16", "--concurrency", "2", "--chart", str(tmp_path / "c.png")]
    )
    assert done.exit_code == 0, done.output
    assert seen == [["--runs", "16", "--concurrency", "2", "--chart", str(tmp_path / "c.png")]]
    assert runner.invoke(app, ["demo", "--runs", "0"]).exit_code == 2


def test_export_creates_the_output_folder(runner, tmp_path):
    target = tmp_path / "new" / "dir" / "poem.py"
    done = runner.invoke(app, ["export", str(POEM), "-o", str(target), "--flow-name", "poem-prod"])
    assert done.exit_code == 0, done.output
    assert 'FLOW_NAME = "poem-prod"' in target.read_text() or "poem-prod" in target.read_text()
    missing = runner.invoke(app, ["export", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_dashboard_grafana_writes_files(runner, tmp_path):
    pytest.importorskip("langflow_cms.ops.dashboard")
    board, datasource = tmp_path / "out" / "dashboard.json", tmp_path / "prov" / "cms.yaml"
    done = runner.invoke(
        app,
        [
            "dashboard",
            "grafana",
            "-o",
            str(board),
            "--datasource-file",
            str(datasource),
            "--user-id",
            "1234567890",
            "--group-id",
            "7",
            "--json",
        ],
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"written": [str(board), str(datasource)]}
    assert "panels" in json.loads(board.read_text()) and "1234567890" in datasource.read_text()
    bad = runner.invoke(app, ["dashboard", "grafana", "-o", str(board), "--user-id", "me"])
    assert bad.exit_code == 2


def test_doctor_ascii_fallback(emulator, runner):
    env = {"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": emulator.endpoint}
    plain = CliRunner(charset="ascii").invoke(app, ["doctor"], env=env)
    assert plain.exit_code == 0, plain.output
    assert "OK configuration" in plain.output and "✓" not in plain.output
    fancy = runner.invoke(app, ["doctor"], env=env)
    assert fancy.exit_code == 0 and "✓ configuration" in fancy.output


def test_marks_and_boxes_follow_the_encoding():
    latin = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    utf8 = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    assert marks(latin) == ("OK", "FAIL") and marks(utf8) == ("✓", "✗")
    assert ascii_text("✗ endpoint", latin) == "FAIL endpoint"
    from rich import box

    assert table_box(latin) is box.ASCII and table_box(utf8) is not box.ASCII


def test_top_without_colour_when_piped(emulator, runner):
    put_runs(emulator.endpoint, "poem", {"a": 3, "b": 4})
    env = {
        "LANGFLOW_CMS_DEV": "1",
        "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
        "LANGFLOW_CMS_USER_ID": emulator.user_id,
    }
    done = runner.invoke(app, ["top"], env=env)
    assert done.exit_code == 0, done.output
    assert "\x1b[" not in done.output and "poem" in done.output


def test_top_watch_refreshes_until_interrupted(emulator, runner, monkeypatch):
    put_runs(emulator.endpoint, "poem", {"a": 3})
    env = {
        "LANGFLOW_CMS_DEV": "1",
        "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
        "LANGFLOW_CMS_USER_ID": emulator.user_id,
    }
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("langflow_cms.cli.query._pause", sleep)
    done = runner.invoke(app, ["top", "--watch", "--interval", "2", "--json"], env=env)
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]["flows"][0]["runs"] == 3 and sleeps == [2, 2]


def test_unreachable_endpoint_exits_1_without_secrets(runner):
    env = {
        "LANGFLOW_CMS_DEV": "1",
        "LANGFLOW_CMS_ENDPOINT": "http://127.0.0.1:9",
        "LANGFLOW_CMS_USER_ID": "1",
    }
    done = runner.invoke(app, ["top", "--json"], env=env)
    assert done.exit_code == 1
    assert "reading CloudMonitor failed" in done.output
    assert re.search(r"Signature=(?!\*\*\*)", done.output) is None  # redacted
    bad_config = runner.invoke(app, ["top"], env={"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_REGION": "Mars"})
    assert bad_config.exit_code == 2 and "LANGFLOW_CMS_REGION" in bad_config.output


def _emulator_answers_sts(emulator) -> bool:
    from langflow_cms.ops.query import caller_identity

    client = emulator_client()
    try:
        return bool(caller_identity(client, emulator.endpoint).get("AccountId"))
    except Exception:
        return False


def test_account_id_from_sts_get_caller_identity(emulator, runner):
    if not _emulator_answers_sts(emulator):
        pytest.skip("this emulator does not answer STS GetCallerIdentity yet")
    put_runs(emulator.endpoint, "poem", {"a": 2, "b": 5})
    env = {"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": emulator.endpoint, "LANGFLOW_CMS_USER_ID": ""}
    done = runner.invoke(app, ["top", "--json"], env=env)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["namespace"] == contract.CUSTOM_NAMESPACE_PREFIX + emulator.user_id
    assert report["flows"][0]["runs"] == 7
    assert [r["action"] for r in emulator.requests()].count("GetCallerIdentity") >= 1


# --- as installed: the console script, run from outside the repository --------------------------------------


def _subprocess_env(env: dict[str, str], emulator) -> dict[str, str]:
    return {
        **env,
        "LANGFLOW_CMS_USER_ID": emulator.user_id,
        "NO_COLOR": "1",
        "PYTHONIOENCODING": "utf-8",
    }


@pytest.mark.skipif(not EXECUTABLE.exists(), reason="the console script is not installed")
def test_console_script_top_json_outside_the_repo(emulator, env, tmp_path):
    put_runs(emulator.endpoint, "poem", {"a": 11, "b": 31})
    done = subprocess.run(
        [str(EXECUTABLE), "top", "--json"],
        env=_subprocess_env(env, emulator),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (poem,) = json.loads(done.stdout)["flows"]
    assert (poem["flow"], poem["runs"]) == ("poem", 42)
    version = subprocess.run([str(EXECUTABLE), "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"langflow-cms {package_version()}"


@pytest.mark.skipif(not EXECUTABLE.exists(), reason="the console script is not installed")
def test_console_script_emulator_serves_and_stops_on_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    process = subprocess.Popen(
        [str(EXECUTABLE), "emulator", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert "CMS emulator listening on http://127.0.0.1:" in line
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.slow  # a dozen CLI subprocesses
def test_commands_need_nothing_from_the_repository(emulator, env, tmp_path):
    """Only the package, as a wheel installs it (``langflow_cms/`` alone), run from an unrelated folder."""
    import shutil

    import langflow_cms

    site = tmp_path / "site"
    shutil.copytree(Path(langflow_cms.__file__).parent, site / "langflow_cms")
    work = tmp_path / "work"
    work.mkdir()
    put_runs(emulator.endpoint, "poem", {"a": 5, "b": 6})
    run_env = {**_subprocess_env(env, emulator), "PYTHONPATH": str(site)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "langflow_cms.cli", *args],
            env=run_env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import langflow_cms; print(langflow_cms.__file__)"],
        env=run_env,
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip().startswith(str(site))
    top = cli("top", "--json")
    assert top.returncode == 0, top.stderr
    assert json.loads(top.stdout)["flows"][0]["runs"] == 11
    if (site / "langflow_cms" / "ops" / "dashboard.py").exists():
        board = cli("dashboard", "grafana", "-o", "out/dashboard.json")
        assert board.returncode == 0, board.stderr
        assert (work / "out" / "dashboard.json").exists()
    demo = cli("demo", "--runs", "2", "--chart", "out/latency.png")  # the example flows are package data
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "Per flow" in demo.stdout and "poem" in demo.stdout
    assert cli("emulator", "--help").returncode == 0


def test_a_command_group_that_cannot_load_does_not_break_the_others(runner):
    import typer

    from langflow_cms.cli import add_groups

    target = typer.Typer()

    @target.command()
    def hello() -> None:
        typer.echo("hello")

    add_groups(target, (("dashboard", "langflow_cms.cli.dashboard"), ("alarms", "langflow_cms.cli.no_such")))
    listed = runner.invoke(target, ["--help"])
    assert listed.exit_code == 0 and "alarms" in listed.output and "dashboard" in listed.output
    assert runner.invoke(target, ["hello"]).output == "hello\n"
    broken = runner.invoke(target, ["alarms", "plan"])
    assert broken.exit_code == 1 and "langflow-cms alarms: not available" in broken.output
