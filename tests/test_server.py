"""The plugin inside the real Langflow 1.13 server, on its two run paths.

Langflow ends a run differently per path: ``/api/v1/run`` ends its traces once, the UI build
(``/api/v1/build/{id}/flow``) ends them twice. Each run must still be exactly one flow observation, and
Langflow's own trace view must keep working, since our tracing service replaces Langflow's (it extends it).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import server_support as support

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

FLOW_COMPONENTS = support.FLOW_COMPONENTS
CONCURRENT_FLOWS = ("cms-conc-a", "cms-conc-b")
CONCURRENT_RUNS = 50


@pytest.fixture(scope="module")
def server() -> support.LangflowServer:
    return support.shared_server()


@pytest.fixture(scope="module")
def emulator():
    return support.shared_emulator()


@pytest.fixture(scope="module")
def runs(server) -> dict[str, str]:
    """Both runs up front, so one wait for the reporter's minute flush covers every test of the module."""
    run_flow = server.create_flow("cms-api-run")
    server.api(
        "POST",
        f"/api/v1/run/{run_flow}?stream=false",
        {"input_value": "hello", "input_type": "chat", "output_type": "chat"},
    )
    build_flow = server.create_flow("cms-ui-build")
    events = support.build_events(server, build_flow, "hello")
    assert events[-1]["event"] == "end", events[-1]
    concurrent = [server.create_flow(name) for name in CONCURRENT_FLOWS]
    with ThreadPoolExecutor(max_workers=CONCURRENT_RUNS) as pool:
        answers = list(
            pool.map(
                lambda i: server.api(
                    "POST",
                    f"/api/v1/run/{concurrent[i % 2]}?stream=false",
                    {"input_value": f"run {i}", "input_type": "chat", "output_type": "chat"},
                ),
                range(CONCURRENT_RUNS),
            )
        )
    assert len(answers) == CONCURRENT_RUNS
    return {"run": run_flow, "build": build_flow}


def test_50_concurrent_runs_on_one_server_are_attributed_exactly(runs, emulator):
    """Issue 7 §6: two flows, 25 runs each, all at once: every flow and node count is exactly its own."""
    each = CONCURRENT_RUNS // 2
    for name in CONCURRENT_FLOWS:
        support.wait_for_flow(emulator, name, FLOW_COMPONENTS)
        # Runs that straddled a minute boundary arrive with the next window, and one window's entries can
        # span several PutCustomMetric calls: wait until every series has all its runs, then check none
        # has more.
        support.wait_for(
            lambda name=name: all(
                count >= each for count in support.run_counts(emulator, name, FLOW_COMPONENTS).values()
            ),
            what=f"all {each} runs of {name}, flow and nodes",
        )
        # Summed over windows (a component has one entry per minute it ran in).
        assert support.run_counts(emulator, name, FLOW_COMPONENTS) == dict.fromkeys(
            {"flow", *FLOW_COMPONENTS}, each
        )


@pytest.mark.parametrize(("path", "name"), [("run", "cms-api-run"), ("build", "cms-ui-build")])
def test_one_flow_observation_per_run(runs, emulator, path, name):
    flows, nodes = support.wait_for_flow(emulator, name, FLOW_COMPONENTS)
    assert support.sample_count(flows) == 1, flows
    assert {e["dimensions"]["status"] for e in flows} == {"ok"}
    per_component = {e["dimensions"]["component"]: e["values"]["SampleCount"] for e in nodes}
    assert per_component == dict.fromkeys(FLOW_COMPONENTS, 1)


def test_native_trace_view_still_works(server, runs):
    """Langflow's own tracer still records the run, with a span per component, next to ours."""
    flow_id = runs["run"]
    traces = support.wait_for(
        lambda: server.api("GET", f"/api/v1/monitor/traces?flow_id={flow_id}")["traces"],
        timeout=30,
        what="Langflow's native trace of the /api/v1/run call",
    )
    assert len(traces) == 1 and traces[0]["status"] == "ok", traces
    detail = server.api("GET", f"/api/v1/monitor/traces/{traces[0]['id']}")
    assert {span["name"] for span in detail["spans"]} >= {"Chat Input", "CMS Metric", "Chat Output"}


def test_graceful_stop_delivers_the_last_window(server, emulator):
    """A deploy or restart must not lose the current minute: SIGTERM has to flush what was recorded.

    Runs last (it stops the shared server). It avoids minute boundaries, so only the shutdown can deliver.
    """
    if time.time() % 60 > 40:
        time.sleep(61 - time.time() % 60)
    flow_id = server.create_flow("cms-shutdown")
    server.api("POST", f"/api/v1/run/{flow_id}?stream=false", {"input_value": "bye"})
    server.stop()
    assert support.minute_entries(emulator, support.FLOW_METRIC, "cms-shutdown"), (
        "nothing was delivered at shutdown"
    )
