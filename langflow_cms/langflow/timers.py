"""Timer Start / Timer Stop (and the legacy one-node Timer): open a span in the run, close it and record
``langflow_span_duration_ms``; a run that fails between the two reports the span as ``error``."""

from __future__ import annotations

import threading
import time
from typing import Any

from langflow_cms.langflow import flow_settings
from langflow_cms.langflow.canvas import (
    _count_invalid,
    _graph,
    _tell,
    _vertex_id,
    off_reason,
    show_unreached,
    show_unreached_nodes,
)
from langflow_cms.langflow.flow_settings import clean_dimension
from langflow_cms.langflow.monitor import MONITOR
from langflow_cms.langflow.runs import SPAN_METRIC

MAX_SPANS = 10_000


class SpanClock:
    """Start times of open Timer spans, per run, so concurrent runs never see each other's spans."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], float] = {}

    def start(self, run_key: str, span: str) -> None:
        with self._lock:
            if len(self._open) >= MAX_SPANS:
                self._open.pop(next(iter(self._open)))
            self._open[(run_key, span)] = time.perf_counter()

    def stop(self, run_key: str, span: str) -> float | None:
        """Milliseconds since the span's start, or None if it was never started in this run."""
        with self._lock:
            started = self._open.pop((run_key, span), None)
        return None if started is None else (time.perf_counter() - started) * 1000.0

    def abandon(self, run_key: str) -> list[tuple[str, float]]:
        """Close every open span of a run: (span, milliseconds so far)."""
        now = time.perf_counter()
        with self._lock:
            keys = [key for key in self._open if key[0] == run_key]
            return [(key[1], (now - self._open.pop(key)) * 1000.0) for key in keys]


CLOCK = SpanClock()


def _spans_of_failed_run(state: Any) -> None:
    """A run that fails between a Timer start and its stop reports the span as ``error``, and the Timer
    Stop the run never reached says so on the canvas (else it would keep the previous run's span)."""
    graph = state.graph_ref() if callable(state.graph_ref) else None
    where = state.failure[0] if state.failure else "a node"
    told: set[str] = set()
    for span, elapsed in CLOCK.abandon(state.run_id):
        dims = {"flow": state.flow, "span": span, "status": "error", **state.dimensions}
        MONITOR.record_for(state, SPAN_METRIC, elapsed, dims)
        if state.events is None or graph is None:
            continue
        text = (
            f"Span '{span}': {elapsed:.1f} ms, recorded with status=error: the run failed at {where} "
            "before reaching this node"
        )
        for stop_id in _stops_of(graph, span):
            show_unreached(state.events, stop_id, text)
            told.add(stop_id)
    if state.events is not None:
        show_unreached_nodes(state.events, graph, where, told)


def _stops_of(graph: Any, span: str) -> list[str]:
    """The ids of the flow's Timer Stop nodes that close ``span``. Never raises."""
    try:
        found = []
        for vertex in list(graph.vertices):
            if TIMER_STOP_TYPE not in str(getattr(vertex, "vertex_type", "") or ""):
                continue
            name = _param(vertex, "span_name")
            start = None if name else upstream_start(graph, vertex.id)
            if start is not None:
                name = start_span_name(graph, start.id, _param(start, "span_name"))
            if name and clean_dimension(name) == span:
                found.append(vertex.id)
        return found
    except Exception:
        return []


MONITOR.on_run_failed(_spans_of_failed_run)


def _run_key(graph: Any) -> str:
    """The run a span belongs to: its run's id (so a failed run finds its open spans), else the graph's."""
    state = MONITOR.run_of_graph(graph)
    if state is not None and state.run_id:
        return state.run_id
    run_id = getattr(graph, "_run_id", None)
    return str(run_id) if run_id else f"graph-{id(graph)}"


def timer_step(graph: Any, span: str, action: str) -> str:
    """The first Timer node (one node, Action start/stop; kept for flows saved with it): start or stop a
    span; a stop records ``langflow_span_duration_ms``. Returns the status text."""
    span = clean_dimension(span or "span")
    if flow_settings.monitor_mode() == "off":
        return f"Not recorded: monitoring {off_reason()}"
    if action == "start":
        CLOCK.start(_run_key(graph), span)
        return f"Started span '{span}'"
    return _stop(graph, span)


def _stop(graph: Any, span: str) -> str:
    elapsed = CLOCK.stop(_run_key(graph), span)
    if elapsed is None:
        _count_invalid(SPAN_METRIC, "timer stop without start", "stop_without_start")
        return (
            f"Stop without start: span '{span}' was not started in this run; nothing recorded "
            "(counted in langflow_cms_invalid)"
        )
    label, flow_dims = MONITOR.flow_dimensions_for(graph)
    MONITOR.record_for_graph(
        graph, SPAN_METRIC, elapsed, {"flow": label, "span": span, "status": "ok", **flow_dims}
    )
    return f"Span '{span}': {elapsed:.1f} ms"


TIMER_START_CLASS = "CmsTimerStartComponent"
TIMER_START_TYPE = "CmsTimerStart"
TIMER_STOP_TYPE = "CmsTimerStop"


def _is_timer_start(vertex: Any) -> bool:
    component = getattr(vertex, "custom_component", None)
    if component is not None and type(component).__name__ == TIMER_START_CLASS:
        return True
    return TIMER_START_TYPE in str(getattr(vertex, "vertex_type", "") or "")


def _param(vertex: Any, name: str) -> str:
    for attr in ("params", "raw_params"):
        params = getattr(vertex, attr, None) or {}
        value = params.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def start_span_name(graph: Any, vertex_id: str, span_name: Any = "") -> str:
    """A Timer Start's span: its Span Name if set, else its own ``node`` label (``Timer_Start``, or
    ``Timer_Start_gw8tY`` when the flow has several), which is unique per start node and so per pair."""
    text = span_name.strip() if isinstance(span_name, str) else ""
    return clean_dimension(text) if text else flow_settings.node_label(graph, vertex_id)


def _predecessors(graph: Any) -> dict[str, list[str]]:
    """Source ids by target id, from the flow's edges. Not ``graph.predecessor_map``: lfx's run manager
    shares its lists and empties them as a run proceeds, so at a Timer Stop they no longer name its
    upstream nodes."""
    edges = getattr(graph, "edges", None)
    if not edges:
        return {k: list(v) for k, v in (getattr(graph, "predecessor_map", None) or {}).items()}
    out: dict[str, list[str]] = {}
    for edge in list(edges):
        source, target = getattr(edge, "source_id", None), getattr(edge, "target_id", None)
        if source and target:
            out.setdefault(str(target), []).append(str(source))
    return out


def upstream_start(graph: Any, vertex_id: str) -> Any:
    """The nearest Timer Start upstream of ``vertex_id`` (breadth first over the flow's edges), or None."""
    predecessors = _predecessors(graph)
    get_vertex = getattr(graph, "get_vertex", None)
    seen = {vertex_id}
    frontier = list(predecessors.get(vertex_id, ()))
    while frontier:
        following: list[str] = []
        for candidate in frontier:
            if candidate in seen:
                continue
            seen.add(candidate)
            try:
                vertex = get_vertex(candidate) if get_vertex else None
            except Exception:
                vertex = None
            if vertex is not None and _is_timer_start(vertex):
                return vertex
            following.extend(predecessors.get(candidate, ()))
        frontier = following
    return None


def timer_start(graph: Any, vertex_id: str, span_name: Any = "") -> str:
    """The Timer Start node: open its span in this run. Returns the status text (never raises)."""
    try:
        if flow_settings.monitor_mode() == "off":
            return f"Not recorded: monitoring {off_reason()}"
        span = start_span_name(graph, vertex_id, span_name)
        CLOCK.start(_run_key(graph), span)
        return f"Started span '{span}'"
    except Exception as exc:
        return f"Span not started: internal error ({type(exc).__name__})"


def timer_stop(graph: Any, vertex_id: str, span_name: Any = "") -> str:
    """The Timer Stop node: close the span of the Timer Start it pairs with and record its duration.

    With no Span Name it pairs with the nearest Timer Start upstream (so it cannot be mis-wired by a typo);
    a stop with nothing to pair with records nothing, says so on the canvas and counts in
    ``langflow_cms_invalid``.
    """
    try:
        if flow_settings.monitor_mode() == "off":
            return f"Not recorded: monitoring {off_reason()}"
        text = span_name.strip() if isinstance(span_name, str) else ""
        if text:
            return _stop(graph, clean_dimension(text))
        start = upstream_start(graph, vertex_id)
        if start is None:
            _count_invalid(SPAN_METRIC, "timer stop without start", "stop_without_start")
            return (
                "Stop without start: no Timer Start runs before this node; nothing recorded "
                "(counted in langflow_cms_invalid)"
            )
        return _stop(graph, start_span_name(graph, start.id, _param(start, "span_name")))
    except Exception as exc:
        return f"Span not recorded: internal error ({type(exc).__name__})"


def timer_start_node(component: Any) -> str:
    return _tell(
        component, timer_start(_graph(component), _vertex_id(component), getattr(component, "span_name", ""))
    )


def timer_stop_node(component: Any) -> str:
    return _tell(
        component, timer_stop(_graph(component), _vertex_id(component), getattr(component, "span_name", ""))
    )


def timer_step_node(component: Any) -> str:
    """The legacy Timer node's step (``timer_step`` with the node's Span and Action)."""
    span, action = getattr(component, "span_name", ""), getattr(component, "action", "")
    return _tell(component, timer_step(_graph(component), span, action))
