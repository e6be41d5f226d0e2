"""The tracing service's bookkeeping, with an injected recorder (no reporter, no network).

End-to-end behaviour against the emulator is in test_flows.py; these tests pin the per-run logic: one
record per run however many ends arrive, failures recorded as errors, the monitoring mode, concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from langflow_cms.langflow import flow_settings, monitor
from langflow_cms.langflow import runs as lf_runs
from langflow_cms.langflow import service as lf_service
from langflow_cms.langflow.tokens import TokenUsageHandler, usage_from_result


def set_mode(monkeypatch, mode: str) -> None:
    """LANGFLOW_CMS_MONITOR is read once per process, with the reporter's configuration; these tests
    inject the recorder, so they set the mode the same way."""
    monkeypatch.setenv("LANGFLOW_CMS_MONITOR", mode)
    monkeypatch.setattr(flow_settings, "monitor_mode", lambda: mode)


class FakeRecorder:
    def __init__(self) -> None:
        self.records: list[tuple[str, float, dict[str, str]]] = []

    def record(self, name, value, dimensions):
        self.records.append((name, value, dict(dimensions)))

    def flush(self):
        pass

    def named(self, name: str) -> list[tuple[float, dict[str, str]]]:
        return [(value, dims) for n, value, dims in self.records if n == name]


class BrokenRecorder:
    def record(self, name, value, dimensions):
        raise RuntimeError("reporter exploded")

    def flush(self):
        raise RuntimeError("reporter exploded")


@pytest.fixture
def recorder(monkeypatch):
    fake = FakeRecorder()
    monkeypatch.setattr(monitor, "get_recorder", lambda: fake)
    set_mode(monkeypatch, "all")
    return fake


def make_graph(name="poem", *, annotated=False, dims=None, run_id=None):
    vertices = [SimpleNamespace(vertex_type="ChatInput", custom_component=None, params={}, raw_params={})]
    if annotated:
        params = {"flow_dimensions": dims or {}}
        vertices.append(
            SimpleNamespace(
                vertex_type="ext:cms_monitor:CmsMetricComponent@extra",
                custom_component=None,
                params=params,
                raw_params=params,
            )
        )
    return SimpleNamespace(
        flow_name=name, flow_id=None, vertices=vertices, _run_id=run_id or str(uuid.uuid4())
    )


def make_component(graph, node_id="Prompt-x1Y2z", vertex_type="Prompt"):
    return SimpleNamespace(graph=graph, _id=node_id, _vertex=SimpleNamespace(vertex_type=vertex_type))


def service() -> lf_service.CmsTracingService:
    svc = lf_service.CmsTracingService()
    svc.monitor = monitor.FlowMonitor()
    return svc


async def run_flow(svc, graph, nodes, *, fail_at=None, ends=1):
    """Drive the hooks the way Graph does: start, one trace_component per node, end (maybe twice)."""
    await svc.start_tracers(uuid.UUID(graph._run_id), "run", None, None)
    error = None
    for node_id in nodes:
        try:
            async with svc.trace_component(make_component(graph, node_id), node_id, {}):
                await asyncio.sleep(0.001)
                if node_id == fail_at:
                    raise ValueError("node failed")
        except ValueError as exc:
            error = exc
            break
    for _ in range(ends):
        await svc.end_tracers({}, error)


def test_success_records_flow_and_nodes_once_even_when_ended_twice(recorder):
    svc = service()
    graph = make_graph()
    asyncio.run(run_flow(svc, graph, ["ChatInput-a", "Prompt-b"], ends=2))
    flows = recorder.named(lf_runs.FLOW_METRIC)
    assert [dims for _, dims in flows] == [{"flow": "poem", "status": "ok"}]
    nodes = recorder.named(lf_runs.NODE_METRIC)
    assert [dims["node"] for _, dims in nodes] == ["ChatInput-a", "Prompt-b"]
    assert all(dims["status"] == "ok" and dims["component"] == "Prompt" for _, dims in nodes)
    assert flows[0][0] >= max(value for value, _ in nodes)


def test_failed_node_ends_the_run_as_error_without_an_end_signal(recorder):
    svc = service()
    graph = make_graph()
    asyncio.run(run_flow(svc, graph, ["A-1", "B-2", "C-3"], fail_at="B-2", ends=0))  # lfx run: no end
    assert [dims["status"] for _, dims in recorder.named(lf_runs.NODE_METRIC)] == ["ok", "error"]
    assert [dims["status"] for _, dims in recorder.named(lf_runs.FLOW_METRIC)] == ["error"]
    assert svc.monitor.open_runs() == []


def test_a_node_fails_the_run_after_the_graph_took_a_new_run_id(recorder, monkeypatch):
    """Langflow's UI build starts the tracers, then gives the graph the job id as its run id: the failing
    node must still end its run as error (and so send its failure event)."""
    svc = service()
    graph = make_graph()
    monkeypatch.setattr(lf_service, "_graph_from_stack", lambda: graph)  # start_tracers runs inside the graph

    async def build() -> None:
        await svc.start_tracers(uuid.UUID(graph._run_id), "run", None, None)
        graph._run_id = str(uuid.uuid4())  # build.py: graph.set_run_id(job_id)
        with pytest.raises(ValueError):
            async with svc.trace_component(make_component(graph, "B-2"), "B-2", {}):
                raise ValueError("node failed")

    asyncio.run(build())
    assert [dims["status"] for _, dims in recorder.named(lf_runs.FLOW_METRIC)] == ["error"]
    assert svc.monitor.open_runs() == []


def test_failed_run_that_is_also_ended_records_once(recorder):
    svc = service()
    asyncio.run(run_flow(svc, make_graph(), ["A-1", "B-2"], fail_at="A-1", ends=2))
    assert len(recorder.named(lf_runs.FLOW_METRIC)) == 1


def test_exit_safety_net_records_unfinished_runs_as_error(recorder):
    svc = service()
    graph = make_graph()
    asyncio.run(svc.start_tracers(uuid.UUID(graph._run_id), "run", None, None))
    assert svc.monitor.end_all() == 1
    assert [dims["status"] for _, dims in recorder.named(lf_runs.FLOW_METRIC)] == ["error"]
    assert svc.monitor.end_all() == 0


def test_annotated_mode_measures_only_flows_with_a_cms_metric_node(recorder, monkeypatch):
    set_mode(monkeypatch, "annotated")
    svc = service()
    asyncio.run(run_flow(svc, make_graph("plain"), ["A-1"]))
    asyncio.run(run_flow(svc, make_graph("tagged", annotated=True, dims={"version": "v2"}), ["A-1"]))
    flows = [dims for _, dims in recorder.named(lf_runs.FLOW_METRIC)]
    assert flows == [{"flow": "tagged", "status": "ok", "version": "v2"}]
    assert {dims["flow"] for _, dims in recorder.named(lf_runs.NODE_METRIC)} == {"tagged"}


def test_off_mode_records_nothing(recorder, monkeypatch):
    set_mode(monkeypatch, "off")
    svc = service()
    asyncio.run(run_flow(svc, make_graph(annotated=True), ["A-1"], fail_at="A-1"))
    assert recorder.records == []


def test_a_broken_reporter_never_breaks_the_flow(monkeypatch):
    monkeypatch.setattr(monitor, "get_recorder", lambda: BrokenRecorder())
    set_mode(monkeypatch, "all")
    asyncio.run(run_flow(service(), make_graph(), ["A-1", "B-2"], ends=2))  # must not raise
    lf_service._exit_safety_net()


def test_node_errors_still_propagate(recorder):
    svc = service()

    async def go():
        async with svc.trace_component(make_component(make_graph()), "x", {}):
            raise KeyError("the component's own error")

    with pytest.raises(KeyError):
        asyncio.run(go())


def test_concurrent_runs_are_attributed_to_their_own_run(recorder):
    """50 interleaved runs of 3 flows in one event loop; every run's end finds its own state."""
    svc = service()

    async def one(i: int):
        graph = make_graph(f"flow{i % 3}")
        await asyncio.sleep(0.001 * (i % 7))
        await run_flow(svc, graph, [f"A-{i % 3}", f"B-{i % 3}"], fail_at=f"B-{i % 3}" if i % 5 == 0 else None)

    async def main():
        await asyncio.gather(*(asyncio.create_task(one(i)) for i in range(50)))

    asyncio.run(main())
    flows = recorder.named(lf_runs.FLOW_METRIC)
    assert len(flows) == 50
    for k in range(3):
        runs = [i for i in range(50) if i % 3 == k]
        errors = [i for i in runs if i % 5 == 0]
        got = [dims["status"] for _, dims in flows if dims["flow"] == f"flow{k}"]
        assert sorted(got) == sorted(["error"] * len(errors) + ["ok"] * (len(runs) - len(errors)))
        nodes_b = [d for _, d in recorder.named(lf_runs.NODE_METRIC) if d["node"] == f"B-{k}"]
        assert len(nodes_b) == len(runs)
    assert svc.monitor.open_runs() == []


def test_flow_label_fallbacks():
    assert flow_settings.flow_label(SimpleNamespace(flow_name="Poem", flow_id="id-1")) == "Poem"
    assert flow_settings.flow_label(SimpleNamespace(flow_name=None, flow_id="id-1")) == "id-1"
    assert flow_settings.flow_label(SimpleNamespace(flow_name=None, flow_id=None), "poem") == "poem"
    assert flow_settings.flow_label(None) == flow_settings.UNNAMED_FLOW
    assert flow_settings.flow_label(SimpleNamespace(flow_name="a=b,c&d", flow_id=None)) == "a_b_c_d"


def test_source_name_is_found_on_the_stack():
    def run_flow(script_path):  # the shape of lfx.run.base.run_flow
        return flow_settings.source_name_from_stack()

    assert run_flow(Path("/x/examples/poem.json")) == "poem"

    def load() -> str | None:  # the path in a local that a closure captures (a cell, not in co_varnames)
        flow = "/x/examples/haiku.json"

        def later() -> str:
            return flow

        return flow_settings.source_name_from_stack() if later() else None

    assert load() == "haiku"

    def loader():  # the path a free variable of a closure that runs after its maker returned
        flow = "/x/examples/limerick.json"
        return lambda: (flow, flow_settings.source_name_from_stack())[1]

    assert loader()() == "limerick"
    script = "flow = '/x/examples/sonnet.json'\nstem = flow_settings.source_name_from_stack()\n"
    namespace = {"flow_settings": flow_settings}
    exec(compile(script, "run_my_flow.py", "exec"), namespace)  # a module-level script: flow = ...; run
    assert namespace["stem"] == "sonnet"


def test_a_flow_files_own_name_comes_before_its_stem(tmp_path):
    """#25: node Flow Name, then the flow JSON's "name", then the file stem only when the flow has none."""
    import json

    named, unnamed = tmp_path / "poem_slow.json", tmp_path / "haiku_copy.json"
    named.write_text(json.dumps({"name": "poem", "data": {"nodes": [], "edges": []}}), encoding="utf-8")
    unnamed.write_text(json.dumps({"data": {"nodes": [], "edges": []}}), encoding="utf-8")

    def run_flow(script_path):  # the shape of lfx.run.base.run_flow
        return flow_settings.source_name_from_stack()

    assert run_flow(named) == "poem"
    assert run_flow(str(unnamed)) == "haiku_copy"

    def arun_flow_from_json(flow):  # a flow passed as its JSON dict
        return flow_settings.source_name_from_stack()

    assert arun_flow_from_json({"name": "sonnet", "data": {}}) == "sonnet"
    graph = SimpleNamespace(flow_name=None, flow_id=None, vertices=[])
    assert flow_settings.flow_label(graph, run_flow(named)) == "poem"


def test_flow_dimensions_are_cleaned_capped_and_cannot_shadow_ours():
    dims = flow_settings.parse_dimensions({"version": "v2", "status": "x", "a": "1", "b": "2", "c": "3"})
    assert dims == {"version": "v2", "a": "1", "b": "2"}
    assert flow_settings.parse_dimensions("version=v3, team = search") == {"version": "v3", "team": "search"}


def test_token_usage_from_chat_models_and_legacy_llm_output():
    message = AIMessage(
        content="hi",
        usage_metadata={"input_tokens": 7, "output_tokens": 11, "total_tokens": 18},
        response_metadata={"model_name": "qwen-max"},
    )
    result = LLMResult(generations=[[ChatGeneration(message=message)]])
    assert usage_from_result(result) == (7, 11, "qwen-max")
    legacy = LLMResult(
        generations=[[]],
        llm_output={"model_name": "gpt-x", "token_usage": {"prompt_tokens": 3, "completion_tokens": 5}},
    )
    assert usage_from_result(legacy) == (3, 5, "gpt-x")


def test_token_handler_uses_the_model_from_the_start_event():
    seen = []
    handler = TokenUsageHandler(lambda model, direction, n: seen.append((model, direction, n)))
    run_id = uuid.uuid4()
    handler.on_chat_model_start({}, [], run_id=run_id, invocation_params={"model": "qwen-plus"})
    message = AIMessage(
        content="x", usage_metadata={"input_tokens": 2, "output_tokens": 3, "total_tokens": 5}
    )
    handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]), run_id=run_id)
    assert seen == [("qwen-plus", "input", 2), ("qwen-plus", "output", 3)]


def test_langchain_callbacks_are_bound_to_the_current_node_s_run(recorder):
    svc = service()
    graph = make_graph("tokens")

    async def go():
        await svc.start_tracers(uuid.UUID(graph._run_id), "run", None, None)
        async with svc.trace_component(make_component(graph, "LLM-1"), "LLM", {}):
            (handler,) = svc.get_langchain_callbacks()
            message = AIMessage(
                content="x", usage_metadata={"input_tokens": 4, "output_tokens": 9, "total_tokens": 13}
            )
            handler.on_llm_end(
                LLMResult(generations=[[ChatGeneration(message=message)]]), run_id=uuid.uuid4()
            )
        assert svc.get_langchain_callbacks() == []  # outside a node build: nothing to attribute to

    asyncio.run(go())
    tokens = recorder.named("langflow_llm_tokens")
    assert tokens == [
        (4.0, {"flow": "tokens", "model": "unknown", "direction": "input"}),
        (9.0, {"flow": "tokens", "model": "unknown", "direction": "output"}),
    ]


def test_node_labels_are_cached_by_identity_and_never_hash_the_graph(monkeypatch):
    """bench row 2: every node build looked its labels up in a WeakKeyDictionary, which hashes the key, and
    lfx's ``Graph.__hash__``/``__eq__`` render the whole graph (``repr``): ~45 µs per node of a 10-node
    flow, most of the plugin's overhead. Two graphs of the same flow are equal to lfx, yet each keeps its
    own labels (a renamed node is named anew)."""
    from lfx.graph.graph.base import Graph
    from lfx.load import aload_flow_from_json

    poem = str(Path(__file__).resolve().parents[1] / "langflow_cms" / "examples" / "flows" / "poem.json")
    first, second = (asyncio.run(aload_flow_from_json(poem)) for _ in range(2))
    renders = []
    original = Graph.__repr__
    monkeypatch.setattr(Graph, "__repr__", lambda self: renders.append(1) or original(self))
    labels = {v.id: flow_settings.node_label(first, v.id) for v in first.vertices}
    for _ in range(50):
        for vertex in first.vertices:
            assert flow_settings.node_label(first, vertex.id) == labels[vertex.id]
    assert renders == []
    renamed = second.vertices[0]
    renamed.display_name = "Renamed Step"
    assert flow_settings.node_label(second, renamed.id) == "Renamed_Step"
    assert flow_settings.node_label(first, renamed.id) == labels[renamed.id]


@pytest.mark.parametrize("ui_build", [False, True], ids=["lfx-run", "ui-build-job-id"])
def test_a_loop_body_subgraph_extends_its_parent_run(recorder, monkeypatch, ui_build):
    """lfx runs each Loop iteration as a subgraph (``Graph.create_subgraph``: same run id, ``_is_subgraph``,
    flow name ``<flow>_subgraph``) that starts the tracers again but never ends them. The iterations belong
    to the parent's run: its flow series is recorded once, timed from the parent's start, with the parent's
    label, and the body's nodes are the flow's nodes, once per iteration. The UI build gives the graph the
    job id as its run id after the tracers started, so its loop body carries an id no run started with."""
    set_mode(monkeypatch, "annotated")  # the CMS Metric node is in the parent, outside the loop body
    svc = service()

    class Graph(SimpleNamespace):  # weak-referenceable, as lfx's Graph is
        pass

    parent = Graph(**vars(make_graph("poem", annotated=True)))
    parent.vertices.append(SimpleNamespace(id="Parser-b", display_name="Parser", vertex_type="Parser"))
    parent.vertices.append(SimpleNamespace(id="Join-c", display_name="Parser", vertex_type="Parser"))
    starting = {"graph": parent}
    monkeypatch.setattr(lf_service, "_graph_from_stack", lambda: starting["graph"])

    async def run() -> None:
        await svc.start_tracers(uuid.UUID(parent._run_id), "run", None, None)
        if ui_build:
            parent._run_id = str(uuid.uuid4())  # build.py: graph.set_run_id(job_id)
        async with svc.trace_component(make_component(parent, "Loop-a", "LoopComponent"), "Loop-a", {}):
            await asyncio.sleep(0.02)  # before the iterations: part of the run's duration
            for _ in range(3):
                body = SimpleNamespace(
                    flow_name="poem_subgraph",
                    flow_id=None,
                    vertices=[SimpleNamespace(id="Parser-b", display_name="Parser", vertex_type="Parser")],
                    _run_id=parent._run_id,
                    _is_subgraph=True,
                )
                starting["graph"] = body
                await svc.start_tracers(uuid.UUID(parent._run_id), "run", None, None)
                async with svc.trace_component(make_component(body, "Parser-b", "Parser"), "Parser-b", {}):
                    pass
        async with svc.trace_component(make_component(parent, "Join-c", "Parser"), "Join-c", {}):
            pass
        await svc.end_tracers({}, None)

    asyncio.run(run())
    flows = recorder.named(lf_runs.FLOW_METRIC)
    assert [dims for _, dims in flows] == [{"flow": "poem", "status": "ok"}]
    assert flows[0][0] >= 20.0  # from the parent's start, not from the last iteration's
    nodes = [(dims["flow"], dims["node"]) for _, dims in recorder.named(lf_runs.NODE_METRIC)]
    # the body's node keeps the label it has in the whole flow (two nodes named Parser: with their ids' tails)
    assert nodes == [("poem", "Parser_b")] * 3 + [("poem", "Loop-a"), ("poem", "Parser_c")]
    assert svc.monitor.open_runs() == []


def test_a_loop_body_never_joins_a_dead_run_whose_graph_id_was_reused(recorder, monkeypatch):
    """Review: a run stopped from the UI (CancelledError: never ended) keeps its graph-id alias for hours;
    when a new run's loop body gets the freed graph's address, its nodes and its failure went to the dead
    run. A body joins the run of the Loop node it is built in."""
    import builtins

    svc = service()
    reused: dict[int, int] = {}
    monkeypatch.setattr(monitor, "id", lambda o: reused.get(builtins.id(o), builtins.id(o)), raising=False)
    starting: dict[str, object] = {}
    monkeypatch.setattr(lf_service, "_graph_from_stack", lambda: starting.get("graph"))

    class Graph(SimpleNamespace):
        pass

    def graph(name: str, **extra) -> Graph:
        return Graph(flow_name=name, flow_id=None, vertices=[], _run_id=str(uuid.uuid4()), **extra)

    async def run() -> None:
        stopped = starting["graph"] = graph("stopped")
        await svc.start_tracers(uuid.UUID(stopped._run_id), "run", None, None)
        stopped._run_id = str(uuid.uuid4())  # the UI build's job id
        with contextlib.suppress(asyncio.CancelledError):
            async with svc.trace_component(make_component(stopped, "Loop-a", "Loop"), "Loop-a", {}):
                raise asyncio.CancelledError  # Stop: the run never ends
        dead_id = builtins.id(stopped)
        live = starting["graph"] = graph("live")
        await svc.start_tracers(uuid.UUID(live._run_id), "run", None, None)
        live._run_id = str(uuid.uuid4())
        async with svc.trace_component(make_component(live, "Loop-a", "Loop"), "Loop-a", {}):
            body = starting["graph"] = graph("live_subgraph", _is_subgraph=True)
            body._run_id = live._run_id
            reused[builtins.id(body)] = dead_id  # the body got the stopped graph's address
            await svc.start_tracers(uuid.UUID(body._run_id), "run", None, None)
            async with svc.trace_component(make_component(body, "Body-b", "Parser"), "Body-b", {}):
                pass
        starting["graph"] = live
        await svc.end_tracers({}, None)

    asyncio.run(run())
    nodes = [(dims["flow"], dims["node"]) for _, dims in recorder.named(lf_runs.NODE_METRIC)]
    assert nodes == [("live", "Body-b"), ("live", "Loop-a")]
    assert [dims for _, dims in recorder.named(lf_runs.FLOW_METRIC)] == [{"flow": "live", "status": "ok"}]


class WeakGraph:
    """A stand-in graph that, like lfx's ``Graph``, can be weakly referenced (so its node series are kept)."""

    def __init__(self, template) -> None:
        self.__dict__.update(vars(template))


def node_windows(reporter) -> dict[tuple[str, str], int]:
    """(node, version) → values in the 60 s windows of the node metric, as delivery would send them."""
    counts: dict[tuple[str, str], int] = {}
    for window in reporter.storage.collect(force=True):
        if window.name == lf_runs.NODE_METRIC and window.period == 60:
            dims = dict(window.dimensions)
            key = (dims["node"], dims.get("version", ""))
            counts[key] = counts.get(key, 0) + window.count
    return counts


def test_runs_of_one_graph_object_reuse_node_series_yet_follow_a_new_flow_dimension_and_reporter(
    make_reporter, monkeypatch
):
    """A node's label, dimensions and bound series are worked out once per graph object (bench row 2: the
    per-node cost), but never outlive what they were made from: the same graph re-run with another flow
    dimension (a tweak) reports under the new one, and a new reporter gets the next run's values."""
    set_mode(monkeypatch, "annotated")
    first, second = make_reporter(), make_reporter()
    current = [first]
    monkeypatch.setattr(monitor, "get_recorder", lambda: current[0])
    svc = service()
    graph = WeakGraph(make_graph(annotated=True, dims={"version": "v1"}))
    asyncio.run(run_flow(svc, graph, ["A-1", "B-2"]))
    graph._run_id = str(uuid.uuid4())
    asyncio.run(run_flow(svc, graph, ["A-1", "B-2"]))
    graph.vertices[1].params["flow_dimensions"] = {"version": "v2"}
    graph._run_id = str(uuid.uuid4())
    asyncio.run(run_flow(svc, graph, ["A-1", "B-2"]))
    current[0] = second
    graph._run_id = str(uuid.uuid4())
    asyncio.run(run_flow(svc, graph, ["A-1", "B-2"]))
    assert node_windows(first) == {("A-1", "v1"): 2, ("B-2", "v1"): 2, ("A-1", "v2"): 1, ("B-2", "v2"): 1}
    assert node_windows(second) == {("A-1", "v2"): 1, ("B-2", "v2"): 1}


def test_node_series_are_kept_no_longer_than_their_graph(make_reporter, monkeypatch):
    """A server builds a new graph per request: what the monitor keeps for a graph goes with it."""
    import gc
    import weakref

    set_mode(monkeypatch, "all")
    reporter = make_reporter()
    monkeypatch.setattr(monitor, "get_recorder", lambda: reporter)
    svc = service()
    alive = []
    for _ in range(20):
        graph = WeakGraph(make_graph())
        asyncio.run(run_flow(svc, graph, ["A-1", "B-2"]))
        alive.append(weakref.ref(graph))
        del graph
    gc.collect()
    assert [ref for ref in alive if ref() is not None] == []
    assert svc.monitor._node_series.get(WeakGraph(make_graph())) is None
    assert sum(node_windows(reporter).values()) == 40


def test_a_new_graph_object_per_run_binds_each_node_series_once(make_reporter, monkeypatch):
    """A server builds a new graph for every request (``lfx serve`` deep-copies it, Langflow rebuilds it):
    its nodes find the series earlier graphs of the flow bound, rather than validating and binding them
    again at every build."""
    set_mode(monkeypatch, "all")
    reporter = make_reporter()
    monkeypatch.setattr(monitor, "get_recorder", lambda: reporter)
    bound = []
    series = reporter.series
    monkeypatch.setattr(reporter, "series", lambda *a, **k: bound.append(a) or series(*a, **k))
    svc = service()
    for _ in range(30):
        asyncio.run(run_flow(svc, WeakGraph(make_graph()), ["A-1", "B-2"]))
    assert len(bound) == 2
    assert node_windows(reporter) == {("A-1", ""): 30, ("B-2", ""): 30}


def test_a_node_added_with_the_same_name_gets_its_new_label_on_the_graphs_next_run(
    make_reporter, monkeypatch
):
    """Labels are the display name plus a tail only when two nodes share it: a graph object that grows a
    second "Prompt" renames the first (Prompt → Prompt_aaaaa) from its next run on."""
    set_mode(monkeypatch, "all")
    reporter = make_reporter()
    monkeypatch.setattr(monitor, "get_recorder", lambda: reporter)
    svc = service()
    graph = WeakGraph(make_graph())
    graph.vertices = [
        SimpleNamespace(id="Prompt-aaaaa", display_name="Prompt", vertex_type="Prompt", params={})
    ]
    asyncio.run(run_flow(svc, graph, ["Prompt-aaaaa"]))
    graph.vertices.append(
        SimpleNamespace(id="Prompt-bbbbb", display_name="Prompt", vertex_type="Prompt", params={})
    )
    graph._run_id = str(uuid.uuid4())
    asyncio.run(run_flow(svc, graph, ["Prompt-aaaaa", "Prompt-bbbbb"]))
    assert node_windows(reporter) == {("Prompt", ""): 1, ("Prompt_aaaaa", ""): 1, ("Prompt_bbbbb", ""): 1}
