"""Failure events from the real Langflow 1.13 server (issue #13, done when).

A flow whose model node fails on every input runs on a server of its own (it needs its own environment: an
AccessKey whose secret must never leak, and SLS), through both run paths: ``/api/v1/run`` and the
Playground's build, which ends its traces twice. Each failed run must be exactly one CMS event with the
documented fields, the server's log must hold one JSON line per failed run with the same run id, and
neither the secret nor the prompt's text may appear in any event or log line.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import server_support as support

from langflow_cms import contract

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[1]
FAILING = REPO / "examples" / "flows" / "poem_failing.json"
FAKE_ID, FAKE_SECRET = "LTAIserverEventsKey1", "server-secret-MUST-NOT-LEAK-77"
MARKER = "prompt-marker-server-5e1d"
FLOW = "cms-fail-server"


def run_path(server: support.LangflowServer, flow_id: str, text: str) -> None:
    """``/api/v1/run``: the failure comes back as an HTTP error, which is the flow's, not ours."""
    try:
        server.api("POST", f"/api/v1/run/{flow_id}?stream=false", {"input_value": text})
    except urllib.error.HTTPError as exc:
        assert exc.code >= 400
    else:  # pragma: no cover - the node fails on every input
        raise AssertionError("the failing flow succeeded")


def build_path(server: support.LangflowServer, flow_id: str, text: str) -> None:
    """The Playground's build: its event stream ends with an error event."""
    events = support.build_events(server, flow_id, text)
    assert any(e["event"] == "error" for e in events) or events[-1]["event"] == "end", events[-1]


def test_a_failing_flow_on_the_server_sends_one_event_and_one_log_line_per_run():
    support.ensure_server_venv()
    emulator = support.shared_emulator()
    emulator.add_key(FAKE_ID, FAKE_SECRET)
    server = support.LangflowServer(
        emulator.endpoint,
        extra_env={
            "ALIBABA_CLOUD_ACCESS_KEY_ID": FAKE_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": FAKE_SECRET,
            "LANGFLOW_CMS_SLS_PROJECT": "langflow-logs",
            "LANGFLOW_CMS_SLS_LOGSTORE": "flows",
        },
    )
    try:
        data = json.loads(FAILING.read_text())["data"]
        flow_id = server.api("POST", "/api/v1/flows/", {"name": FLOW, "description": "", "data": data})["id"]
        run_path(server, flow_id, f"{MARKER} one")
        build_path(server, flow_id, f"{MARKER} two")

        def failed() -> list[dict]:
            return [
                json.loads(e["content"])
                for e in emulator.events()
                if e["name"] == contract.EVENT_FLOW_FAILED and json.loads(e["content"])["flow"] == FLOW
            ]

        support.wait_for(lambda: len(failed()) >= 2, what="the two failure events")
    finally:
        server.stop()

    events = failed()
    assert len(events) == 2, events  # exactly one per failed run, though the build path ends twice
    assert len({e["run_id"] for e in events}) == 2
    for event in events:
        assert event["status"] == "error" and event["component"] == "OfflinePoetComponent" and event["node"]
        assert event["error_type"] == "SimulatedProviderError", event
        assert event["instance"] and event["version"] == "v1" and "session_id" in event
        assert event["sls"].startswith("https://sls.console.aliyun.com/lognext/project/langflow-logs/")
        query = parse_qs(urlsplit(event["sls"]).query)["queryString"][0]
        assert event["run_id"] in base64.b64decode(query).decode()  # the search finds this run's log lines
    log = server.log_path.read_text(errors="replace")
    lines = [json.loads(line[line.index('{"event"') :]) for line in log.splitlines() if '{"event"' in line]
    ours = [x for x in lines if x.get("flow") == FLOW and x["event"] == contract.EVENT_FLOW_FAILED]
    assert sorted(line["run_id"] for line in ours) == sorted(e["run_id"] for e in events)
    mine = [e for e in emulator.events() if json.loads(e["content"]).get("flow") == FLOW]
    everything = json.dumps(mine) + json.dumps(ours)
    assert FAKE_SECRET not in everything and MARKER not in everything
    assert FAKE_SECRET not in log  # nothing in the server's log either
    assert {e["access_key_id"] for e in mine} == {FAKE_ID}
