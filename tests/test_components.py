"""The CMS Metric and Timer canvas nodes, built standalone with an injected recorder.

Their run inside real flows (and the data reaching the emulator) is covered by test_flows.py.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from lfx.schema.data import Data
from lfx.schema.message import Message

from langflow_cms.langflow import (
    canvas,
    flow_settings,
    metric,
    metric_ask,
    monitor,
    node_keys,
    runs,
    timers,
)
from langflow_cms.langflow import service as lf_service

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "components" / "cms_monitor"
SECRET = "S3cretValue-never-shown-0123456789"


def load_component(file_name: str, class_name: str):
    """Import a bundle file the way the extension loader does (by path, as a registered module)."""
    module_name = f"_test_cms_monitor_{Path(file_name).stem}"
    spec = importlib.util.spec_from_file_location(module_name, BUNDLE / file_name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return getattr(module, class_name)


Timer = load_component("timer.py", "CmsTimerComponent")
TimerStart = load_component("timer_start.py", "CmsTimerStartComponent")
TimerStop = load_component("timer_stop.py", "CmsTimerStopComponent")
CmsMetric = load_component("cms_metric.py", "CmsMetricComponent")


def run_node(component):
    """The node's output method as lfx calls it: awaited (the nodes' methods are async, on the event loop)."""
    return asyncio.run(component.pass_through())


def set_mode(monkeypatch, mode: str) -> None:
    """LANGFLOW_CMS_MONITOR is read once per process, with the reporter's configuration; these tests
    inject the recorder, so they set the mode the same way."""
    monkeypatch.setenv("LANGFLOW_CMS_MONITOR", mode)
    monkeypatch.setattr(flow_settings, "monitor_mode", lambda: mode)


class FakeRecorder:
    def __init__(self) -> None:
        self.records: list[tuple[str, float, dict[str, str]]] = []
        self.credentials = None

    def record(self, name, value, dimensions):
        self.records.append((name, value, dict(dimensions)))

    def flush(self):
        pass

    def health(self):
        return {"enabled": True, "sent": 3, "queued": 1, "failed": 0, "dropped": 0}

    def scope_for(self, credential):
        self.credentials = credential
        return self


@pytest.fixture
def recorder(monkeypatch):
    fake = FakeRecorder()
    monkeypatch.setattr(monitor, "get_recorder", lambda: fake)
    monkeypatch.setattr(monitor, "get_recorder", lambda: fake)
    set_mode(monkeypatch, "annotated")
    metric_ask.GUARD.reset()
    return fake


def test_timer_stop_without_start_says_so_and_passes_through(recorder):
    message = Message(text="hello")
    timer = Timer(input_value=message, span_name="llm", action="stop")
    assert run_node(timer) is message
    assert "Stop without start" in timer.status and "'llm'" in timer.status
    assert recorder.records == []


def test_timer_start_passes_any_type_through(recorder):
    data = Data(data={"a": 1})
    start = Timer(input_value=data, span_name="llm", action="start")
    assert run_node(start) is data
    assert "Started span 'llm'" in start.status


def test_timer_pair_records_the_span(recorder):
    graph = SimpleNamespace(_run_id="run-1", flow_name="poem", flow_id=None, vertices=[])
    assert timers.timer_step(graph, "llm", "start") == "Started span 'llm'"
    assert timers.timer_step(graph, "llm", "stop").startswith("Span 'llm': ")
    ((name, value, dims),) = recorder.records
    assert name == "langflow_span_duration_ms" and value >= 0
    assert dims["span"] == "llm" and dims["status"] == "ok"


def test_spans_of_concurrent_runs_do_not_mix():
    timers.CLOCK.start("run-a", "llm")
    assert timers.CLOCK.stop("run-b", "llm") is None
    assert timers.CLOCK.stop("run-a", "llm") is not None


def test_cms_metric_records_a_business_metric_with_dimensions_from_the_input(recorder):
    metric = CmsMetric(
        input_value=Message(text="the sea"),
        metric_name="poem_requests",
        value="2",
        dimensions={"topic": "{text}", "channel": "web"},
    )
    out = run_node(metric)
    assert out.text == "the sea"
    ((name, value, dims),) = recorder.records
    assert (name, value) == ("poem_requests", 2.0)
    assert dims["topic"] == "the_sea" and dims["channel"] == "web" and "flow" in dims
    assert "Recorded poem_requests = 2" in metric.status
    assert "reporter healthy" in metric.status


def test_cms_metric_value_from_an_input_field(recorder):
    metric = CmsMetric(
        input_value=Data(data={"usage": {"total": 42}}),
        metric_name="tokens_billed",
        value="{usage.total}",
    )
    run_node(metric)
    assert recorder.records[0][1] == 42.0


def test_cms_metric_without_a_number_records_nothing_and_explains(recorder):
    metric = CmsMetric(input_value=Message(text="not a number"), metric_name="m", value="{text}")
    run_node(metric)
    assert recorder.records == []
    assert "Not recorded" in metric.status


def test_cms_metric_rejects_invalid_names(recorder):
    metric = CmsMetric(input_value=Message(text="x"), metric_name="9-bad name")
    run_node(metric)
    assert recorder.records == [] and "not a valid CMS metric name" in metric.status
    assert metric.status.splitlines()[0].startswith("Not recorded: '9-bad name'")


def test_cardinality_guard_folds_excess_values_into_other(recorder):
    for i in range(5):
        run_node(
            CmsMetric(
                input_value=Message(text=f"topic {i}"),
                metric_name="m",
                dimensions={"topic": "{text}"},
                max_values=3,
            )
        )
    topics = [dims["topic"] for _, _, dims in recorder.records]
    assert topics == ["topic_0", "topic_1", "topic_2", "other", "other"]


def test_secrets_never_appear_in_status_or_metrics(recorder):
    metric = CmsMetric(
        input_value=Message(text="x"),
        metric_name="m",
        access_key_id="LTAI5tExampleKeyId",
        access_key_secret=SECRET,
    )
    run_node(metric)
    assert recorder.credentials.access_key_secret == SECRET
    assert SECRET not in metric.status and "LTAI5tExampleKeyId" not in metric.status
    assert SECRET not in repr(recorder.credentials)
    assert SECRET not in json.dumps(recorder.records)


def test_a_failing_credential_hand_off_does_not_leak_the_secret(recorder, monkeypatch):
    def boom(credential):
        raise ValueError(f"bad key {credential.access_key_secret}")

    monkeypatch.setattr(recorder, "scope_for", boom)
    metric = CmsMetric(input_value=Message(text="x"), access_key_id="id-123456789", access_key_secret=SECRET)
    run_node(metric)
    assert "AccessKey was not applied (ValueError)" in metric.status
    assert SECRET not in metric.status


def test_monitoring_off_records_nothing(recorder, monkeypatch):
    set_mode(monkeypatch, "off")
    metric = CmsMetric(input_value=Message(text="x"), metric_name="m")
    run_node(metric)
    timer = Timer(input_value=Message(text="x"), span_name="s", action="start")
    run_node(timer)
    assert recorder.records == []
    assert "off" in metric.status and "off" in timer.status


def test_a_broken_reporter_never_breaks_the_nodes(monkeypatch):
    def broken():
        raise RuntimeError("LANGFLOW_CMS_ENDPOINT is invalid")

    monkeypatch.setattr(monitor, "get_recorder", broken)
    monkeypatch.setattr(monitor, "get_recorder", broken)
    metric = CmsMetric(input_value=Message(text="x"), metric_name="m")
    assert run_node(metric).text == "x"
    assert "reporter unavailable" in metric.status


class FakeStorage:
    def __init__(self) -> None:
        self.rejected: list[tuple[str, str]] = []
        self.reasons: list[str] = []

    def reject(self, name, why, reason=""):
        self.rejected.append((name, why))
        self.reasons.append(reason)


def counting(recorder) -> FakeStorage:
    recorder.storage = FakeStorage()
    return recorder.storage


def vertex(vertex_id: str, display_name: str, cls_name: str = "X", **params):
    component = type(cls_name, (), {})()
    return SimpleNamespace(
        id=vertex_id,
        display_name=display_name,
        vertex_type=cls_name,
        custom_component=component,
        params=params,
    )


def flow_graph(vertices, edges, run_id="run-x", flow_name="My Flow (1)"):
    predecessors: dict[str, list[str]] = {}
    for source, target in edges:
        predecessors.setdefault(target, []).append(source)
    by_id = {v.id: v for v in vertices}
    return SimpleNamespace(
        _run_id=run_id,
        flow_name=flow_name,
        flow_id="f-1",
        vertices=vertices,
        edges=[SimpleNamespace(source_id=source, target_id=target) for source, target in edges],
        # as lfx leaves it mid-run: the run manager empties these lists as nodes complete
        predecessor_map={target: [] for target in predecessors},
        get_vertex=by_id.__getitem__,
    )


def test_value_field_takes_a_number_text_or_a_field():
    assert metric_ask.parse_value_spec("1") == ("constant", 1.0)
    assert metric_ask.parse_value_spec("") == ("constant", 1.0)
    assert metric_ask.parse_value_spec(" 2.5 ") == ("constant", 2.5)
    assert metric_ask.parse_value_spec("{text}") == ("field", "text")
    assert metric_ask.parse_value_spec("{usage.total}") == ("field", "usage.total")
    kind, why = metric_ask.parse_value_spec("lots")
    assert kind == "invalid" and "'lots' is not a number" in why


def test_a_bad_value_is_reported_and_counted(recorder):
    storage = counting(recorder)
    metric = CmsMetric(input_value=Message(text="x"), metric_name="m", value="lots")
    assert run_node(metric).text == "x"
    assert recorder.records == []
    assert metric.status.splitlines()[0] == (
        "Not recorded: Value 'lots' is not a number, {text} (the input message as a number) "
        "or {field.path} of the input Data"
    )
    assert storage.rejected == [("m", "value is not a number")]


def test_a_bad_metric_name_is_counted_in_langflow_cms_invalid(recorder):
    storage = counting(recorder)
    run_node(CmsMetric(input_value=Message(text="x"), metric_name="bad name!"))
    assert storage.rejected == [("bad name!", "not a valid CMS metric name")]


def test_status_says_whether_the_flow_is_monitored_and_the_reporter_health(recorder):
    metric = CmsMetric(input_value=Message(text="x"), metric_name="runs")
    run_node(metric)
    first, *rest = metric.status.splitlines()
    assert first.startswith("Recorded runs = 1 {flow=")
    assert any(line.startswith("Monitoring on: flow ") for line in rest)
    assert rest[-1] == (
        "reporter healthy: 3 entries sent to CloudMonitor since start (all flows and the reporter's own "
        "health), 1 queued, 0 failed, 0 dropped"
    )


def test_a_null_reporter_status_names_the_wrong_setting(monkeypatch):
    class Null:
        def health(self):
            return {"enabled": False, "reason": "LANGFLOW_CMS_REGION='mars' is invalid"}

    null = Null()
    monkeypatch.setattr(monitor, "get_recorder", lambda: null)
    assert canvas.reporter_status() == "LANGFLOW_CMS_REGION='mars' is invalid"


def test_reporter_status_is_computed_at_most_once_a_second(recorder, monkeypatch):
    calls = []
    original = recorder.health
    monkeypatch.setattr(recorder, "health", lambda: calls.append(1) or original())
    clock = [1000.0]
    monkeypatch.setattr(canvas.time, "monotonic", lambda: clock[0])
    for _ in range(50):
        canvas.reporter_status()
    clock[0] += 1.5
    canvas.reporter_status()
    assert len(calls) == 2


def test_the_same_accesskey_is_resolved_once_and_bound_every_run(recorder, monkeypatch):
    resolved, bound = [], []
    monkeypatch.setattr(recorder, "scope_for", lambda credential: resolved.append(credential) or recorder)
    monkeypatch.setattr(monitor.MONITOR, "bind_scope", lambda graph, scope: bound.append(scope) or True)
    for run in range(3):
        graph = SimpleNamespace(_run_id=f"cred-run-{run}", flow_name="f", flow_id=None, vertices=[])
        assert (
            node_keys.use_credentials("id-1", SECRET, graph)
            == "using the node's AccessKey for this flow only"
        )
    assert len(resolved) == 1 and bound == [recorder] * 3
    assert node_keys.use_credentials("", "", None) is None


def test_metric_name_shows_value_dimensions_and_max_values_only_when_set():
    component = CmsMetric()
    fields = ("value", "dimensions", "max_values")
    assert all(not f.show for f in CmsMetric.inputs if f.name in fields)  # a new node: lfx skips them too
    config = {name: {"show": False, "value": ""} for name in ("metric_name", *fields)}
    config = component.update_build_config(config, "poem_requests", "metric_name")
    assert all(config[name]["show"] for name in fields)
    config = component.update_build_config(config, " ", "metric_name")
    assert not any(config[name]["show"] for name in fields)


def test_every_input_says_what_happens_in_cms_and_the_default_node_is_compact():
    for cls in (CmsMetric, TimerStart, TimerStop):
        for field in cls.inputs:
            assert field.info, f"{cls.__name__}.{field.name} has no info text"
    shown = [f.name for f in CmsMetric.inputs if not f.advanced and f.show]
    assert shown == ["input_value", "metric_name"]
    assert len(CmsMetric.inputs) <= 9


def test_timer_start_and_stop_pair_by_themselves(recorder):
    start = vertex("CmsTimerStart-ab12C", "Timer Start", "CmsTimerStartComponent")
    llm = vertex("LLM-zz9", "LLM")
    stop = vertex("CmsTimerStop-QQ111", "Timer Stop", "CmsTimerStopComponent")
    graph = flow_graph([start, llm, stop], [(start.id, llm.id), (llm.id, stop.id)])
    assert timers.timer_start(graph, start.id) == "Started span 'Timer_Start'"
    status = timers.timer_stop(graph, stop.id)
    assert status.startswith("Span 'Timer_Start': ") and status.endswith(" ms")
    ((name, _, dims),) = recorder.records
    assert name == "langflow_span_duration_ms"
    assert dims["span"] == "Timer_Start" and dims["flow"] == "My_Flow_1"


def test_two_timer_pairs_get_distinct_spans(recorder):
    a1, a2 = vertex("CmsTimerStart-aaaaa", "Timer Start", "CmsTimerStartComponent"), vertex("X-1", "X")
    b1, b2 = vertex("CmsTimerStart-bbbbb", "Timer Start", "CmsTimerStartComponent"), vertex("Y-1", "Y")
    s1 = vertex("CmsTimerStop-ccccc", "Timer Stop", "CmsTimerStopComponent")
    s2 = vertex("CmsTimerStop-ddddd", "Timer Stop", "CmsTimerStopComponent")
    edges = [(a1.id, a2.id), (a2.id, s1.id), (s1.id, b1.id), (b1.id, b2.id), (b2.id, s2.id)]
    graph = flow_graph([a1, a2, s1, b1, b2, s2], edges)
    timers.timer_start(graph, a1.id)
    timers.timer_stop(graph, s1.id)
    timers.timer_start(graph, b1.id)
    timers.timer_stop(graph, s2.id)
    assert [dims["span"] for _, _, dims in recorder.records] == ["Timer_Start_aaaaa", "Timer_Start_bbbbb"]


def test_a_stop_without_a_start_is_flagged_and_counted(recorder):
    storage = counting(recorder)
    stop = vertex("CmsTimerStop-QQ111", "Timer Stop", "CmsTimerStopComponent")
    graph = flow_graph([vertex("ChatInput-1", "Chat Input"), stop], [("ChatInput-1", stop.id)])
    component = TimerStop(input_value=Message(text="x"))
    assert timers.timer_stop(graph, stop.id).startswith("Stop without start: no Timer Start runs before")
    assert run_node(component).text == "x" and component.status.startswith("Stop without start")
    assert recorder.records == []
    assert storage.rejected == [("langflow_span_duration_ms", "timer stop without start")] * 2


def test_a_named_stop_without_its_start_is_flagged_and_counted(recorder):
    storage = counting(recorder)
    timer = Timer(input_value=Message(text="x"), span_name="nope", action="stop")
    run_node(timer)
    assert "Stop without start" in timer.status and "langflow_cms_invalid" in timer.status
    assert storage.rejected == [("langflow_span_duration_ms", "timer stop without start")]


def test_node_labels_are_display_names_with_a_suffix_only_when_repeated():
    graph = flow_graph(
        [
            vertex("ChatInput-gw8tY", "Chat Input"),
            vertex("ext:cms_monitor:CmsTimerStartComponent@extra-Ab3dE", "Timer Start"),
            vertex("ext:cms_monitor:CmsTimerStartComponent@extra-Zy9xW", "Timer Start"),
            vertex("Prompt-11111", "提示"),
        ],
        [],
    )
    assert flow_settings.node_label(graph, "ChatInput-gw8tY") == "Chat_Input"
    assert flow_settings.node_label(graph, "ext:cms_monitor:CmsTimerStartComponent@extra-Ab3dE") == (
        "Timer_Start_Ab3dE"
    )
    assert flow_settings.node_label(graph, "ext:cms_monitor:CmsTimerStartComponent@extra-Zy9xW") == (
        "Timer_Start_Zy9xW"
    )
    assert flow_settings.node_label(graph, "Prompt-11111").startswith("h")  # nothing ASCII: a stable hash
    assert flow_settings.node_label(graph, "Unknown-1") == "Unknown-1"
    assert flow_settings.node_label(None, "Chat Input-1") == "Chat_Input-1"


def test_node_labels_stay_distinct_when_ids_share_their_tail():
    graph = flow_graph([vertex("TimerStart-poem1", "Timer"), vertex("TimerStop-poem1", "Timer")], [])
    assert flow_settings.node_labels(graph) == {
        "TimerStart-poem1": "Timer_TimerStart-poem1",
        "TimerStop-poem1": "Timer_TimerStop-poem1",
    }


def test_node_labels_follow_a_rename_and_keep_the_suffix_stable():
    def graph_named(second: str):
        return flow_graph([vertex("A-aaaaa", "Step"), vertex("B-bbbbb", second)], [])

    assert flow_settings.node_label(graph_named("Step"), "B-bbbbb") == "Step_bbbbb"
    assert flow_settings.node_label(graph_named("Summarise"), "B-bbbbb") == "Summarise"


def test_flow_label_is_the_readable_name_or_the_nodes_explicit_one():
    plain = flow_graph([], [], flow_name="New Flow (1)")
    assert flow_settings.flow_label(plain) == "New_Flow_1"
    metric = vertex("CmsMetric-1", "CMS Metric", "CmsMetricComponent", flow_name="poem service")
    named = flow_graph([metric], [], flow_name="New Flow (1)")
    assert flow_settings.flow_label(named) == "poem_service"
    assert flow_settings.read_settings(named).flow_name == "poem_service"


def test_old_node_calls_keep_working(recorder):
    """Flows saved before the compact node embed code that calls these signatures."""
    graph = SimpleNamespace(_run_id="old-run", flow_name="poem", flow_id=None, vertices=[])
    assert node_keys.use_credentials(None, None) is None
    status = metric.record_metric(
        graph,
        metric_name="tokens",
        value_source="Input field",
        constant=1.0,
        value_field="usage.total",
        dimensions={"topic": "{text}"},
        input_value=Data(data={"usage": {"total": 7}, "text": "sea"}),
        max_values=20,
    )
    assert status.startswith("Recorded tokens = 7")
    assert metric.record_metric(
        graph,
        metric_name="n",
        value_source="Constant",
        constant=3.0,
        value_field="",
        dimensions=None,
        input_value=None,
    ).startswith("Recorded n = 3")
    assert canvas.reporter_status().startswith("reporter healthy")
    assert [r[1] for r in recorder.records] == [7.0, 3.0]


@pytest.mark.slow
@pytest.mark.parametrize("components_path", [False, True], ids=["installed", "components-path"])
def test_bundle_is_found_installed_and_through_langflow_components_path(components_path):
    """The nodes appear once each in the `cms_monitor` sidebar category, with icons and descriptions.

    Installed, the package is a Langflow extension (``langflow.extensions`` entry point, extension.json):
    no setting needed. ``LANGFLOW_COMPONENTS_PATH`` pointing at the same bundle keeps working: Langflow
    shadows the inline copy, so nothing shows twice.
    """
    script = (
        "import asyncio, json\n"
        "from lfx.interface.components import get_and_cache_all_types_dict\n"
        "from lfx.services.deps import get_settings_service\n"
        "types = asyncio.run(get_and_cache_all_types_dict(get_settings_service()))\n"
        "print(json.dumps({k: [v['display_name'], v['icon'], v['description']] "
        "for k, v in types.get('cms_monitor', {}).items()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LANGFLOW_COMPONENTS_PATH"}
    if components_path:
        env["LANGFLOW_COMPONENTS_PATH"] = str(REPO / "components")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    by_class = {key.split(":")[2].split("@")[0]: value[:2] for key, value in found.items()}
    assert by_class == {
        "CmsMetricComponent": ["CMS Metric", "activity"],
        "CmsTimerComponent": ["Timer", "timer"],
        "CmsTimerStartComponent": ["Timer Start", "timer"],
        "CmsTimerStopComponent": ["Timer Stop", "timer-off"],
    }
    assert len(found) == len(by_class), found  # once each
    assert all(description for *_, description in found.values())


# --- what the nodes cost lfx per build (bench row 11) ---------------------------------------------------
def test_lfxs_lookups_of_input_flags_find_them_without_an_exception_and_the_template_is_unchanged(recorder):
    """lfx reads ``password``, ``trace_as_input``, ``trace_as_metadata`` and ``tool_mode`` on every input of a
    node, several times a build, with False as the default. On an input class without the field pydantic
    raised and lfx caught an AttributeError each time (about 5 µs): some 30 a run for the CMS Metric node."""
    from lfx.inputs.input_mixin import BaseInputMixin
    from pydantic import BaseModel

    misses = []
    original = BaseModel.__getattr__

    def counting(self, name):
        try:
            return original(self, name)
        except AttributeError:
            if isinstance(self, BaseInputMixin):
                misses.append((type(self).__name__, name))
            raise

    for cls in (CmsMetric, TimerStart, TimerStop, Timer):
        component = cls(input_value=Message(text="x"))
        BaseModel.__getattr__ = counting
        try:
            component.set_attributes({"input_value": Message(text="x")})
            traced = component.get_trace_as_inputs(), component.get_trace_as_metadata()
            tool_inputs = [i.name for i in component.inputs if getattr(i, "tool_mode", False)]
        finally:
            BaseModel.__getattr__ = original
        assert misses == [], f"{cls.__name__}: {misses}"
        assert tool_inputs == [] and "input_value" in traced[0] | traced[1]
        for input_ in cls.inputs:  # the saved template and the canvas see the same fields as before
            added = [flag for flag in canvas.ABSENT_INPUT_FLAGS if flag not in type(input_).model_fields]
            assert not set(added) & set(input_.model_dump()), input_.name
            assert all(getattr(input_, flag) is False for flag in added)
    assert CmsMetric(access_key_secret=SECRET).get_trace_as_inputs().get("access_key_secret") != SECRET


def test_the_nodes_run_on_the_event_loop_and_a_new_accesskey_is_set_up_in_a_thread(recorder, monkeypatch):
    """A sync output method costs a worker thread per build (lfx: ``asyncio.to_thread``), more than the node's
    own work; the one step that may touch the disk, a node AccessKey's first delivery path, stays off the
    loop."""
    import threading

    where = {}
    monkeypatch.setattr(node_keys, "_scopes", {})
    original_status = canvas.monitoring_line
    monkeypatch.setattr(
        canvas,
        "monitoring_line",
        lambda graph: where.setdefault("node", threading.get_ident()) and original_status(graph),
    )
    monkeypatch.setattr(
        recorder,
        "scope_for",
        lambda credential: where.setdefault("scope", threading.get_ident()) and recorder,
    )

    async def build():
        where["loop"] = threading.get_ident()
        metric = CmsMetric(input_value=Message(text="x"), access_key_id="LTAI-node", access_key_secret=SECRET)
        await metric.pass_through()
        return metric.status

    status = asyncio.run(build())
    assert "using the node's AccessKey for this flow only" in status and SECRET not in status
    assert where["node"] == where["loop"] != where["scope"]
    assert all(
        asyncio.iscoroutinefunction(cls.pass_through) for cls in (CmsMetric, TimerStart, TimerStop, Timer)
    )


def test_in_the_ui_build_a_node_accesskey_and_a_timer_span_find_their_run(recorder, monkeypatch):
    """Langflow's UI build starts the run, then gives the graph the job id as its run id (build.py:
    ``graph.set_run_id(job_id)``). The node's AccessKey looked its run up by that id and found none: the
    run kept waiting for its key, and at its end every metric of it was dropped ('put the node first').
    A span open when the run failed was keyed by the job id too, so it was neither reported nor closed."""
    import uuid

    params = {"access_key_id": "LTAI-node-ui", "access_key_secret": SECRET}
    metric_vertex = SimpleNamespace(
        id="CmsMetric-ui1",
        display_name="CMS Metric",
        vertex_type="ext:cms_monitor:CmsMetricComponent@official",
        custom_component=None,
        params=params,
        raw_params=params,
    )
    graph = SimpleNamespace(
        flow_name="poem", flow_id=None, vertices=[metric_vertex], _run_id=str(uuid.uuid4())
    )
    monkeypatch.setattr(lf_service, "_graph_from_stack", lambda: graph)
    service = lf_service.CmsTracingService()

    def node(node_id: str, vertex_type: str):
        return SimpleNamespace(graph=graph, _id=node_id, _vertex=SimpleNamespace(vertex_type=vertex_type))

    async def build() -> str:
        await service.start_tracers(uuid.UUID(graph._run_id), "run", None, None)
        graph._run_id = str(uuid.uuid4())  # the job id
        async with service.trace_component(node("CmsMetric-ui1", "CmsMetricComponent"), "m", {}):
            status = node_keys.use_credentials("LTAI-node-ui", SECRET, graph)
        async with service.trace_component(node("TimerStart-ui1", "CmsTimerStartComponent"), "t", {}):
            timers.timer_start(graph, "TimerStart-ui1", "write")
        with pytest.raises(ValueError):
            async with service.trace_component(node("Poet-ui1", "OfflinePoet"), "p", {}):
                raise ValueError("the model failed")
        return status

    assert asyncio.run(build()) == "using the node's AccessKey for this flow only"
    assert recorder.credentials is not None and recorder.credentials.access_key_id == "LTAI-node-ui"
    flows = [dims for name, _, dims in recorder.records if name == runs.FLOW_METRIC]
    assert flows == [{"flow": "poem", "status": "error"}]
    spans = [dims for name, _, dims in recorder.records if name == runs.SPAN_METRIC]
    assert spans == [{"flow": "poem", "span": "write", "status": "error"}]
    assert timers.CLOCK.abandon(graph._run_id) == []


def test_a_refused_node_accesskey_is_looked_up_once_per_run_and_off_the_loop(recorder, monkeypatch):
    """Past the cap of keys (or with reporting off) the lookup gives no scope: once per run, in a thread
    (the first, refused lookup must not be repeated on the event loop, where it counted the drop twice)."""
    import threading

    calls = []
    monkeypatch.setattr(node_keys, "_scopes", {})
    monkeypatch.setattr(recorder, "scope_for", lambda credential: calls.append(threading.get_ident()))
    monkeypatch.setattr(recorder, "storage", object(), raising=False)  # a running reporter, at its cap

    async def build() -> tuple[int, str]:
        metric = CmsMetric(
            input_value=Message(text="x"), access_key_id="LTAI-capped", access_key_secret=SECRET
        )
        await metric.pass_through()
        return threading.get_ident(), metric.status

    loop, status = asyncio.run(build())
    assert len(calls) == 1 and calls[0] != loop
    assert status.startswith("Not monitored: too many different AccessKeys in this process")
    monkeypatch.delattr(recorder, "storage")  # reporting off: the status does not blame the keys
    status = asyncio.run(build())[1]
    assert status.startswith("Not monitored: the reporter is not running") and SECRET not in status

    def unwritable(credential):  # e.g. the key's spool folder cannot be made: not retried on the loop
        calls.append(threading.get_ident())
        raise PermissionError(13, "Permission denied", f"/spool/{SECRET}")

    calls.clear()
    monkeypatch.setattr(recorder, "scope_for", unwritable)
    loop, status = asyncio.run(build())
    assert len(calls) == 1 and calls[0] != loop
    assert status.startswith("Not monitored: the node's AccessKey was not applied (PermissionError)")
    assert SECRET not in status


def test_a_metric_name_set_without_the_canvas_keeps_the_saved_value_dimensions_and_max_values(recorder):
    """Value, Dimensions and Max Values are hidden until a Metric Name is typed on the canvas. A name set by
    an API tweak or in the JSON leaves them hidden, and lfx passes a hidden field's default, not its saved
    value: a cap of 2 was silently 20, and the saved dimensions were none. Tweaks on the graph
    (``process_tweaks_on_graph``: the streaming and background runs, Run Flow) reach lfx's params and win;
    tweaks in the template (``process_tweaks``: the sync ``/api/v1/run``) are the saved values."""
    from lfx.graph import Graph
    from lfx.processing.process import process_tweaks, process_tweaks_on_graph

    saved = json.loads((REPO / "examples" / "flows" / "poem.json").read_text())["data"]
    metric_id = next(n["data"]["id"] for n in saved["nodes"] if n["data"]["id"].startswith("CmsMetric"))
    for node in saved["nodes"]:
        template = node["data"]["node"]["template"]
        if node["data"]["id"] == metric_id:  # Metric Name cleared on the canvas: the fields hidden, kept
            template["metric_name"].update(value="")
            template["value"].update(value="3", show=False)
            template["dimensions"].update(value=[{"key": "topic", "value": "{text}"}], show=False)
            template["max_values"].update(value=2, show=False)

    def run(text: str, how: str, tweaks: dict) -> None:
        data = json.loads(json.dumps(saved))
        for node in data["nodes"]:
            if node["data"]["id"].startswith("ChatInput"):
                node["data"]["node"]["template"]["input_value"]["value"] = text
        if how == "template":
            data = process_tweaks(data, {metric_id: tweaks})
        graph = Graph.from_payload(data, flow_name="poem")
        if how == "graph":
            process_tweaks_on_graph(graph, {metric_id: tweaks})

        async def start() -> None:
            async for _ in graph.async_start():
                pass

        asyncio.run(start())

    for text in ("sea", "sky", "moon", "sun"):
        run(text, "template", {"metric_name": "signups"})
    signups = [(value, dims["topic"]) for name, value, dims in recorder.records if name == "signups"]
    assert signups == [(3.0, "sea"), (3.0, "sky"), (3.0, "other"), (3.0, "other")]
    tweaks = {"metric_name": "orders", "value": "7", "dimensions": {"channel": "api"}, "max_values": 5}
    for how in ("template", "graph"):
        run("sea", how, tweaks)
    orders = [
        (value, dims.get("channel"), "topic" in dims)
        for name, value, dims in recorder.records
        if name == "orders"
    ]
    assert orders == [(7.0, "api", False)] * 2


def test_a_timer_pair_inside_a_loop_body_reports_under_the_flow_in_the_ui_build(recorder, monkeypatch):
    """A Loop's body runs as a subgraph named ``<flow>_subgraph``; in the UI build it carries the job id,
    which no run started with, so a span inside the body went out as flow ``poem_subgraph``."""
    import uuid

    class Graph(SimpleNamespace):  # weak-referenceable, as lfx's Graph is
        pass

    metric_vertex = SimpleNamespace(
        id="CmsMetric-l1", vertex_type="ext:cms_monitor:CmsMetricComponent@official", params={}, raw_params={}
    )
    parent = Graph(flow_name="poem", flow_id=None, vertices=[metric_vertex], _run_id=str(uuid.uuid4()))
    starting = {"graph": parent}
    monkeypatch.setattr(lf_service, "_graph_from_stack", lambda: starting["graph"])
    service = lf_service.CmsTracingService()

    def node(graph, node_id: str, vertex_type: str):
        return SimpleNamespace(graph=graph, _id=node_id, _vertex=SimpleNamespace(vertex_type=vertex_type))

    async def build() -> list[str]:
        await service.start_tracers(uuid.UUID(parent._run_id), "run", None, None)
        parent._run_id = str(uuid.uuid4())  # the job id
        statuses = []
        async with service.trace_component(node(parent, "Loop-l1", "LoopComponent"), "l", {}):
            for _ in range(2):
                body = Graph(flow_name="poem_subgraph", flow_id=None, vertices=[], _is_subgraph=True)
                body._run_id = parent._run_id
                starting["graph"] = body
                await service.start_tracers(uuid.UUID(parent._run_id), "run", None, None)
                async with service.trace_component(node(body, "TimerStart-l1", "CmsTimerStart"), "s", {}):
                    statuses.append(timers.timer_start(body, "TimerStart-l1", "item"))
                async with service.trace_component(node(body, "TimerStop-l1", "CmsTimerStop"), "t", {}):
                    statuses.append(timers.timer_stop(body, "TimerStop-l1", "item"))
        await service.end_tracers({}, None)
        return statuses

    statuses = asyncio.run(build())
    assert all(not status.startswith(("Stop without start", "Span not")) for status in statuses), statuses
    spans = [dims for name, _, dims in recorder.records if name == runs.SPAN_METRIC]
    assert spans == [{"flow": "poem", "span": "item", "status": "ok"}] * 2


OUTPUTS_SCRIPT = """
import importlib.util, json, sys
from pathlib import Path
out = {}
for path in sorted(Path(sys.argv[1]).glob("*.py")):
    spec = importlib.util.spec_from_file_location("_seed_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, cls in vars(module).items():
        if name.startswith("Cms") and name.endswith("Component"):
            node = cls(_code=path.read_text()).to_frontend_node()["data"]["node"]
            out[name] = [[o["name"], o["types"], o["selected"]] for o in node["outputs"]]
print(json.dumps(out))
"""


@pytest.mark.slow  # Python subprocesses importing lfx: 10-30 s on a loaded machine
def test_every_nodes_output_types_and_selected_type_are_fixed_whatever_the_hash_seed():
    """Issue 26 §1: the pass-through output carries Message, JSON (Data) and Table (DataFrame), in that order,
    Message selected, so a node connects to a Prompt or a model like Langflow's own pass-throughs and a
    saved edge still matches after a restart. Before, lfx read them from the method's union into a set:
    seed 1 gave JSON first and selected, seed 2 Table."""
    seen = []
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", OUTPUTS_SCRIPT, str(BUNDLE)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )
        seen.append(json.loads(done.stdout.strip().splitlines()[-1]))
    expected = [["output", ["Message", "JSON", "Table"], "Message"]]
    kinds = ["CmsMetricComponent", "CmsTimerComponent", "CmsTimerStartComponent", "CmsTimerStopComponent"]
    assert seen[0] == dict.fromkeys(kinds, expected)
    assert seen[1] == seen[0]


def test_twenty_dimension_rows_name_each_drop_and_count_it(make_reporter, emulator, monkeypatch):
    """Issue 26 §3: 20 Dimensions rows, 4 kept. Before, the other 16 vanished: the status showed only the
    kept ones and langflow_cms_invalid stayed 0. Now the status names them and why, and each drop counts
    under reason=too_many_dimensions (a reserved name under reason=reserved_dimension)."""
    reporter = make_reporter()
    monkeypatch.setattr(monitor, "get_recorder", lambda: reporter)
    monkeypatch.setattr(monitor, "get_recorder", lambda: reporter)
    set_mode(monkeypatch, "annotated")
    rows = [{"key": f"dim{i}", "value": f"v{i}"} for i in range(1, 20)] + [{"key": "flow", "value": "x"}]
    metric = CmsMetric(input_value=Message(text="x"), metric_name="billing_runs", dimensions=rows)
    assert run_node(metric).text == "x"
    lines = metric.status.splitlines()
    assert lines[0].startswith("Recorded billing_runs = 1 {flow=") and "dim4=v4" in lines[0]
    assert "dim5" not in lines[0]
    too_many = next(line for line in lines if line.startswith("Dropped 15 dimensions dim5, dim6,"))
    assert "and 7 more" in too_many and "at most 4" in too_many and "langflow_cms_invalid" in too_many
    assert any(line.startswith("Dropped dimension flow: ") for line in lines), lines
    assert reporter.health()["invalid"] == 16
    reporter._record_health()
    reporter.close(timeout=10)
    by_reason: dict[str, float] = {}
    for entry in emulator.entries(name="langflow_cms_invalid"):
        if entry["period"] == 60:
            reason = entry["dimensions"].get("reason", "")
            by_reason[reason] = by_reason.get(reason, 0) + entry["values"]["Sum"]
    assert by_reason.get("too_many_dimensions") == 15 and by_reason.get("reserved_dimension") == 1, by_reason


def test_a_setting_cms_would_refuse_is_flagged_in_the_field_title_while_editing():
    """Issue 26 §2: `my metric` looked exactly like a success on the canvas. The edit-time refresh of the
    node now puts the problem in the field's title, visible on the node; fixing it restores the title."""
    component = CmsMetric()
    fields = ("metric_name", "value", "dimensions", "max_values")
    config = {name: {"show": name == "metric_name", "value": "", "display_name": "x"} for name in fields}

    def edit(field: str, value):  # as the canvas does: the template holds the new value, then the refresh
        config[field]["value"] = value
        return component.update_build_config(config, value, field)

    config = edit("metric_name", "my metric")
    assert config["metric_name"]["display_name"] == "Metric Name \u26a0 not a CMS name"
    assert config["value"]["display_name"] == "Value" and config["dimensions"]["display_name"] == "Dimensions"
    config = edit("value", "lots")
    assert config["value"]["display_name"] == "Value \u26a0 not a number"
    rows = [{"key": f"d{i}", "value": "x"} for i in range(6)]
    config = edit("dimensions", rows)
    assert config["dimensions"]["display_name"] == "Dimensions \u26a0 2 dropped: d4, d5"
    config = edit("metric_name", "my_metric")
    assert config["metric_name"]["display_name"] == "Metric Name"


def test_the_logs_tab_gets_one_row_per_part_of_the_status(recorder):
    """Issue 26 §4: the Logs text was one run-on line (what was recorded, the flow, the reporter)."""
    logged = []
    metric = CmsMetric(input_value=Message(text="x"), metric_name="runs")
    metric._event_manager = object()
    metric.log = lambda message, name=None: logged.append((name, message))
    run_node(metric)
    assert [message for _, message in logged] == metric.status.splitlines()
    assert len(logged) == 3 and logged[0][1].startswith("Recorded runs = 1")
    assert "entries sent to CloudMonitor since start" in logged[-1][1]


def test_the_component_dimension_follows_one_style_for_every_node():
    """Issue 26 §5: `Prompt_Template` sat next to `SplitText` and `ChatInput`. One rule (docs/metrics.md): the
    node's type as Langflow names it, CamelCase with its words joined; a bundle node's is its class."""

    def of(vertex_type: str) -> str:
        return runs._component_type(SimpleNamespace(_vertex=SimpleNamespace(vertex_type=vertex_type)))

    assert of("Prompt Template") == "PromptTemplate"
    assert of("ChatInput") == "ChatInput" and of("SplitText") == "SplitText"
    assert of("ext:cms_monitor:CmsTimerStartComponent@official") == "CmsTimerStartComponent"
