"""What the Langflow adapter keeps per flow run: ``RunState`` (one run, from its start to its first end),
``NodeSeries`` (one node's bound series), the context variables naming the run and node being built, and the
``component`` dimension's rule. Data only: ``monitor.FlowMonitor`` does the bookkeeping."""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from langflow_cms import contract

FLOW_METRIC, NODE_METRIC, SPAN_METRIC = contract.FLOW_METRIC, contract.NODE_METRIC, contract.SPAN_METRIC
TOKENS_METRIC = contract.TOKENS_METRIC
OK, ERROR = contract.OK, contract.ERROR
MAX_DEFERRED = 1_000
"""Observations a run keeps while it waits for its CMS Metric node to bind the node's own AccessKey."""


class Recorder(Protocol):
    """What this module needs from the reporter (``langflow_cms.get_reporter()``) or one of its scopes."""

    def record(self, name: str, value: float, dimensions: Mapping[str, str]) -> None: ...


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
    events: Any = None
    """The run's event manager (the canvas's event stream) when a node failed the run: the nodes it never
    reached then tell the canvas so (``timers``), instead of showing the previous run's status."""
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
