"""``FlowMonitor``: per-run bookkeeping and recording of flow runs and node builds, independent of
Langflow's service classes (``service.CmsTracingService`` calls it; unit-testable), and ``MONITOR``, the one
process-wide instance the service and the canvas nodes share.

The service is a process-wide singleton serving concurrent runs, so all state is kept per run id. Run paths
differ in how they end a run (see ``docs/metrics.md``): the UI build ends it twice, and ``lfx run`` never ends
a failed run. Hence: a run is recorded once (the first end wins), a node failure ends its run as ``error``
immediately (a failed node stops every Langflow run), and whatever is still open at interpreter exit is
recorded as ``error`` by a safety net (``service``).

Nothing here may break a flow: every recording path swallows its own errors.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from langflow_cms import contract, events
from langflow_cms.langflow import flow_settings
from langflow_cms.langflow.flow_settings import FlowSettings, clean_dimension
from langflow_cms.langflow.runs import (
    ERROR,
    FLOW_METRIC,
    MAX_DEFERRED,
    MAX_KNOWN_SERIES,
    MAX_NODE_SERIES,
    NODE_METRIC,
    OK,
    TOKENS_METRIC,
    NodeSeries,
    Recorder,
    RunState,
    _component_type,
    _current_node,
)
from langflow_cms.lifecycle import get_reporter

MAX_OPEN_RUNS = 10_000
STALE_RUN_S = 6 * 3600
"""A run still open after this long was abandoned (cancelled, crashed task); it is dropped, not reported."""


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

    def record_node_metric(
        self,
        graph: Any,
        name: str,
        number: float | None,
        dimensions: Mapping[str, str],
        rejected: list[tuple[str, str]],
    ) -> dict[str, str]:
        """A CMS Metric node's business metric, as the node checked it (``metric_ask.Asked``): each rejection
        counts in ``langflow_cms_invalid`` (logged once), and a number is recorded for the run of ``graph``
        with the flow's label and dimensions, then the node's own. Returns the dimensions recorded (none when
        there is no number). Never raises."""
        with suppress(Exception):
            storage = getattr(get_recorder(), "storage", None)
            for why, reason in rejected if storage is not None else ():
                storage.reject(name, why, reason)
        if number is None:
            return {}
        label, flow_dims = self.flow_dimensions_for(graph)
        dims = {"flow": label, **flow_dims, **dimensions}
        self.record_for_graph(graph, name, number, dims)
        return dims

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
