"""`langflow-cms doctor` sees what users get wrong: the plugin's entry points, the monitor mode, a region
that does not match the endpoint, a dead emulator versus a stalled one, least-privilege advice, the real HTTP
status, `--json`, and a probe that always writes the same series. Every endpoint check talks real HTTP to the
in-process emulator (with its fault injection) or to a loopback port nothing listens on."""

from __future__ import annotations

import json
import shutil
import socket
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from typer.testing import CliRunner

import langflow_cms
from langflow_cms.cli import app
from langflow_cms.config import Config
from langflow_cms.ops import doctor
from langflow_cms.ops.doctor import Check, check_components, check_region, check_tracing, run_doctor

PACKAGE = Path(langflow_cms.__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dev_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": endpoint, **extra}


def checks_of(environ: dict[str, str]) -> tuple[int, dict[str, dict]]:
    """Run the doctor with --json output; (exit code, {check name: check})."""
    lines: list[str] = []
    code = run_doctor(environ, lines.append, as_json=True)
    report = json.loads("\n".join(lines))
    assert report["exit_code"] == code
    return code, {c["name"]: c for c in report["checks"]}


# --- a working setup ----------------------------------------------------------------------------------------


def test_a_working_setup_passes_every_check_in_order(emulator):
    lines: list[str] = []
    assert run_doctor(dev_env(emulator.endpoint), lines.append) == 0
    names = [line.split(":")[0][2:] for line in lines if line[:2] in ("✓ ", "! ", "✗ ")]
    assert names == [
        "configuration",
        "region",
        "monitor",
        "tracing",
        "components",
        "credentials",
        "endpoint",
    ]
    assert not any(line.startswith("✗") for line in lines)


def test_json_lists_every_check_with_name_ok_detail_advice(emulator):
    code, checks = checks_of(dev_env(emulator.endpoint, LANGFLOW_CMS_MONITOR="all"))
    assert code == 0
    for check in checks.values():
        assert {"name", "ok", "detail", "advice"} <= set(check)
        assert check["ok"] is True
    assert "PutCustomMetric" in checks["endpoint"]["detail"]


def test_the_probe_writes_the_same_series_on_every_run(emulator):
    # each Config.from_env picks a fresh <host>-<pid>-<start id> instance; the probe must not use it
    for _ in range(3):
        assert run_doctor(dev_env(emulator.endpoint), lambda line: None) == 0
    assert len(emulator.requests("PutCustomMetric")) == 3
    entries = emulator.entries("langflow_cms_doctor")
    # one series: within a minute the later writes replace the point (Type=1), across minutes they add points
    assert {json.dumps(e["dimensions"], sort_keys=True) for e in entries} == {
        json.dumps({"env": "dev", "instance": "langflow-cms-doctor"}, sort_keys=True)
    }
    assert len(entries) + emulator.overwrites() == 3
    prod = dev_env(emulator.endpoint, LANGFLOW_CMS_ENV="prod", LANGFLOW_CMS_INSTANCE="web-1")
    assert run_doctor(prod, lambda line: None) == 0
    assert emulator.entries("langflow_cms_doctor")[-1]["dimensions"] == {
        "env": "prod",
        "instance": "langflow-cms-doctor",
    }


# --- the plugin is installed -------------------------------------------------------------------------------


def test_the_tracing_entry_point_is_installed_and_loads():
    check = check_tracing()
    assert check.ok, check
    assert "langflow_cms.langflow.service:CmsTracingService" in check.detail


def test_a_missing_tracing_entry_point_says_how_to_install(monkeypatch):
    monkeypatch.setattr(doctor, "entry_points", lambda group: [])
    check = check_tracing()
    assert not check.ok
    assert "lfx.services" in check.detail and "tracing_service" in check.detail
    assert "pip install langflow-cms" in check.advice


def test_a_tracing_entry_point_that_does_not_load_is_reported(monkeypatch):
    ours = EntryPoint("tracing_service", "langflow_cms.langflow.service:CmsTracingService", "lfx.services")
    monkeypatch.setattr(doctor, "entry_points", lambda group: [ours] if group == "lfx.services" else [])
    monkeypatch.setitem(sys.modules, "langflow_cms.langflow.service", None)  # importing it now fails
    check = check_tracing()
    assert not check.ok
    assert "does not load" in check.detail and "ModuleNotFoundError" in check.detail


def test_another_tracing_service_is_named(monkeypatch):
    other = EntryPoint("tracing_service", "someone_else.tracing:Service", "lfx.services")
    monkeypatch.setattr(doctor, "entry_points", lambda group: [other] if group == "lfx.services" else [])
    check = check_tracing()
    assert not check.ok and "someone_else.tracing:Service" in check.detail


def test_the_components_are_discoverable():
    check = check_components({})
    assert check.ok, check
    for name in ("cms_metric.py", "timer.py", "timer_start.py", "timer_stop.py"):
        assert name in check.detail
    assert "langflow-cms components-path" in check.advice


def test_a_bundle_missing_a_component_file_is_named(tmp_path):
    root = tmp_path / "langflow_cms"
    root.mkdir()
    shutil.copy(PACKAGE / "extension.json", root / "extension.json")
    shutil.copytree(PACKAGE / "components", root / "components")
    (root / "components" / "cms_monitor" / "timer_stop.py").unlink()
    check = check_components({}, package_dir=root)
    assert not check.ok
    assert "timer_stop.py" in check.detail


def test_a_missing_extension_entry_point_is_reported(monkeypatch):
    monkeypatch.setattr(doctor, "entry_points", lambda group: [])
    check = check_components({})
    assert not check.ok
    assert "langflow.extensions" in check.detail
    assert "langflow-cms components-path" in check.advice


def test_a_broken_manifest_is_reported(tmp_path):
    root = tmp_path / "langflow_cms"
    shutil.copytree(PACKAGE / "components", root / "components")
    (root / "extension.json").write_text("{not json")
    check = check_components({}, package_dir=root)
    assert not check.ok and "extension.json" in check.detail


# --- the monitor mode and the region ------------------------------------------------------------------------


def test_the_default_mode_says_unannotated_flows_go_unmonitored(emulator):
    _, checks = checks_of(dev_env(emulator.endpoint))
    monitor = checks["monitor"]
    assert monitor["ok"] is True and monitor["level"] == "warn"
    assert "flows without a CMS Metric node are not monitored" in monitor["detail"]
    assert "LANGFLOW_CMS_MONITOR=all" in monitor["advice"]

    _, checks = checks_of(dev_env(emulator.endpoint, LANGFLOW_CMS_MONITOR="all"))
    assert checks["monitor"]["level"] == "ok" and "every flow" in checks["monitor"]["detail"]

    _, checks = checks_of(dev_env(emulator.endpoint, LANGFLOW_CMS_MONITOR="off"))
    assert checks["monitor"]["level"] == "warn" and "no flow is monitored" in checks["monitor"]["detail"]

    _, checks = checks_of(dev_env(emulator.endpoint, LANGFLOW_CMS_ENABLED="false"))
    assert checks["monitor"]["level"] == "warn" and "LANGFLOW_CMS_ENABLED" in checks["monitor"]["detail"]


def test_an_endpoint_in_another_region_is_a_mistake():
    env = {"LANGFLOW_CMS_ENDPOINT": "metrics.cn-shanghai.aliyuncs.com", "LANGFLOW_CMS_REGION": "cn-hangzhou"}
    check = check_region(Config.from_env(env), env)
    assert not check.ok
    assert "cn-shanghai" in check.detail and "cn-hangzhou" in check.detail
    assert "LANGFLOW_CMS_REGION=cn-shanghai" in check.advice

    same = {"LANGFLOW_CMS_ENDPOINT": "metrics.cn-shanghai.aliyuncs.com", "LANGFLOW_CMS_REGION": "cn-shanghai"}
    assert check_region(Config.from_env(same), same).ok
    derived = {"LANGFLOW_CMS_REGION": "ap-southeast-1"}
    check = check_region(Config.from_env(derived), derived)
    assert check.ok and "metrics.ap-southeast-1.aliyuncs.com" in check.detail


def test_a_region_mismatch_fails_the_doctor(emulator, monkeypatch):
    env = {"LANGFLOW_CMS_ENDPOINT": "metrics.cn-shanghai.aliyuncs.com", "LANGFLOW_CMS_REGION": "cn-hangzhou"}
    # no network here: the region check must fail before (and whatever) the endpoint says
    monkeypatch.setattr(doctor, "check_endpoint", lambda config, provider: Check("endpoint", True, "skipped"))
    passed = Check("credentials", True, "stubbed")
    monkeypatch.setattr(doctor, "check_credentials", lambda config, environ: (passed, object()))
    code, checks = checks_of(env)
    assert code == 1 and checks["region"]["ok"] is False


# --- the endpoint, over real HTTP ---------------------------------------------------------------------------


def test_a_dead_loopback_endpoint_says_start_the_emulator():
    port = free_port()
    code, checks = checks_of(dev_env(f"http://127.0.0.1:{port}"))
    assert code == 1
    endpoint = checks["endpoint"]
    assert endpoint["ok"] is False
    assert "refused" in endpoint["detail"] and "timed out" not in endpoint["detail"]
    assert f"start the emulator with `langflow-cms emulator --port {port}`" in endpoint["advice"]


def test_a_stalled_endpoint_is_a_read_timeout_not_a_refusal(emulator):
    emulator.set_faults(latency=3)
    code, checks = checks_of(dev_env(emulator.endpoint, LANGFLOW_CMS_READ_TIMEOUT="0.5"))
    assert code == 1
    endpoint = checks["endpoint"]
    assert "read timeout" in endpoint["detail"] and "0.5 s" in endpoint["detail"]
    assert "refused" not in endpoint["detail"]
    assert "LANGFLOW_CMS_READ_TIMEOUT" in endpoint["advice"]
    assert "start the emulator" not in endpoint["advice"]


def test_a_permission_error_names_the_least_privilege_policy(emulator):
    emulator.set_faults(script=["Forbidden:403"])
    code, checks = checks_of(dev_env(emulator.endpoint))
    assert code == 1
    endpoint = checks["endpoint"]
    assert "HTTP 403" in endpoint["detail"]
    for needed in ("cms:PutCustomMetric", "policies/metrics.json", "docs/deploy.md"):
        assert needed in endpoint["advice"]
    assert "FullAccess" not in json.dumps(checks)


def test_an_http_200_reply_with_an_error_code_shows_the_real_status(emulator):
    emulator.set_faults(script=["body:500"])
    code, checks = checks_of(dev_env(emulator.endpoint))
    assert code == 1
    detail = checks["endpoint"]["detail"]
    assert "HTTP 200" in detail and "HTTP 500" not in detail
    assert emulator.requests("PutCustomMetric")[-1]["http_status"] == 200

    emulator.set_faults(script=["InternalError"])
    _, checks = checks_of(dev_env(emulator.endpoint))
    assert "HTTP 500" in checks["endpoint"]["detail"]


# --- the command line ---------------------------------------------------------------------------------------


def test_the_cli_prints_json_with_the_same_exit_codes(emulator):
    runner = CliRunner()
    good = runner.invoke(app, ["doctor", "--json"], env=dev_env(emulator.endpoint))
    assert good.exit_code == 0, good.output
    report = json.loads(good.stdout)
    assert report["ok"] is True and report["checks"][0]["name"] == "configuration"

    dead = runner.invoke(app, ["doctor", "--json"], env=dev_env(f"http://127.0.0.1:{free_port()}"))
    assert dead.exit_code == 1 and json.loads(dead.stdout)["ok"] is False

    bad = runner.invoke(app, ["doctor", "--json"], env={"LANGFLOW_CMS_GROUP_ID": "abc"})
    assert bad.exit_code == 2
    (check,) = json.loads(bad.stdout)["checks"]
    assert check["name"] == "configuration" and "LANGFLOW_CMS_GROUP_ID" in check["detail"]


@pytest.mark.parametrize("flag", [[], ["--json"]])
def test_the_cli_text_and_json_agree(emulator, flag):
    result = CliRunner().invoke(app, ["doctor", *flag], env=dev_env(emulator.endpoint))
    assert result.exit_code == 0, result.output
    assert "tracing" in result.stdout and "components" in result.stdout


@pytest.mark.parametrize(
    "keys",
    [
        {},  # the emulator's dev key
        {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tUsersOwnKey",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "users-secret",
        },
    ],
    ids=["dev-key", "keys-in-the-environment"],
)
def test_following_the_dead_endpoint_advice_gives_a_green_doctor(keys, tmp_path):
    """Issue #27 point 5: the advice's command, run as written, makes doctor pass (failed before with keys in
    the environment: the emulator it started accepted only its dev key, InvalidAccessKeyId.NotFound)."""
    import os
    import re
    import signal
    import subprocess
    import time

    port = free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ALIBABA_CLOUD_", "LANGFLOW_CMS_", "ALIYUN_"))
        },
        **dev_env(f"http://127.0.0.1:{port}"),
        **keys,
    }
    code, checks = checks_of(env)
    assert code == 1
    advice = checks["endpoint"]["advice"]
    command = re.search(r"start the emulator with `([^`]+)`", advice)
    assert command, advice
    assert "users-secret" not in advice
    started = subprocess.Popen(
        ["bash", "-c", f"exec {command.group(1)}"],
        env={**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        code, checks = checks_of(env)
        assert code == 0, {name: (c["detail"], c["advice"]) for name, c in checks.items() if not c["ok"]}
    finally:
        started.send_signal(signal.SIGTERM)
        started.wait(timeout=30)


def test_an_emulator_that_does_not_know_the_key_says_how_to_restart_it(emulator):
    """The emulator runs with its dev key only, the shell holds the user's key: the advice names the
    restart command with --key (before: 'check ALIBABA_CLOUD_ACCESS_KEY_ID', which is right for CMS only)."""
    keys = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tUsersOwnKey",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "users-secret",
    }
    port = int(emulator.endpoint.rsplit(":", 1)[1])
    code, checks = checks_of(dev_env(emulator.endpoint, **keys))
    assert code == 1
    advice = checks["endpoint"]["advice"]
    expected = (
        f"langflow-cms emulator --port {port} "
        '--key "$ALIBABA_CLOUD_ACCESS_KEY_ID:$ALIBABA_CLOUD_ACCESS_KEY_SECRET"'
    )
    assert expected in advice and "users-secret" not in advice, advice


def test_a_credentials_service_that_is_down_is_named_not_taken_for_missing_credentials(emulator, tmp_path):
    """A RAM-role or credentials-URI setup whose service answers HTTP 500 is configured right: the advice is
    to check that service (the reporter retries it and keeps the data), not to configure credentials."""
    import time

    from test_credential_hiccups import CredentialsService

    service = CredentialsService()
    service.down_until = time.monotonic() + 600
    try:
        environ = {
            "HOME": str(tmp_path),
            "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
            "ALIBABA_CLOUD_CREDENTIALS_URI": service.url,
            "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
        }
        code, checks = checks_of(environ)
    finally:
        service.httpd.shutdown()
    found = checks["credentials"]
    assert code == 1 and found["ok"] is False
    assert "ALIBABA_CLOUD_CREDENTIALS_URI" in found["detail"] and "HTTP 500" in found["detail"]
    assert "retries" in found["advice"] and "configure credentials" not in found["advice"]
    assert doctor.advice_for("Credentials.Unavailable") == found["advice"]
