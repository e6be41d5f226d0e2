"""Issue #13: failure events and log lines, from an alarm to the run that failed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from langflow_cms import contract
from langflow_cms.config import Config
from langflow_cms.credentials import Credential, credential_provider
from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET
from langflow_cms.events import safe_message, sls_link
from langflow_cms.langflow import monitor as lf_monitor
from langflow_cms.reporter import Reporter

REPO = Path(__file__).resolve().parents[1]
FAILING = REPO / "examples" / "flows" / "poem_failing.json"
LFX = Path(sys.executable).with_name("lfx")
FAKE_ID, FAKE_SECRET = "LTAIeventsTestKey01", "events-secret-MUST-NOT-LEAK-42"
MARKER = "prompt-marker-7f3a9c"


def event_contents(emulator, name: str) -> list[dict]:
    return [json.loads(e["content"]) for e in emulator.events() if e["name"] == name]


@pytest.mark.slow
def test_lfx_run_of_a_failing_flow_sends_one_event_and_one_log_line_per_run(emulator, env):
    emulator.add_key(FAKE_ID, FAKE_SECRET)
    run_env = {
        **env,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": FAKE_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": FAKE_SECRET,
        "LANGFLOW_CMS_SLS_PROJECT": "langflow-logs",
        "LANGFLOW_CMS_SLS_LOGSTORE": "flows",
    }
    lines = []
    for i in range(2):
        result = subprocess.run(
            [str(LFX), "run", "--format", "json", str(FAILING), f"{MARKER} boom {i}"],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert MARKER not in result.stderr.replace(f"{MARKER} boom", "")  # only lfx's echo of the input
        lines += [json.loads(line) for line in result.stderr.splitlines() if line.startswith('{"event"')]
    failed = event_contents(emulator, contract.EVENT_FLOW_FAILED)
    assert len(failed) == 2  # exactly one event per failed run
    for event in failed:
        assert event["flow"] == "poem_failing" and event["status"] == "error"
        assert event["component"] == "OfflinePoetComponent" and event["node"]
        assert (
            event["error_type"] == "SimulatedProviderError" and "simulated provider error" in event["message"]
        )
        assert event["run_id"] and event["trace_id"] == event["run_id"] and "session_id" in event
        assert event["instance"] and event["version"] == "v1"
        assert event["sls"].startswith(
            "https://sls.console.aliyun.com/lognext/project/langflow-logs/logsearch/flows?"
        )
    assert sorted(line["run_id"] for line in lines) == sorted(event["run_id"] for event in failed)
    everything = json.dumps([e for e in emulator.events()]) + json.dumps(lines)
    assert FAKE_SECRET not in everything and MARKER not in everything
    assert {e["access_key_id"] for e in emulator.events()} == {FAKE_ID}


def graph(name: str) -> SimpleNamespace:
    cms = SimpleNamespace(vertex_type="ext:cms_monitor:CmsMetricComponent@extra", custom_component=None)
    cms.params = cms.raw_params = {}
    return SimpleNamespace(flow_name=name, flow_id=None, vertices=[cms])


def test_a_failure_storm_is_not_an_event_storm_and_metrics_are_not_delayed(emulator, monkeypatch):
    """Done when (#13): 1,000 failing runs in a minute produce at most K + 1 events for that flow."""
    settings = {
        "LANGFLOW_CMS_DEV": "1",
        "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
        "LANGFLOW_CMS_MAX_QPS": "200",
    }
    provider = credential_provider(Credential(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, source="test"))
    reporter = Reporter(Config.from_env(settings), provider, start=False)
    minute = int(reporter.events.clock() // 60)
    reporter.events.clock = lambda: minute * 60 + 10.0  # all within one minute
    monkeypatch.setattr(lf_monitor, "get_recorder", lambda: reporter)
    monitor = lf_monitor.FlowMonitor()
    for i in range(1000):
        monitor.start_run(f"run-{i}", graph("stormy"))
        monitor.end_run(f"run-{i}", RuntimeError("upstream 503"))
    assert reporter.close(timeout=30)
    failed = event_contents(emulator, contract.EVENT_FLOW_FAILED)
    summary = event_contents(emulator, contract.EVENT_SUPPRESSED)
    assert len(failed) == 10 and len(summary) == 1 and summary[0]["suppressed"] == 990
    flows = [e for e in emulator.entries(contract.FLOW_METRIC) if e["period"] == 60]
    assert sum(e["values"]["SampleCount"] for e in flows) == 1000  # delivered in the same close


def test_messages_are_redacted_blank_the_input_and_are_short():
    secret_like = "AccessKeySecret=abcdefgh12345678"
    text = safe_message(
        RuntimeError(f"failed on 'write a poem about {MARKER}' {secret_like}\nTraceback..."), (MARKER,)
    )
    assert MARKER not in text and "abcdefgh12345678" not in text and "Traceback" not in text
    assert len(safe_message(RuntimeError("x" * 5000))) == 300


def test_the_sls_link_searches_the_run_around_its_time():
    link = sls_link("proj-1", "store_1", "cn-shanghai", run_id="r-1", at=1_800_000_000)
    assert link.startswith(
        "https://sls.console.aliyun.com/lognext/project/proj-1/logsearch/store_1?encode=base64"
    )
    assert "startTime=1799999700" in link and "endTime=1800000300" in link and "slsRegion=cn-shanghai" in link
    assert sls_link(None, "x", "cn-hangzhou", run_id="r", at=0) is None
