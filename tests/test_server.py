"""The plugin inside the real Langflow 1.13 server, on its two run paths.

Langflow ends a run differently per path: ``/api/v1/run`` ends its traces once, the UI build
(``/api/v1/build/{id}/flow``) ends them twice. Each run must still be exactly one flow observation, and
Langflow's own trace view must keep working, since our tracing service replaces Langflow's (it extends it).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import server_support as support

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.timeout(1200)]

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
    server.end_minute()  # the reporter's minute flush now, not at the next wall-clock minute
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

    Runs last (it stops the shared server). It avoids minute boundaries, so only the shutdown can deliver:
    the server's clock is stepped to 5 s into its next minute, instead of waiting for one.
    """
    server.clock.into_next(5)
    time.sleep(1.5)  # every worker has read the step (within 50 ms) and sealed the minute stepped over
    flow_id = server.create_flow("cms-shutdown")
    server.api("POST", f"/api/v1/run/{flow_id}?stream=false", {"input_value": "bye"})
    server.stop()
    assert support.minute_entries(emulator, support.FLOW_METRIC, "cms-shutdown"), (
        "nothing was delivered at shutdown"
    )


NODE_KEY_ID, NODE_KEY_SECRET = "LTAIserverNodeKey0001", "node-key-secret-on-the-server-01"


def create_flow_with_node_key(server: support.LangflowServer, name: str) -> str:
    """The server's Chat Input -> CMS Metric -> Chat Output, with an AccessKey typed into the node."""
    from lfx.graph.flow_builder import add_component, add_connection, empty_flow, layout_flow

    registry = server.registry()
    flow = empty_flow(name, "langflow-cms node AccessKey on the server")
    add_component(flow, "ChatInput", registry, component_id="ChatInput-key1")
    add_component(flow, support.METRIC_TYPE, registry, component_id="CmsMetric-key1")
    add_component(flow, "ChatOutput", registry, component_id="ChatOutput-key1")
    add_connection(flow, "ChatInput-key1", "message", "CmsMetric-key1", "input_value")
    add_connection(flow, "CmsMetric-key1", "output", "ChatOutput-key1", "input_value")
    layout_flow(flow)
    for node in flow["data"]["nodes"]:
        template = node["data"]["node"]["template"]
        if "access_key_id" in template:
            template["access_key_id"].update(value=NODE_KEY_ID, load_from_db=False)
            template["access_key_secret"].update(value=NODE_KEY_SECRET, load_from_db=False)
    return server.api("POST", "/api/v1/flows/", {"name": name, "description": "", "data": flow["data"]})["id"]


def test_a_node_accesskey_carries_its_flows_metrics_on_both_server_run_paths(emulator):
    """The Playground's build gives the graph the job id as its run id after the run started: the node's
    AccessKey must still bind to that run (else every metric of the run waited for it and was dropped at
    the end, 'put the node first'), and the run's metrics go with the node's key only."""
    server = support.shared_server()  # (re)started: the graceful-stop test stops the module's server
    emulator.add_key(NODE_KEY_ID, NODE_KEY_SECRET)
    by_path = {"run": "cms-node-key-run", "build": "cms-node-key-build"}
    for path, name in by_path.items():
        flow_id = create_flow_with_node_key(server, name)
        if path == "run":
            server.api(
                "POST",
                f"/api/v1/run/{flow_id}?stream=false",
                {"input_value": "hello", "input_type": "chat", "output_type": "chat"},
            )
        else:
            events = support.build_events(server, flow_id, "hello")
            assert events[-1]["event"] == "end", events[-1]
    server.end_minute()  # the reporter's minute flush now, not at the next wall-clock minute
    for name in by_path.values():
        flows, _ = support.wait_for_flow(emulator, name, FLOW_COMPONENTS)
        assert support.sample_count(flows) == 1, (name, flows)
        keys = {e["access_key_id"] for e in emulator.entries() if e["dimensions"].get("flow") == name}
        assert keys == {NODE_KEY_ID}, (name, keys)
    log = server.log_path.read_text(errors="replace")
    assert "put the node first" not in log and NODE_KEY_SECRET not in log


OUR_NODES = {
    "CmsMetric-seed1": support.METRIC_TYPE,
    "CmsTimerStart-seed1": "ext:cms_monitor:CmsTimerStartComponent@official",
    "CmsTimerStop-seed1": "ext:cms_monitor:CmsTimerStopComponent@official",
    "CmsTimer-seed1": support.TIMER_TYPE,
}
BROWSER_DRIVER = Path(__file__).with_name("test_browser.py")


def our_outputs(server: support.LangflowServer) -> dict[str, list]:
    """Each plugin node's outputs as the sidebar serves them: (name, types in order, selected type)."""
    registry = server.registry()
    return {
        kind: [(o["name"], o["types"], o.get("selected")) for o in registry[kind]["outputs"]]
        for kind in OUR_NODES.values()
    }


def save_flow_as_the_canvas_does(server: support.LangflowServer, name: str) -> str:
    """Chat Input -> CMS Metric -> Timer Start -> Timer (legacy) -> Timer Stop -> Chat Output, each edge
    recording the source's selected type, as an edge drawn on the canvas does."""
    from lfx.graph.flow_builder import add_component, add_connection, empty_flow, layout_flow

    registry = server.registry()
    flow = empty_flow(name, "langflow-cms restart test")
    chain = ["ChatInput-seed1", *OUR_NODES, "ChatOutput-seed1"]
    add_component(flow, "ChatInput", registry, component_id=chain[0])
    for node_id, kind in OUR_NODES.items():
        add_component(flow, kind, registry, component_id=node_id)
    add_component(flow, "ChatOutput", registry, component_id=chain[-1])
    for source, target in itertools.pairwise(chain):
        kind = OUR_NODES.get(source)
        selected = [registry[kind]["outputs"][0]["selected"]] if kind else None
        output = "output" if kind else "message"
        add_connection(flow, source, output, target, "input_value", source_types=selected, registry=registry)
    layout_flow(flow)
    return server.api("POST", "/api/v1/flows/", {"name": name, "description": "", "data": flow["data"]})["id"]


def open_in_browser(server: support.LangflowServer, flow_id: str) -> dict:
    """Open the flow on the canvas (what an author does after a restart) and let the editor save it."""
    done = subprocess.run(
        [str(support.SERVER_PYTHON), str(BROWSER_DRIVER), "--open", server.url, flow_id],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def edge_ends(flow: dict) -> set[tuple[str, str]]:
    return {(e["source"], e["target"]) for e in flow["data"]["edges"]}


def test_a_saved_flow_keeps_every_edge_across_restarts_with_other_hash_seeds():
    """Issue 26 §1: the pass-through outputs' types, their order and the selected type (Message, first) are
    the same on every start, so a flow saved on one start keeps every edge when the editor opens it after
    a restart under another PYTHONHASHSEED (on the old nodes the selected type followed set order and the
    editor dropped the edges whose recorded type no longer matched, then saved the flow without them)."""
    support.ensure_browser()
    server = support.shared_server()  # started with PYTHONHASHSEED=support.SHARED_SEED
    first = our_outputs(server)
    flow_id = save_flow_as_the_canvas_does(server, "cms-two-seeds")
    saved = server.api("GET", f"/api/v1/flows/{flow_id}")
    assert len(edge_ends(saved)) == 5
    server.restart({"PYTHONHASHSEED": str(int(support.SHARED_SEED) + 1)})
    on_canvas = open_in_browser(server, flow_id)
    after = server.api("GET", f"/api/v1/flows/{flow_id}")
    assert (on_canvas["edges"], edge_ends(after)) == (5, edge_ends(saved)), on_canvas
    assert our_outputs(server) == first
    for outputs in first.values():
        assert outputs == [("output", ["Message", "JSON", "Table"], "Message")], outputs


LITERAL_KEY_ID, LITERAL_KEY_SECRET = "LTAIliteralNodeKey0002", "literal-node-secret-never-shown-02"
POEM_FLOWS = Path(__file__).resolve().parents[1] / "examples" / "flows"


def save_with_a_typed_key(server: support.LangflowServer, example: str, name: str) -> str:
    """An example flow whose CMS Metric node has the AccessKey typed in while its fields keep
    ``load_from_db: true`` (the saved default of a secret field): the value is a key, not a global
    variable's name."""
    data = json.loads((POEM_FLOWS / example).read_text())["data"]
    for node in data["nodes"]:
        template = node["data"]["node"]["template"]
        if "access_key_id" in template:
            assert template["access_key_id"]["load_from_db"] is True  # as saved
            template["access_key_id"].update(value=LITERAL_KEY_ID, load_from_db=True)
            template["access_key_secret"].update(value=LITERAL_KEY_SECRET, load_from_db=True)
    return server.api("POST", "/api/v1/flows/", {"name": name, "description": "", "data": data})["id"]


def test_a_node_accesskey_typed_into_a_global_variable_field_works_like_a_variable(emulator):
    """Issue 24 §8: an AccessKey typed into the CMS Metric node while its fields say ``load_from_db``
    (Langflow looks the value up as a global variable's name and finds none) is used as the key: the
    flow runs, its metrics and a failing run's failure event arrive under that key, with no misleading
    'put the node first' line, and neither part of the key appears in the log, the node's status or any
    event."""
    import urllib.error

    server = support.shared_server()
    emulator.add_key(LITERAL_KEY_ID, LITERAL_KEY_SECRET)
    ok_flow = save_with_a_typed_key(server, "poem.json", "cms-typed-key-ok")
    failing_flow = save_with_a_typed_key(server, "poem_failing.json", "cms-typed-key-fail")
    answer = server.api(
        "POST",
        f"/api/v1/run/{ok_flow}?stream=false",
        {"input_value": "a poem about keys", "output_type": "chat"},
    )
    built = support.build_events(server, ok_flow, "a poem about keys")
    assert built[-1]["event"] == "end", built[-1]
    assert "using the node's AccessKey for this flow only" in json.dumps(built)  # the node's status
    try:
        server.api("POST", f"/api/v1/run/{failing_flow}?stream=false", {"input_value": "a failing poem"})
    except urllib.error.HTTPError as exc:
        failure = exc.read().decode(errors="replace")
    else:  # pragma: no cover - the model node fails on every input
        raise AssertionError("the failing flow succeeded")
    server.end_minute()
    names = ("cms-typed-key-ok", "cms-typed-key-fail")
    for name in names:
        support.wait_for(
            lambda name=name: support.minute_entries(emulator, support.FLOW_METRIC, name),
            what=f"the flow series of {name}",
        )

    def failed() -> list[dict]:
        return [
            e
            for e in emulator.events()
            if json.loads(e["content"]).get("flow") == "cms-typed-key-fail"
            and e["name"] == "langflow_flow_failed"
        ]

    support.wait_for(failed, what="the failing run's failure event")
    ok_runs = support.sample_count(support.minute_entries(emulator, support.FLOW_METRIC, "cms-typed-key-ok"))
    assert ok_runs == 2  # the API run and the Playground build
    [event] = failed()
    assert json.loads(event["content"])["component"] == "OfflinePoetComponent", event  # not our node
    mine = [e for e in emulator.entries() if e["dimensions"].get("flow") in names]
    assert {e["access_key_id"] for e in [*mine, event]} == {LITERAL_KEY_ID}
    log = server.log_path.read_text(errors="replace")
    assert "put the node first" not in log and "ended before the node ran" not in log
    contents = [e["content"] for e in emulator.events()]
    shown = json.dumps([answer, built, failure, contents]) + log
    for part in (LITERAL_KEY_ID, LITERAL_KEY_SECRET):
        assert part not in shown
