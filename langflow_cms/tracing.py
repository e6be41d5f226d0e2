"""Automatic flow and node timing, plugged into Langflow through the ``lfx.services`` entry point.

``pyproject.toml`` registers :class:`CmsTracingService` as lfx's ``tracing_service``. Langflow then calls it
around every flow run and every component build, on every run path. With full Langflow installed the class
extends Langflow's own ``TracingService`` and calls ``super()`` everywhere, so LangSmith, Langfuse and the
native trace view keep working; under bare ``lfx`` (``lfx run``, ``lfx serve``, ``run_flow_from_json``) it
implements lfx's ``BaseTracingService``.

The service is a process-wide singleton serving concurrent runs, so all state is kept per run id. Run paths
differ in how they end a run (see ``docs/metrics.md``): the UI build ends it twice, and ``lfx run`` never ends
a failed run. Hence: a run is recorded once (the first end wins), a node failure ends its run as ``error``
immediately (a failed node stops every Langflow run), and whatever is still open at interpreter exit is
recorded as ``error`` by a safety net.

Nothing here may break a flow: every recording path swallows its own errors.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from langflow_cms import contract, events, flow_settings
from langflow_cms.flow_settings import FlowSettings, clean_dimension
from langflow_cms.lifecycle import chain_sigterm_flush, get_reporter
from langflow_cms.reporter import CLOSE_SLACK_S
from langflow_cms.server_versions import version_dimension
from langflow_cms.tokens import TokenUsageHandler

if TYPE_CHECKING:
    from uuid import UUID

    from langchain_core.callbacks.base import BaseCallbackHandler

try:  # Full Langflow: extend its service so the built-in tracers keep working.
    from langflow.services.tracing.service import TracingService as _BaseService

    FULL_LANGFLOW = True
except ImportError:  # Bare lfx.
    from lfx.services.tracing.base import BaseTracingService as _BaseService

    FULL_LANGFLOW = False

FLOW_METRIC, NODE_METRIC, SPAN_METRIC = contract.FLOW_METRIC, contract.NODE_METRIC, contract.SPAN_METRIC
TOKENS_METRIC = contract.TOKENS_METRIC
OK, ERROR = contract.OK, contract.ERROR
MAX_OPEN_RUNS = 10_000
MAX_DEFERRED = 1_000
"""Observations a run keeps while it waits for its CMS Metric node to bind the node's own AccessKey."""
STALE_RUN_S = 6 * 3600
"""A run still open after this long was abandoned (cancelled, crashed task); it is dropped, not reported."""


class Recorder(Protocol):
    """What this module needs from the reporter (``langflow_cms.get_reporter()``) or one of its scopes."""

    def record(self, name: str, value: float, dimensions: Mapping[str, str]) -> None: ...


def get_recorder() -> Recorder | None:
    """The process-wide reporter. The one place the recorder is obtained, so tests can swap it."""
    return get_reporter()


def _recorder_of(state: RunState) -> Any:
    """Where a run's observations go: its CMS Metric node's own scope, else the reporter of its start."""
    if state.scope is not None:
        return state.scope
    return state.recorder if state.recorder is not None else get_recorder()


def record(name: str, value: float, dimensions: Mapping[str, str]) -> None:
    """Record one value; never raises (a broken metric must never break a flow)."""
    try:
        recorder = get_recorder()
        if recorder is not None:
            recorder.record(name, value, dimensions)
    except Exception:
        return


@dataclass(frozen=True)
class NodeSeries:
    """One node's series for one status, bound to the recorder it was resolved with."""

    recorder: Any
    series: Any
    """``recorder.series(NODE_METRIC, dims)``; None when the recorder cannot bind (then ``record`` it)."""
    dims: dict[str, str]
    fleet_dims: dict[str, str]
    flow_dimensions: bool = False
    """The flow has its own dimensions: its fleet points go twice (exact for alarms, and with them)."""

    def fleet_points(self, ms: float) -> list[tuple[str, dict[str, str], float]]:
        """The node build's fleet points: ``{flow, node, status}`` exactly (what a node alarm names), plus
        the same with the flow's dimensions when it has some."""
        dims = self.fleet_dims
        exact = {k: dims[k] for k in (contract.FLOW, contract.NODE, contract.STATUS)}
        points = [(contract.FLEET_NODE_METRIC, exact, ms)]
        if self.flow_dimensions:
            points.append((contract.FLEET_NODE_METRIC, dims, ms))
        return points


@dataclass
class RunState:
    """One flow run, from ``start_tracers`` to its first end."""

    run_id: str
    started: float
    flow: str
    monitored: bool
    dimensions: dict[str, str] = field(default_factory=dict)
    opened_at: float = field(default_factory=time.monotonic)
    stem: str | None = None
    described: bool = True
    """False when the run started without its graph in sight; the first node build then describes it."""
    scope: Any = None
    """Where the run's metrics go: None = the process's own delivery path; else the scope of the CMS Metric
    node's own AccessKey (``Reporter.scope_for``), so they never travel with another key."""
    pending: bool = False
    """The flow's CMS Metric node has its own AccessKey, not bound yet: observations wait in ``deferred``."""
    deferred: list[tuple[str, float, dict[str, str]]] = field(default_factory=list)
    session_id: str | None = None
    failure: tuple[str, str, BaseException] | None = None
    """(node id, component type, error) of the node that failed the run."""
    inputs: list[str] = field(default_factory=list)
    """The run's input texts, blanked out of error messages in events (never a prompt in an event)."""
    slow_ms: float | None = None
    """A run slower than this continues the flow's slow streak (``LANGFLOW_CMS_SLOW_RUN_MS`` or the node)."""
    graph_key: int | None = None
    """``id()`` of the graph that started the run, to find the run when the graph changes its run id."""
    graph_ref: Any = None
    """A weak reference to that graph: a loop body's nodes are labelled as in the whole flow."""
    nodes: dict[tuple[str, str], NodeSeries] = field(default_factory=dict)
    """The run's node series by (node id, status), shared by every run of the same graph object and flow
    labels (``FlowMonitor._attach_node_series``): a node's label, dimensions and bound series are worked out
    once, not at every build."""
    fleet_nodes: bool = False
    """Raw fleet points per node too (``LANGFLOW_CMS_FLEET_NODES``), read once per run."""
    recorder: Any = None
    """The process's reporter (``get_recorder()``) when the run started: its nodes record there unless the
    run has a ``scope``."""


_current_run: contextvars.ContextVar[str | None] = contextvars.ContextVar("langflow_cms_run", default=None)
_current_node: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "langflow_cms_node", default=None
)


MAX_NODE_SERIES = 2_000
"""Node series kept per graph object (two statuses per node); past it, nodes are looked up at each build."""
MAX_KNOWN_SERIES = 10_000
"""Node series kept by the monitor across graphs; cleared when full (the reporter caps series anyway)."""


_WORD_SEPARATORS = re.compile(r"[^0-9A-Za-z]+")


def _component_type(component: Any) -> str:
    """The ``component`` dimension: the node's type as Langflow names it (``ChatInput``, ``SplitText``; the
    class for an ``ext:bundle:Class@slot`` node, ``CmsTimerStartComponent``), in CamelCase, words joined:
    ``Prompt Template`` -> ``PromptTemplate`` (one style for every node; docs/metrics.md)."""
    vertex = getattr(component, "_vertex", None)
    vertex_type = str(getattr(vertex, "vertex_type", "") or "")
    if vertex_type.startswith("ext:"):
        vertex_type = vertex_type.split(":", 2)[-1]
    vertex_type = vertex_type.split("@", 1)[0]
    name = vertex_type or getattr(component, "name", None) or type(component).__name__
    joined = "".join(word[:1].upper() + word[1:] for word in _WORD_SEPARATORS.split(str(name)) if word)
    return joined or str(name)


def _graph_from_stack(max_depth: int = 6) -> Any:
    """The graph calling ``start_tracers``: ``Graph.initialize_run`` passes no graph, only its ids."""
    try:
        frame = sys._getframe(2)
    except ValueError:
        return None
    for _ in range(max_depth):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if candidate is not None and hasattr(candidate, "vertices") and hasattr(candidate, "initialize_run"):
            return candidate
        frame = frame.f_back
    return None


class FlowMonitor:
    """Per-run bookkeeping and recording, independent of Langflow's service classes (unit-testable)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, RunState] = {}
        self._graph_runs: dict[int, str] = {}
        """Run id by ``id(graph)``: Langflow's UI build starts the tracers, then sets the job id as the
        graph's run id, so its nodes carry an id the run did not start with."""
        self._failure_hooks: list[Callable[[RunState], None]] = []
        self._node_series = flow_settings.GraphCache()
        """Per graph object: ((flow, flow dimensions, labels), {(node id, status): NodeSeries})."""
        self._known: dict[tuple, NodeSeries] = {}
        """Every NodeSeries by (flow, node label, component, status, *flow dimensions), for new graph
        objects of a flow already seen."""

    def on_run_failed(self, hook: Callable[[RunState], None]) -> None:
        """Call ``hook(run_state)`` when a run ends with an error (record through ``record_for``)."""
        if hook not in self._failure_hooks:
            self._failure_hooks.append(hook)

    # --- runs ---------------------------------------------------------------------------------------
    def describe(self, graph: Any, stem: str | None = None) -> tuple[str, bool, dict[str, str]]:
        """(flow label, monitored?, extra dimensions) of a graph under the current mode."""
        label, monitored, dims, *_ = self._describe(graph, stem)
        return label, monitored, dims

    def _describe(
        self, graph: Any, stem: str | None = None
    ) -> tuple[str, bool, dict[str, str], bool, float | None]:
        """(label, monitored, flow dimensions, own credentials, slow-run threshold in ms or None)."""
        settings = flow_settings.read_settings(graph) if graph is not None else FlowSettings()
        label = flow_settings.flow_label(graph, stem)
        monitored = flow_settings.should_monitor(settings)
        slow_ms = getattr(settings, "slow_ms", None) or _process_slow_ms()
        return label, monitored, dict(settings.dimensions), settings.own_credentials, slow_ms

    def start_run(
        self,
        run_id: str,
        graph: Any,
        stem: str | None = None,
        session_id: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> RunState:
        """Open a run. A restarted run id (a graph re-run) replaces the old state. ``extra``: dimensions
        found outside the flow JSON (the server's ``version``); the flow's own win."""
        label, monitored, dims, own_credentials, slow_ms = self._describe(graph, stem)
        dims = {**(extra or {}), **dims}
        state = RunState(
            run_id=run_id,
            started=time.perf_counter(),
            flow=label,
            monitored=monitored,
            dimensions=dims,
            stem=stem,
            described=graph is not None,
            pending=own_credentials,
            session_id=session_id,
            slow_ms=slow_ms,
            graph_key=id(graph) if graph is not None else None,
        )
        with suppress(TypeError):  # not weak-referenceable: a loop body is labelled from its own nodes
            state.graph_ref = weakref.ref(graph) if graph is not None else None
        self._attach_node_series(state, graph)
        with self._lock:
            self._drop_stale()
            self._runs[run_id] = state
            if state.graph_key is not None:
                self._graph_runs[state.graph_key] = run_id
        return state

    def run(self, run_id: str | None) -> RunState | None:
        if run_id is None:
            return None
        with self._lock:
            return self._runs.get(run_id)

    def end_run(self, run_id: str | None, error: BaseException | None = None) -> bool:
        """Record the run once; later ends of the same run (the UI build ends twice) are ignored."""
        if run_id is None:
            return False
        with self._lock:
            state = self._runs.pop(run_id, None)
            if state is not None and self._graph_runs.get(state.graph_key) == run_id:
                del self._graph_runs[state.graph_key]
        if state is None:
            return False
        if state.monitored:
            elapsed_ms = (time.perf_counter() - state.started) * 1000.0
            status = ERROR if error is not None else OK
            dims = {"flow": state.flow, "status": status, **state.dimensions}
            self.record_for(state, FLOW_METRIC, elapsed_ms, dims)
            target = {"flow": state.flow, "status": status}  # exactly what the alarm rules name
            points = [
                (contract.FLEET_FLOW_METRIC, target, elapsed_ms),
                (contract.FLEET_ERROR_METRIC, {"flow": state.flow}, float(error is not None)),
            ]
            if state.dimensions:  # per-version (per-topic...) analysis: a second series, never an alarm's
                points.append((contract.FLEET_FLOW_METRIC, dims, elapsed_ms))
            self._fleet(state, points)
            self._event(state, elapsed_ms, error)
            if state.slow_ms is not None:
                self._streak(state, elapsed_ms)
        if state.pending and state.deferred:
            _count_unbound(state)
        if error is not None:
            for hook in list(self._failure_hooks):
                try:
                    hook(state)
                except Exception:
                    continue
        return True

    def open_runs(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    def _drop_stale(self) -> None:
        now = time.monotonic()
        stale = [rid for rid, st in self._runs.items() if now - st.opened_at > STALE_RUN_S]
        for rid in stale:
            del self._runs[rid]
        while len(self._runs) >= MAX_OPEN_RUNS:
            self._runs.pop(next(iter(self._runs)))
        if len(self._graph_runs) > len(self._runs):
            self._graph_runs = {key: rid for key, rid in self._graph_runs.items() if rid in self._runs}

    def end_all(self) -> int:
        """Safety net: a run still open when the process ends did not complete, so it is an error."""
        ended = sum(
            self.end_run(run_id, error=RuntimeError("run never ended")) for run_id in self.open_runs()
        )
        return ended

    # --- nodes --------------------------------------------------------------------------------------
    def node_context(self, component: Any) -> tuple[str | None, str, str, RunState | None, Any]:
        """(run id, node id, component type, run state, graph) of a component being built."""
        graph = getattr(component, "graph", None)
        run_id = getattr(graph, "_run_id", None)
        run_id = str(run_id) if run_id else None
        node_id = str(getattr(component, "_id", None) or getattr(component, "get_id", lambda: "?")())
        state = self.run(run_id)
        if state is None and graph is not None:  # the graph took a new run id after the run started
            subgraph = getattr(graph, "_is_subgraph", False) is True
            if subgraph:  # a Loop's body is built inside the Loop node's build: that node's run
                enclosing = _current_node.get()
                alias = enclosing[0] if enclosing and enclosing[0] else None
            else:
                with self._lock:
                    alias = self._graph_runs.get(id(graph))
            found = self.run(alias)
            # an id alias counts only for the run's own graph (not a dead run's graph whose id was reused)
            if found is not None and (subgraph or found.graph_ref is None or found.graph_ref() is graph):
                state, run_id = found, alias
        if state is not None and not state.described and graph is not None:
            state.flow, state.monitored, state.dimensions, state.pending, state.slow_ms = self._describe(
                graph, state.stem
            )
            state.described = True
            self._attach_node_series(state, graph)
        return run_id, node_id, _component_type(component), state, graph

    def _attach_node_series(self, state: RunState, graph: Any) -> None:
        """Give the run the node series of its graph object (new ones if its flow label, flow dimensions or
        node labels changed since the last run of that graph), and read once per run the reporter and
        whether nodes send fleet points."""
        state.recorder = get_recorder()
        state.fleet_nodes = _fleet_nodes()
        if graph is None or not state.monitored:
            return
        made_for = (state.flow, tuple(state.dimensions.items()), flow_settings.node_labels(graph))
        cached = self._node_series.get(graph)
        if cached is not None and cached[0] == made_for:
            state.nodes = cached[1]
        else:
            self._node_series.put(graph, (made_for, state.nodes))

    def node_finished(
        self, component: Any, started: float, error: BaseException | None, context: tuple | None = None
    ) -> None:
        """Record a node build. A failed node ends its run as ``error``: no later node of it will run.

        ``context`` is ``node_context(component)`` taken when the build started (computed once per node).
        This is the per-node cost inside a flow that the 1 % overhead goal is about (docs/performance.md):
        one dict lookup and one ``observe`` when the graph object ran before; a new graph object of a flow
        already seen (a server builds one per request) adds the node's label and one more lookup."""
        run_id, node_id, component_type, state, graph = context or self.node_context(component)
        if state is None:  # A run we never saw start (e.g. a subgraph): label it from its own graph.
            label, monitored, dims, own_credentials, _ = self._describe(graph)
            state = RunState("", 0.0, label, monitored and not own_credentials, dims)
            self._attach_node_series(state, None)
        if state.monitored:
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            status = OK if error is None else ERROR
            self._record_node(state, graph, node_id, component_type, status, elapsed_ms)
        if error is not None:
            if state.failure is None and state.run_id:
                state.failure = (flow_settings.node_label(graph, node_id), component_type, error)
            self.end_run(run_id, error)

    def _record_node(
        self, state: RunState, graph: Any, node_id: str, component_type: str, status: str, ms: float
    ) -> None:
        """One node observation (and its fleet point), through the run's ``NodeSeries``. Never raises."""
        try:
            recorder = _recorder_of(state)
            node = state.nodes.get((node_id, status))
            if node is None or node.recorder is not recorder:
                node = self._node_series_for(state, graph, node_id, component_type, status, recorder)
            if node.series is not None and not state.pending:
                recorder.observe(node.series, ms)
            else:
                self.record_for(state, NODE_METRIC, ms, node.dims)
            if state.fleet_nodes:
                self._fleet(state, node.fleet_points(ms))
        except Exception:
            return

    def _node_series_for(
        self, state: RunState, graph: Any, node_id: str, component_type: str, status: str, recorder: Any
    ) -> NodeSeries:
        """A node's label, dimensions and bound series: from ``_known`` when another graph object of the
        same flow made them (a server builds a new graph per request), else worked out and bound (not
        while the run's own key is unbound: those observations wait in ``record_for``)."""
        if getattr(graph, "_is_subgraph", False) is True and state.graph_ref is not None:
            graph = state.graph_ref() or graph  # a loop body: its node's label in the whole flow
        label = flow_settings.node_label(graph, node_id)  # readable: the display name (+ a short tail)
        key = (state.flow, label, component_type, status, *state.dimensions.items())
        node = self._known.get(key)
        if node is None or node.recorder is not recorder:
            fleet_dims = {"flow": state.flow, "node": label, "status": status, **state.dimensions}
            dims = {
                "flow": state.flow,
                "node": clean_dimension(label),
                "component": clean_dimension(component_type),
                "status": status,
                **state.dimensions,
            }
            own = bool(state.dimensions)
            if state.pending or recorder is None or not hasattr(recorder, "series"):
                return NodeSeries(recorder, None, dims, fleet_dims, own)
            node = NodeSeries(recorder, recorder.series(NODE_METRIC, dims), dims, fleet_dims, own)
            if len(self._known) >= MAX_KNOWN_SERIES:
                self._known.clear()
            self._known[key] = node
        if len(state.nodes) < MAX_NODE_SERIES:
            state.nodes[(node_id, status)] = node
        return node

    def _streak(self, state: RunState, elapsed_ms: float) -> None:
        try:
            if state.pending:
                return
            recorder = _recorder_of(state)
            streaks = getattr(recorder, "streaks", None)
            if streaks is not None:
                streaks.observe({"flow": state.flow}, state.slow_ms, elapsed_ms)  # what the rule names
        except Exception:
            return

    # --- events ---------------------------------------------------------------------------------------
    def _event(self, state: RunState, elapsed_ms: float, error: BaseException | None) -> None:
        """One failure event (or slow-run event) per run, with its log line. Never raises."""
        try:
            if state.pending:
                return  # the flow's own key is not bound: nothing of it may leave with another key
            recorder = _recorder_of(state)
            stream = getattr(recorder, "events", None)
            config = getattr(get_recorder(), "config", None)
            if stream is None or config is None:
                return
            slow = config.slow_run_ms is not None and elapsed_ms > config.slow_run_ms
            if error is None and not (slow and config.slow_events):
                return
            node_id, component, node_error = state.failure or ("", "", error)
            content: dict[str, Any] = {
                "flow": state.flow,
                "status": ERROR if error is not None else OK,
                "node": clean_dimension(node_id) if node_id else "",
                "component": component,
                "error_type": type(node_error).__name__ if node_error is not None else "",
                "message": events.safe_message(node_error, tuple(state.inputs)),
                "run_id": state.run_id,
                "session_id": state.session_id or "",
                "trace_id": state.run_id,
                "instance": config.instance,
                "duration_ms": round(elapsed_ms, 1),
                **state.dimensions,
            }
            if slow and error is None:
                content["threshold_ms"] = config.slow_run_ms
            link = events.sls_link(
                config.sls_project, config.sls_logstore, config.region, run_id=state.run_id, at=time.time()
            )
            if link:
                content["sls"] = link
            name = contract.EVENT_FLOW_FAILED if error is not None else contract.EVENT_FLOW_SLOW
            stream.emit(name, content)
        except Exception:
            return

    # --- where a run's observations go ----------------------------------------------------------------
    def _fleet(self, state: RunState, points: list[tuple[str, dict[str, str], float]]) -> None:
        """Offer a run's raw fleet points to its scope's fleet stream (none while its key is unbound)."""
        try:
            if state.pending:
                return
            recorder = _recorder_of(state)
            fleet = getattr(recorder, "fleet", None)
            if fleet is not None:
                fleet.offer(points, state.run_id)  # by run id: a run's flow and node points go together
        except Exception:
            return

    def record_for(self, state: RunState, name: str, value: float, dims: dict[str, str]) -> None:
        """Record for a run: to its scope, or kept until its CMS Metric node binds its own AccessKey.
        Never raises."""
        try:
            if state.pending:
                if len(state.deferred) < MAX_DEFERRED:
                    state.deferred.append((name, value, dims))
                return
            recorder = _recorder_of(state)
            if recorder is not None:
                recorder.record(name, value, dims)
        except Exception:
            return

    def run_of_graph(self, graph: Any) -> RunState | None:
        """The run a node of ``graph`` belongs to, asked from inside the node's build (Timer spans, the CMS
        Metric node's metric, AccessKey and status): by the graph's run id, else the run ``node_context``
        resolved for the node being built. The two differ in Langflow's UI build, whose graph takes the
        job id as its run id after the run started, and in a Loop's body (a subgraph)."""
        run_id = getattr(graph, "_run_id", None)
        state = self.run(str(run_id)) if run_id else None
        if state is None:
            current = _current_node.get()
            state = self.run(current[0]) if current and current[0] else None
        return state

    def record_for_graph(self, graph: Any, name: str, value: float, dims: dict[str, str]) -> None:
        """``record_for`` the run of ``graph`` (Timer spans, the CMS Metric node's business metric)."""
        state = self.run_of_graph(graph)
        if state is None:
            own_credentials = self._describe(graph)[3]
            if own_credentials:
                return  # its node never bound a key: never send with the process's key
            record(name, value, dims)
            return
        self.record_for(state, name, value, dims)

    def bind_scope(self, graph: Any, scope: Any) -> bool:
        """The CMS Metric node of ``graph``'s run resolved its own AccessKey to ``scope`` (None: refused,
        e.g. too many keys): the run's kept observations go there now, and so do later ones."""
        state = self.run_of_graph(graph)
        if state is None:
            return False
        with self._lock:
            deferred, state.deferred = state.deferred, []
            state.scope, state.pending = scope, False
        if scope is None:
            state.monitored = False
            return False
        for name, value, dims in deferred:
            self.record_for(state, name, value, dims)
        return True

    def flow_dimensions_for(self, graph: Any) -> tuple[str, dict[str, str]]:
        """(flow label, extra dimensions) for metrics recorded by nodes (Timer spans, custom metrics)."""
        state = self.run_of_graph(graph)
        if state is not None:
            return state.flow, dict(state.dimensions)
        label, _, dims = self.describe(graph)
        return label, dims

    def emit_tokens(self, run_id: str | None, graph: Any, model: str, direction: str, tokens: int) -> None:
        state = self.run(run_id)
        if state is None:
            label, monitored, dims, own_credentials, _ = self._describe(graph)
            state = RunState("", 0.0, label, monitored and not own_credentials, dims)
        if state.monitored:
            dims = {
                "flow": state.flow,
                "model": clean_dimension(model),
                "direction": direction,
                **state.dimensions,
            }
            self.record_for(state, TOKENS_METRIC, tokens, dims)


MONITOR = FlowMonitor()
"""The process-wide monitor shared by the service and the canvas nodes."""

# lfx and Langflow import this module when they discover services (before ``lfx serve`` or the server
# starts listening). Creating the reporter now reports a bad setting at start, replays a spool without
# waiting for traffic, and installs the SIGTERM flush before uvicorn takes over the signal.
with suppress(Exception):
    get_reporter()


def _process_slow_ms() -> float | None:
    config = getattr(get_recorder(), "config", None)
    return getattr(config, "slow_run_ms", None)


def _fleet_nodes() -> bool:
    config = getattr(get_recorder(), "config", None)
    return bool(config is not None and config.fleet and config.fleet_nodes)


def _count_unbound(state: RunState) -> None:
    """A run whose CMS Metric node has its own AccessKey ended before the node ran: its observations are
    dropped (never sent with the process's key), counted and logged once."""
    try:
        reporter = get_reporter()
        storage = getattr(reporter, "storage", None)
        if storage is not None:
            storage.count("dropped:unbound_credentials", len(state.deferred))
            storage.warn_once(
                f"unbound:{state.flow}",
                f"flow {state.flow} has a CMS Metric node with its own AccessKey but a run ended before the "
                "node ran; that run's metrics were dropped (put the node first in the flow)",
            )
    except Exception:
        return


SETTLE_S = 1.0
"""After a server's graceful stop, how long the runs that just answered get to end (lfx ends a run's tracers
in a detached task, after the answer)."""


async def _settle_runs() -> None:
    """Let the runs that just answered end, then end the rest (as ``error``): before the exit delivery."""
    deadline = time.monotonic() + SETTLE_S
    while MONITOR.open_runs() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    _exit_safety_net()


def _exit_safety_net() -> None:
    """End the runs still open (as ``error``). Delivery is the reporter's close, within its exit budget."""
    with suppress(Exception):
        MONITOR.end_all()


_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


def _register_exit_hook() -> None:
    """Register the safety net after the reporter exists, so it runs before the reporter's own exit close."""
    global _exit_hook_registered
    with _exit_hook_lock:
        if _exit_hook_registered:
            return
        _exit_hook_registered = True
    with suppress(Exception):
        get_recorder()
    atexit.register(_exit_safety_net)


class CmsTracingService(_BaseService):  # type: ignore[misc, valid-type]
    """Langflow's tracing service plus CloudMonitor timings of every flow run and node build."""

    name = "tracing_service"

    def __init__(self, settings_service: Any = None) -> None:
        if FULL_LANGFLOW:
            super().__init__(settings_service)
        else:
            super().__init__()
            self.deactivated = False
            self.set_ready()
        self.monitor = MONITOR
        # Created now, not at the first run: a bad setting is reported at start, and with a spool the
        # replay of what an earlier process left starts with the server (or lfx serve/run), not with traffic.
        _register_exit_hook()

    # --- flow ---------------------------------------------------------------------------------------
    async def start_tracers(
        self,
        run_id: UUID,
        run_name: str,
        user_id: str | None,
        session_id: str | None,
        project_name: str | None = None,
        flow_id: str | None = None,
        tracing_user_id: str | None = None,
    ) -> None:
        if FULL_LANGFLOW:
            await super().start_tracers(
                run_id=run_id,
                run_name=run_name,
                user_id=user_id,
                session_id=session_id,
                project_name=project_name,
                flow_id=flow_id,
                tracing_user_id=tracing_user_id,
            )
        try:
            chain_sigterm_flush(_settle_runs)
            graph = _graph_from_stack()
            if getattr(graph, "_is_subgraph", False) is True:
                return  # a Loop's iteration (``Graph.create_subgraph``, never ended): part of the open run
            stem = None  # the flow's name when the graph has none: from the file run or served
            if graph is None or not (getattr(graph, "flow_name", None) or getattr(graph, "flow_id", None)):
                stem = flow_settings.source_name_from_stack()
            elif not getattr(graph, "flow_name", None):
                stem = flow_settings.served_name_from_stack(str(graph.flow_id))
            extra = await version_dimension(graph, flow_id, self.monitor) if FULL_LANGFLOW and flow_id else {}
            self.monitor.start_run(str(run_id), graph, stem, session_id, extra)
            _current_run.set(str(run_id))
        except Exception:
            return

    async def end_tracers(self, outputs: dict, error: Exception | None = None) -> None:
        with suppress(Exception):
            self.monitor.end_run(_current_run.get(), error)
        if FULL_LANGFLOW:
            await super().end_tracers(outputs, error)

    # --- nodes --------------------------------------------------------------------------------------
    @asynccontextmanager
    async def trace_component(
        self,
        component: Any,
        trace_name: str,
        inputs: dict[str, Any],
        metadata: dict[str, Any] | None = None,
    ):
        started = time.perf_counter()
        token = context = None
        try:
            context = self.monitor.node_context(component)
            token = _current_node.set((context[0] or "", context[1]))
            text = inputs.get("input_value") if isinstance(inputs, dict) else None
            state = context[3]
            if isinstance(text, str) and len(text) >= 8 and state is not None and len(state.inputs) < 3:
                state.inputs.append(text)
        except Exception:
            pass
        try:
            if FULL_LANGFLOW:
                async with super().trace_component(component, trace_name, inputs, metadata) as traced:
                    yield traced
            else:
                yield self
        except Exception as exc:
            self._node_finished(component, started, exc, context)
            raise
        else:
            self._node_finished(component, started, None, context)
        finally:
            if token is not None:
                with suppress(ValueError):
                    _current_node.reset(token)

    def _node_finished(
        self, component: Any, started: float, error: BaseException | None, context: tuple | None
    ) -> None:
        try:
            self.monitor.node_finished(component, started, error, context)
        except Exception:
            return

    def get_langchain_callbacks(self) -> list[BaseCallbackHandler]:
        callbacks: list[BaseCallbackHandler] = (
            list(super().get_langchain_callbacks()) if FULL_LANGFLOW else []
        )
        current = _current_node.get()
        run_id = current[0] if current and current[0] else None
        if run_id is None or flow_settings.monitor_mode() == "off":
            return callbacks
        monitor = self.monitor

        def emit(model: str, direction: str, tokens: int) -> None:
            monitor.emit_tokens(run_id, None, model, direction, tokens)

        callbacks.append(TokenUsageHandler(emit))
        return callbacks

    # --- shutdown -------------------------------------------------------------------------------------
    async def teardown(self) -> None:
        """Server shutdown: end open runs and deliver the open windows.

        Langflow's Gunicorn worker leaves through ``os._exit``, so ``atexit`` never runs there; the FastAPI
        lifespan's service teardown is the last moment we get, and it must not block the event loop.
        """
        if FULL_LANGFLOW:
            with suppress(Exception):
                await super().teardown()
        with suppress(Exception):
            recorder = get_recorder()
            timeout = recorder.exit_timeout() if recorder is not None else 0.0

            def finish() -> None:
                _exit_safety_net()
                if recorder is not None:
                    recorder.close(timeout)

            # off the event loop, and bounded like close(): other services' teardown is not held up
            await asyncio.wait_for(asyncio.to_thread(finish), timeout + 2 * CLOSE_SLACK_S)

    # --- the rest of lfx's BaseTracingService (Langflow's base implements these itself) ------------------
    if not FULL_LANGFLOW:

        def add_log(self, trace_name: str, log: Any) -> None:
            return None

        def set_outputs(
            self, trace_name: str, outputs: dict[str, Any], output_metadata: dict[str, Any] | None = None
        ) -> None:
            return None

        def get_tracer(self, tracer_name: str) -> None:
            """No third-party tracers under bare lfx (Component asks for ``langfuse``)."""
            return None

        @property
        def project_name(self) -> str | None:
            return None
