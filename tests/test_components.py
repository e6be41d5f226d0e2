"""The CMS Metric and Timer canvas nodes, built standalone with an injected recorder.

Their run inside real flows (and the data reaching the emulator) is covered by test_flows.py.
"""

from __future__ import annotations

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

from langflow_cms import flow_settings, nodes, tracing

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
CmsMetric = load_component("cms_metric.py", "CmsMetricComponent")


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
    monkeypatch.setattr(tracing, "get_recorder", lambda: fake)
    monkeypatch.setattr(nodes, "get_recorder", lambda: fake)
    set_mode(monkeypatch, "annotated")
    nodes.GUARD.reset()
    return fake


def test_timer_stop_without_start_says_so_and_passes_through(recorder):
    message = Message(text="hello")
    timer = Timer(input_value=message, span_name="llm", action="stop")
    assert timer.pass_through() is message
    assert "Stop without start" in timer.status and "'llm'" in timer.status
    assert recorder.records == []


def test_timer_start_passes_any_type_through(recorder):
    data = Data(data={"a": 1})
    start = Timer(input_value=data, span_name="llm", action="start")
    assert start.pass_through() is data
    assert "Started span 'llm'" in start.status


def test_timer_pair_records_the_span(recorder):
    graph = SimpleNamespace(_run_id="run-1", flow_name="poem", flow_id=None, vertices=[])
    assert nodes.timer_step(graph, "llm", "start") == "Started span 'llm'"
    assert nodes.timer_step(graph, "llm", "stop").startswith("Span 'llm': ")
    ((name, value, dims),) = recorder.records
    assert name == "langflow_span_duration_ms" and value >= 0
    assert dims["span"] == "llm" and dims["status"] == "ok"


def test_spans_of_concurrent_runs_do_not_mix():
    nodes.CLOCK.start("run-a", "llm")
    assert nodes.CLOCK.stop("run-b", "llm") is None
    assert nodes.CLOCK.stop("run-a", "llm") is not None


def test_cms_metric_records_a_business_metric_with_dimensions_from_the_input(recorder):
    metric = CmsMetric(
        input_value=Message(text="the sea"),
        metric_name="poem_requests",
        value_source="Constant",
        value=2.0,
        dimensions={"topic": "{text}", "channel": "web"},
    )
    out = metric.pass_through()
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
        value_source="Input field",
        value_field="usage.total",
    )
    metric.pass_through()
    assert recorder.records[0][1] == 42.0


def test_cms_metric_without_a_number_records_nothing_and_explains(recorder):
    metric = CmsMetric(input_value=Message(text="not a number"), metric_name="m", value_source="Input number")
    metric.pass_through()
    assert recorder.records == []
    assert "Not recorded" in metric.status


def test_cms_metric_rejects_invalid_names(recorder):
    metric = CmsMetric(input_value=Message(text="x"), metric_name="9-bad name")
    metric.pass_through()
    assert recorder.records == [] and "not a valid CMS metric name" in metric.status


def test_cardinality_guard_folds_excess_values_into_other(recorder):
    for i in range(5):
        CmsMetric(
            input_value=Message(text=f"topic {i}"),
            metric_name="m",
            dimensions={"topic": "{text}"},
            max_values=3,
        ).pass_through()
    topics = [dims["topic"] for _, _, dims in recorder.records]
    assert topics == ["topic_0", "topic_1", "topic_2", "other", "other"]


def test_secrets_never_appear_in_status_or_metrics(recorder):
    metric = CmsMetric(
        input_value=Message(text="x"),
        metric_name="m",
        access_key_id="LTAI5tExampleKeyId",
        access_key_secret=SECRET,
    )
    metric.pass_through()
    assert recorder.credentials.access_key_secret == SECRET
    assert SECRET not in metric.status and "LTAI5tExampleKeyId" not in metric.status
    assert SECRET not in repr(recorder.credentials)
    assert SECRET not in json.dumps(recorder.records)


def test_a_failing_credential_hand_off_does_not_leak_the_secret(recorder, monkeypatch):
    def boom(credential):
        raise ValueError(f"bad key {credential.access_key_secret}")

    monkeypatch.setattr(recorder, "scope_for", boom)
    metric = CmsMetric(input_value=Message(text="x"), access_key_id="id-123456789", access_key_secret=SECRET)
    metric.pass_through()
    assert "AccessKey was not applied (ValueError)" in metric.status
    assert SECRET not in metric.status


def test_monitoring_off_records_nothing(recorder, monkeypatch):
    set_mode(monkeypatch, "off")
    metric = CmsMetric(input_value=Message(text="x"), metric_name="m")
    metric.pass_through()
    timer = Timer(input_value=Message(text="x"), span_name="s", action="start")
    timer.pass_through()
    assert recorder.records == []
    assert "off" in metric.status and "off" in timer.status


def test_a_broken_reporter_never_breaks_the_nodes(monkeypatch):
    def broken():
        raise RuntimeError("LANGFLOW_CMS_ENDPOINT is invalid")

    monkeypatch.setattr(tracing, "get_recorder", broken)
    monkeypatch.setattr(nodes, "get_recorder", broken)
    metric = CmsMetric(input_value=Message(text="x"), metric_name="m")
    assert metric.pass_through().text == "x"
    assert "reporter unavailable" in metric.status


@pytest.mark.slow
def test_bundle_loads_from_langflow_components_path():
    """Both nodes appear in the `cms_monitor` sidebar category, with icons and descriptions."""
    script = (
        "import asyncio, json\n"
        "from lfx.interface.components import get_and_cache_all_types_dict\n"
        "from lfx.services.deps import get_settings_service\n"
        "types = asyncio.run(get_and_cache_all_types_dict(get_settings_service()))\n"
        "print(json.dumps({k: [v['display_name'], v['icon'], v['description']] "
        "for k, v in types.get('cms_monitor', {}).items()}))\n"
    )
    env = dict(os.environ, LANGFLOW_COMPONENTS_PATH=str(REPO / "components"))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["ext:cms_monitor:CmsMetricComponent@extra"][:2] == ["CMS Metric", "activity"]
    assert found["ext:cms_monitor:CmsTimerComponent@extra"][:2] == ["Timer", "timer"]
    assert all(description for *_, description in found.values())
