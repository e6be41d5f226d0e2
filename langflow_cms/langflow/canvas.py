"""What the four canvas nodes share: their pass-through output and inputs, how a node tells the canvas what
it did (its status and Logs tab lines), and the status lines every node can add (monitoring on or off, the
reporter's health, a rejected value counted in ``langflow_cms_invalid``).

Langflow saves a component's source inside every flow that uses it and rebuilds the class from that copy, so
the classes in ``components/cms_monitor/`` only declare (inputs, outputs) and call into the installed package:
a fix here reaches every saved flow without re-saving it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from langflow_cms.langflow import flow_settings, monitor
from langflow_cms.langflow.monitor import MONITOR

# --- the nodes' inputs and outputs ------------------------------------------------------------------
PASS_THROUGH_TYPES = ("Message", "JSON", "Table")
"""The types of every node's pass-through output, in this order, the first selected. Declared, not read
from the method's ``Message | Data | DataFrame``: lfx turns a union into a ``set``, so the order and the
selected type (the handle's colour, what it connects to, what a saved edge records) changed with
``PYTHONHASHSEED`` and saved edges were dropped after a restart. Message first: a node dropped between a
Chat Input and a Prompt or a model connects like Langflow's own pass-through components."""


def pass_through_output() -> Any:
    """Every node's one output, ``output`` (method ``pass_through``), with ``PASS_THROUGH_TYPES``."""
    from lfx.io import Output  # the canvas classes run inside lfx; the rest of this module does not need it

    return Output(
        display_name="Output",
        name="output",
        method="pass_through",
        types=list(PASS_THROUGH_TYPES),
        selected=PASS_THROUGH_TYPES[0],
    )


ABSENT_INPUT_FLAGS = ("password", "trace_as_input", "trace_as_metadata", "tool_mode")
"""Flags lfx reads on every input of a node, several times a build, as ``getattr(input, flag, False)`` or
``hasattr(input, flag) and input.flag``. On an input class that does not declare one (a ``StrInput`` has no
``password``), pydantic's ``__getattr__`` raises and lfx catches an AttributeError each time: about 5 µs a
lookup, 42 lookups a build for the CMS Metric node's inputs (``bench`` row 11)."""


def with_absent_flags(inputs: list[Any]) -> list[Any]:
    """The node's inputs, each carrying the flags its class lacks as plain instance attributes set to False,
    the value every lfx reader already assumes when the flag is absent. A lookup then finds them without
    raising; pydantic does not serialize them (they are not fields), so the template, the saved flow and
    validation are unchanged. Returns ``inputs`` itself."""
    for input_ in inputs:
        fields = getattr(type(input_), "model_fields", {})
        for flag in ABSENT_INPUT_FLAGS:
            if flag not in fields:
                object.__setattr__(input_, flag, False)
    return inputs


# --- reporter status -------------------------------------------------------------------------------
STATUS_TTL_S = 1.0
"""The reporter line of a node's status is recomputed at most once a second (``health()`` walks every
exporter and series; a flow running thousands of times a second must not pay for it each run)."""
_status_cache: list[Any] = [None, 0.0, ""]  # recorder, computed at (monotonic), text


def reporter_status() -> str:
    """One line for a node's status: is the reporter delivering? (cached for ``STATUS_TTL_S``)"""
    try:
        recorder = monitor.get_recorder()
    except Exception as exc:
        return f"reporter unavailable ({type(exc).__name__})"
    now = time.monotonic()
    cached_recorder, at, text = _status_cache
    if cached_recorder is recorder and recorder is not None and now - at < STATUS_TTL_S:
        return text
    text = _reporter_line(recorder)
    _status_cache[:] = [recorder, now, text]
    return text


def _reporter_line(recorder: Any) -> str:
    try:
        health = recorder.health() if recorder is not None and hasattr(recorder, "health") else None
    except Exception as exc:
        return f"reporter unavailable ({type(exc).__name__})"
    if not health:
        return "reporter unavailable"
    if health.get("enabled") is False:
        return str(health.get("reason") or "reporter disabled")
    failed, dropped = health.get("failed", 0) or 0, health.get("dropped", 0) or 0
    sent, queued = health.get("sent", 0) or 0, health.get("queued", 0) or 0
    state = "degraded" if failed or dropped else "healthy"
    return (
        f"reporter {state}: {sent} entries sent to CloudMonitor since start (all flows and the reporter's "
        f"own health), {queued} queued, {failed} failed, {dropped} dropped"
    )


def off_reason() -> str:
    """Why nothing is monitored when ``monitor_mode()`` is "off", to follow "Monitoring ": the setting that
    switched it off."""
    try:
        recorder = monitor.get_recorder()
        if recorder is None:
            return "off: no reporter in this process"
        if getattr(recorder, "config", None) is None:  # a NullReporter
            if getattr(recorder, "reason", None):
                return "off: a LANGFLOW_CMS_* setting is invalid (the reporter line names it)"
            return "switched off by LANGFLOW_CMS_ENABLED=false"
    except Exception as exc:
        return f"off: reporter unavailable ({type(exc).__name__})"
    return "switched off by LANGFLOW_CMS_MONITOR=off"


def monitoring_line(graph: Any) -> str:
    """Is this flow monitored, and under which ``flow`` name?"""
    try:
        mode = flow_settings.monitor_mode()
        if mode == "off":
            return f"Monitoring {off_reason()}"
        state = MONITOR.run_of_graph(graph)
        if state is not None:
            if not state.monitored:
                return f"Monitoring off for flow '{state.flow}'"
            return f"Monitoring on: flow '{state.flow}'"
        label, _ = MONITOR.flow_dimensions_for(graph)
        return f"Monitoring on: flow '{label}' ({mode})"
    except Exception as exc:
        return f"Monitoring state unknown ({type(exc).__name__})"


def _count_invalid(name: str, why: str, reason: str = "") -> None:
    """A business metric the node could not record counts in ``langflow_cms_invalid`` (logged once), under
    ``reason`` when given."""
    try:
        storage = getattr(monitor.get_recorder(), "storage", None)
        if storage is not None:
            storage.reject(name, why, reason)
    except Exception:
        return


# --- the nodes' bodies (the canvas classes call these with themselves) --------------------------------
def _vertex_id(component: Any) -> str:
    return str(getattr(component, "_id", None) or "")


def _graph(component: Any) -> Any:
    try:
        return component.graph
    except Exception:
        return None


def _tell(component: Any, text: str) -> str:
    """Show ``text`` where the 1.13 canvas shows a component's messages: its status (the output inspector)
    and, when the canvas is watching the build, its Logs tab, one row per line; lines saying the node did
    not record what it was asked (``is_problem``) also mark the node itself (``flag_node``). Never raises."""
    if getattr(component, "_event_manager", None) is not None:
        with contextlib.suppress(Exception):
            for line in text.splitlines():
                component.log(line, name="CMS")
            problems = [line for line in text.splitlines() if is_problem(line)]
            if problems:
                flag_node(component, f"{'; '.join(problems)}. {FLOW_RAN_ON}")
    return text


def _inputs(component: Any) -> Any:
    """A reader of the component's input values: lfx keeps them in ``_attributes``; reading that dict
    directly skips ``Component.__getattr__`` (a measurable part of the node's cost at ten inputs)."""
    attributes = getattr(component, "__dict__", {}).get("_attributes")
    if isinstance(attributes, dict):
        return lambda name, default=None: (
            attributes[name] if name in attributes else getattr(component, name, default)
        )
    return lambda name, default=None: getattr(component, name, default)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def reader(component: Any) -> tuple[Any, Any]:
    """(the node's run graph or None, a reader of its input values: ``_inputs``)."""
    return _graph(component), _inputs(component)


def show(component: Any, graph: Any, lines: list[str | None]) -> str:
    """A node's status: its own ``lines``, then whether the flow is monitored and how the reporter is doing,
    told to the canvas (``_tell``)."""
    text = "\n".join(line for line in [*lines, monitoring_line(graph), reporter_status()] if line)
    return _tell(component, text)


# --- the node itself on the canvas ------------------------------------------------------------------
# What Langflow 1.13's canvas draws from a node's ``end_vertex`` event (frontend NodeStatus): a valid build
# gets a green badge with its duration; an invalid one gets a red border and a red alert icon, and the
# status tooltip lists the ``errorMessage`` of every ``data.outputs`` entry of type ``error``. Nothing else
# in the build result is drawn on the node. So a node that did not record what it was asked is sent to
# the canvas as an invalid build carrying its reason, while the server's own result stays valid: the
# flow runs on (build.py decides with the result, not with the event it sends).
PROBLEM_STARTS = ("Not recorded", "Not monitored", "Stop without start", "Span not", "Dropped ")
"""A status line starting so says the node did not record (all or part of) what it was asked."""
CANVAS_OUTPUT = "cms_monitor"
"""The ``data.outputs`` key of the reason a flagged node's build result carries (not an output of the
node: its own ``output`` entry, which the inspector shows, is untouched)."""
FLOW_RAN_ON = "The flow ran on: only monitoring is affected."


def is_problem(line: str) -> bool:
    """Does this status line say the node did not record what it was asked? Monitoring switched off on
    purpose (``LANGFLOW_CMS_MONITOR=off``, ``LANGFLOW_CMS_ENABLED=false``) is not a problem of the node."""
    return line.startswith(PROBLEM_STARTS) and not line.startswith("Not recorded: monitoring")


def _flagged(build: dict, text: str) -> dict:
    """An ``end_vertex`` build result as the canvas draws a node with a problem: invalid, ``text`` its
    reason."""
    data = dict(build.get("data") or {})
    outputs = dict(data.get("outputs") or {})
    outputs[CANVAS_OUTPUT] = {"message": {"errorMessage": text, "stackTrace": ""}, "type": "error"}
    return {**build, "valid": False, "data": {**data, "outputs": outputs}}


def _events_of(manager: Any) -> dict | None:
    """The run's event manager's callbacks (``EventManager.events``), or None outside a watched build.
    Read from ``__dict__``: the manager's ``__getattr__`` answers any other name with a no-op."""
    events = getattr(manager, "__dict__", {}).get("events") if manager is not None else None
    return events if isinstance(events, dict) and "on_end_vertex" in events else None


def flag_node(component: Any, text: str) -> None:
    """Have the canvas mark this node (red border, alert icon, ``text`` in its status tooltip) when its
    build ends: the ``end_vertex`` event the server then sends for it goes out as ``_flagged``. Only when
    the canvas watches the build (the component has the run's event manager). Never raises."""
    try:
        manager, vertex_id = getattr(component, "_event_manager", None), _vertex_id(component)
        events = _events_of(manager)
        if events is None or not vertex_id:
            return
        flags = manager.__dict__.setdefault("_cms_canvas_flags", {})
        flags[vertex_id] = text
        current = events["on_end_vertex"]
        if getattr(current, "_cms_canvas", False):
            return

        def on_end_vertex(*, data: Any, **kwargs: Any) -> Any:
            try:
                build = data.get("build_data") if isinstance(data, dict) else None
                reason = flags.pop(build.get("id"), None) if isinstance(build, dict) else None
                if reason and build.get("valid"):
                    data = {**data, "build_data": _flagged(build, reason)}
            except Exception:
                pass
            return current(data=data, **kwargs)

        on_end_vertex._cms_canvas = True  # type: ignore[attr-defined]
        events["on_end_vertex"] = on_end_vertex
    except Exception:
        return


def show_unreached(manager: Any, vertex_id: str, text: str) -> None:
    """Tell the canvas what a node the failed run never reached stands for in this run (``text``, its new
    status and Logs line), so it does not keep showing the previous run's: an invalid build of the node
    sent through the run's event manager. Never raises."""
    try:
        if _events_of(manager) is None or not vertex_id:
            return
        lines = text.splitlines()
        build = {
            "id": vertex_id,
            "valid": True,
            "params": None,
            "inactivated_vertices": [],
            "next_vertices_ids": [],
            "top_level_vertices": [],
            "data": {
                "results": {},
                "outputs": {"output": {"message": text, "type": "text"}},
                "logs": {"output": [{"name": "CMS", "message": line, "type": "text"} for line in lines]},
                "message": {},
                "artifacts": {},
                "duration": None,
                "timedelta": None,
            },
        }
        manager.on_end_vertex(data={"build_data": _flagged(build, text)})
    except Exception:
        return


PLUGIN_NODES = ("CmsMetric", "CmsTimer")
"""Node types (``vertex_type`` contains one) whose canvas status the plugin owns."""


def show_unreached_nodes(manager: Any, graph: Any, where: str, told: set[str]) -> None:
    """After a failed run, every plugin node the run never reached (not built, not in ``told``) says so on
    the canvas instead of keeping the previous run's status. Never raises."""
    text = f"Not run: the run failed at {where} before reaching this node; nothing recorded by it in this run"
    try:
        if _events_of(manager) is None or graph is None:
            return
        for vertex in list(graph.vertices):
            vertex_type = str(getattr(vertex, "vertex_type", "") or "")
            if (
                vertex.id in told
                or getattr(vertex, "built", True)
                or not any(t in vertex_type for t in PLUGIN_NODES)
            ):
                continue
            show_unreached(manager, vertex.id, text)
    except Exception:
        return
