"""The mark a node's run leaves on the canvas, through lfx's real EventManager (the in-process half of
tests/test_browser_runtime.py): the ``end_vertex`` event of a node that did not record goes out invalid
with its reason, nothing else changes, and a failed run's unreached nodes are told."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from lfx.events.event_manager import create_default_event_manager

from langflow_cms.langflow import canvas


def _manager():
    queue = asyncio.Queue()
    return create_default_event_manager(queue), queue


def _sent(queue) -> list[dict]:
    events = []
    while not queue.empty():
        _id, raw, _at = queue.get_nowait()
        events.append(json.loads(raw.decode()))
    return events


def _build(node_id: str) -> dict:
    return {
        "id": node_id,
        "valid": True,
        "data": {"outputs": {"output": {"message": {"text": "hi"}, "type": "message"}}, "duration": "3 ms"},
    }


def _node(manager, node_id: str):
    logs = []
    return SimpleNamespace(_event_manager=manager, _id=node_id, log=lambda line, name=None: logs.append(line))


def test_a_node_that_did_not_record_goes_out_invalid_with_its_reason_and_its_output_intact():
    manager, queue = _manager()
    canvas._tell(
        _node(manager, "CmsMetric-a"), "Not recorded: no number for m from the input's text\nMonitoring on"
    )
    manager.on_end_vertex(data={"build_data": _build("CmsMetric-a")})
    manager.on_end_vertex(data={"build_data": _build("ChatOutput-b")})
    manager.on_end_vertex(data={"build_data": _build("CmsMetric-a")})  # the next run of the same node

    flagged, other, next_run = (e["data"]["build_data"] for e in _sent(queue))
    assert flagged["valid"] is False
    reason = flagged["data"]["outputs"]["cms_monitor"]
    assert reason["type"] == "error"
    assert reason["message"]["errorMessage"] == (
        "Not recorded: no number for m from the input's text. The flow ran on: only monitoring is affected."
    )
    assert flagged["data"]["outputs"]["output"] == {"message": {"text": "hi"}, "type": "message"}
    assert flagged["data"]["duration"] == "3 ms"
    assert other == _build("ChatOutput-b") and next_run == _build("CmsMetric-a")


def test_a_node_that_recorded_or_monitoring_switched_off_leaves_no_mark():
    manager, queue = _manager()
    canvas._tell(_node(manager, "CmsMetric-a"), "Recorded m = 1 {flow=f}\nMonitoring on: flow 'f'")
    canvas._tell(
        _node(manager, "CmsMetric-c"), "Not recorded: monitoring switched off by LANGFLOW_CMS_MONITOR=off"
    )
    manager.on_end_vertex(data={"build_data": _build("CmsMetric-a")})
    manager.on_end_vertex(data={"build_data": _build("CmsMetric-c")})
    assert [e["data"]["build_data"] for e in _sent(queue)] == [_build("CmsMetric-a"), _build("CmsMetric-c")]


def test_without_a_watching_canvas_nothing_is_sent_and_nothing_raises():
    node = SimpleNamespace(_event_manager=None, _id="CmsMetric-a")
    assert canvas._tell(node, "Not recorded: x") == "Not recorded: x"
    canvas.show_unreached(None, "TimerStop-a", "Span 'x': 1.0 ms")  # lfx run: no event manager


def test_a_failed_runs_unreached_plugin_nodes_are_told_and_the_rest_left_alone():
    manager, queue = _manager()
    vertices = [
        SimpleNamespace(
            id="TimerStop-a", vertex_type="ext:cms_monitor:CmsTimerStopComponent@official", built=False
        ),
        SimpleNamespace(
            id="CmsMetric-b", vertex_type="ext:cms_monitor:CmsMetricComponent@official", built=False
        ),
        SimpleNamespace(
            id="TimerStart-c", vertex_type="ext:cms_monitor:CmsTimerStartComponent@official", built=True
        ),
        SimpleNamespace(id="ChatOutput-d", vertex_type="ChatOutput", built=False),
    ]
    canvas.show_unreached_nodes(manager, SimpleNamespace(vertices=vertices), "Offline_Poet", {"TimerStop-a"})
    (event,) = _sent(queue)
    build = event["data"]["build_data"]
    assert build["id"] == "CmsMetric-b" and build["valid"] is False
    text = (
        "Not run: the run failed at Offline_Poet before reaching this node; "
        + "nothing recorded by it in this run"
    )
    assert build["data"]["outputs"]["cms_monitor"]["message"]["errorMessage"] == text
    assert build["data"]["logs"]["output"] == [{"name": "CMS", "message": text, "type": "text"}]
