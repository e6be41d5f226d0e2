"""Issue #29, done when: the guard against the real Langflow 1.13 server with the plugin, the emulator as CMS.

A flow (the example poem, its CMS Metric node without a hand-set ``version``) is saved as v1 and runs;
it is edited so its offline LLM is ten times slower and saved as v2, and runs again. The server labels every
run with the version whose graph it is (``version=v1``/``v2``, nobody typed it). The guard, given only the
server's URL, sees v2 become active, compares it with v1 on the fleet stream and activates v1 through the
versions API: ``GET /api/v1/flows/{id}`` returns v1's graph, the rollback event is in the emulator, and the
next runs report as v1. The time from v2's activation to the rollback is printed (docs/guard.md).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import server_support as support

from langflow_cms import contract
from langflow_cms.ops.guard import service
from langflow_cms.ops.guard.langflow import LangflowClient
from langflow_cms.ops.guard.spec import parse_guard
from langflow_cms.ops.query import open_reader

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.timeout(1200)]

POEM = Path(__file__).resolve().parents[1] / "examples" / "flows" / "poem.json"
FLOW = "cms-guard-poem"
RUNS = 24
SHOT = "guard_version_history.png"


def poem_data(latency_scale: float) -> dict:
    data = copy.deepcopy(json.loads(POEM.read_text())["data"])
    for node in data["nodes"]:
        template = node["data"]["node"]["template"]
        if "flow_dimensions" in template:
            template["flow_dimensions"]["value"] = {}  # no hand-set version: the server finds it
        if "latency_scale" in template:
            template["latency_scale"]["value"] = latency_scale
    return data


def latency_scale(flow: dict) -> float:
    for node in flow["data"]["nodes"]:
        template = node["data"]["node"]["template"]
        if "latency_scale" in template:
            return float(template["latency_scale"]["value"])
    raise AssertionError("no Offline Poet node")


def traffic(server: support.LangflowServer, flow_id: str, runs: int) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda i: server.api(
                    "POST", f"/api/v1/run/{flow_id}?stream=false", {"input_value": f"topic {i}"}
                ),
                range(runs),
            )
        )


def fleet_runs(emulator, version: str) -> int:
    """Runs of the flow with this version in the fleet stream the emulator received: the raw points of
    the per-version duration copy, one per run whatever its status."""
    return sum(
        1
        for e in emulator.entries(name=contract.FLEET_FLOW_METRIC)
        if e["dimensions"].get("flow") == FLOW and e["dimensions"].get("version") == version
    )


def test_the_guard_rolls_a_slower_version_back_on_the_real_server(tmp_path):
    server, emulator = support.shared_server(), support.shared_emulator()
    # a flow's first runs on a server build its components (seconds on a busy machine): warm them up on
    # another flow, so v1's tail is v1's and not the server's
    warm = server.api(
        "POST", "/api/v1/flows/", {"name": "cms-guard-warm", "description": "", "data": poem_data(0.1)}
    )
    traffic(server, warm["id"], 8)
    flow_id = server.api("POST", "/api/v1/flows/", {"name": FLOW, "description": "", "data": poem_data(0.1)})[
        "id"
    ]
    server.api("POST", f"/api/v1/flows/{flow_id}/versions/", {"description": "fast"})
    spec = parse_guard(
        {
            "guard": {
                "langflow_url": server.url,
                "flows": [flow_id],
                "periods": 1,
                "min_runs": 20,
                "min_minutes": 0,
                "state_file": str(tmp_path / "state.json"),
            }
        },
        str(tmp_path / "monitoring.toml"),
    )
    environ = {
        "LANGFLOW_CMS_DEV": "1",
        "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
        "LANGFLOW_CMS_USER_ID": emulator.user_id,
    }
    from test_guard import sender  # the events go to CMS through the reporter's Transport

    guard = service.Guard(
        spec, LangflowClient(server.url), lambda: open_reader(environ, qps=50), sender(environ)
    )
    assert guard.once()[0]["state"] == service.BASELINE  # v1 active, nothing before it

    traffic(server, flow_id, RUNS)
    flow = server.api("GET", f"/api/v1/flows/{flow_id}")
    server.api("PATCH", f"/api/v1/flows/{flow_id}", {"data": poem_data(40.0)})  # the LLM 400x slower
    server.api("POST", f"/api/v1/flows/{flow_id}/versions/", {"description": "slower"})
    activated = time.monotonic()
    watching = guard.once()[0]
    assert (watching["decision"], watching["baseline"], watching["candidate"]) == ("watching", "v1", "v2")
    traffic(server, flow_id, RUNS)

    decisions: list[dict] = []

    def rolled_back() -> bool:
        decisions.append(guard.once()[0])
        return decisions[-1]["decision"] == service.ROLLED_BACK

    try:
        support.wait_for(rolled_back, timeout=240, what="the guard's rollback")  # the reporter: each minute
    except AssertionError:
        seen = {(e["dimensions"].get("flow"), e["dimensions"].get("version")) for e in emulator.entries()}
        raise AssertionError(f"last decision {decisions[-1]}; series {sorted(seen, key=str)}") from None
    seconds = time.monotonic() - activated
    evidence = decisions[-1]["evidence"]
    print(f"time to rollback: {seconds:.0f} s; evidence: {json.dumps(evidence)}")
    assert evidence["verdict"]["slower"] is True
    assert {d["decision"] for d in decisions[:-1]} <= {"watching"}  # waited on too few runs, no other act

    after = server.api("GET", f"/api/v1/flows/{flow_id}")
    assert latency_scale(after) == 0.1 == latency_scale(flow)  # v1's graph is the flow again
    entries = server.api("GET", f"/api/v1/flows/{flow_id}/versions/")["entries"]
    assert entries[0]["description"] == "Auto-saved before activating v1"

    events = [json.loads(e["content"]) for e in emulator.events(contract.EVENT_GUARD)]
    mine = [e for e in events if e["flow_id"] == flow_id]
    assert [e["decision"] for e in mine] == ["watching", "rolled_back"]
    assert (mine[-1]["baseline"], mine[-1]["candidate"], mine[-1]["flow"]) == ("v1", "v2", FLOW)

    # the runs on either side were labelled by the server, and the next runs report as v1 again
    # the guard may act on the runs of the minutes sent so far; the rest arrive with the next minute
    support.wait_for(
        lambda: fleet_runs(emulator, "v1") >= RUNS and fleet_runs(emulator, "v2") >= RUNS,
        timeout=150,
        what="every v1 and v2 run in the fleet stream",
    )
    v1_before = fleet_runs(emulator, "v1")
    traffic(server, flow_id, 5)
    support.wait_for(lambda: fleet_runs(emulator, "v1") >= v1_before + 5, what="the next runs as v1")
    assert not [
        e
        for e in emulator.entries(name=contract.FLEET_ERROR_METRIC)
        if e["dimensions"].get("flow") == FLOW and e["dimensions"].get("version", "").startswith("draft")
    ]
    assert guard.once()[0]["decision"] == service.ROLLED_BACK  # and v2 is not evaluated again

    # what a person sees: the flow's version history in the Langflow UI (make screenshots keeps it)
    support.ensure_browser()
    shot = tmp_path / SHOT
    driver = Path(__file__).with_name("guard_browser.py")
    result = subprocess.run(
        [str(support.SERVER_PYTHON), str(driver), server.url, flow_id, str(shot)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    panel = json.loads(result.stdout.strip().splitlines()[-1])["text"]
    assert "Auto-saved before activating v1" in panel, panel
    keep = os.environ.get("LANGFLOW_CMS_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / SHOT).write_bytes(shot.read_bytes())
