"""The CMS Metric node's run: its own AccessKey (if any), its business metric (if any), and one status text
saying what was recorded or why not, whether the flow is monitored and how the reporter is doing."""

from __future__ import annotations

from typing import Any

from langflow_cms.langflow import flow_settings
from langflow_cms.langflow.canvas import (
    _int,
    off_reason,
    reader,
    show,
)
from langflow_cms.langflow.metric_ask import (
    ask,
    dropped_line,
)
from langflow_cms.langflow.monitor import MONITOR
from langflow_cms.langflow.node_keys import (
    _UNRESOLVED,
    apply_key,
    use_credentials,
)


def record_metric(
    graph: Any,
    *,
    metric_name: str,
    value_source: str | None = None,
    constant: Any = 1.0,
    value_field: str = "",
    dimensions: Any = None,
    input_value: Any = None,
    max_values: int = 20,
    value: Any = None,
) -> str:
    """Record the node's business metric and return its status text (never raises).

    Today's node passes ``value`` (its Value field: a number, ``{text}`` or ``{field.path}``); flows saved
    with the first node pass ``value_source`` (Constant / Input number / Input field), ``constant`` and
    ``value_field``, and keep working.
    """
    try:
        if flow_settings.monitor_mode() == "off":
            return f"Not recorded: monitoring {off_reason()}"
        name = str(metric_name or "").strip()
        if not name:
            label, _ = MONITOR.flow_dimensions_for(graph)
            return f"Monitoring flow '{label}' (no custom metric configured)"
        # what the node was asked, checked without the run; then one hand-over to the run
        asked = ask(name, value_source, constant, value_field, dimensions, input_value, max_values, value)
        dims = MONITOR.record_node_metric(graph, name, asked.number, asked.dimensions, asked.rejected)
        if asked.number is None:
            return asked.problem
        shown = ", ".join(f"{k}={v}" for k, v in dims.items())
        recorded = f"Recorded {name} = {asked.number:g} {{{shown}}}"
        return f"{recorded}\n{dropped_line(asked.dropped)}" if asked.dropped else recorded
    except Exception as exc:  # a monitoring mistake never fails the flow
        return f"Not recorded: internal error ({type(exc).__name__})"


def _metric_fields(component: Any, value_of: Any) -> Any:
    """A reader of the fields the node shows only with a Metric Name (Value, Dimensions, Max Values).

    The canvas shows them when the name is typed in. A name set any other way (an API tweak, an edited or
    generated JSON) leaves them hidden, and lfx skips hidden fields and passes their defaults. So a hidden
    field's saved value is read from the node's template, unless lfx passed the field (a tweak applied to
    the graph)."""
    try:
        vertex = component._vertex
        template, passed = vertex.data["node"]["template"], vertex.params
    except Exception:
        template = passed = None

    def read(name: str, default: Any = None) -> Any:
        field = template.get(name) if isinstance(template, dict) else None
        if (
            isinstance(field, dict)
            and field.get("show") is False
            and not field.get("load_from_db")  # a global variable's name, not its value
            and "value" in field
            and isinstance(passed, dict)
            and name not in passed  # a tweak on the graph (process_tweaks_on_graph) passes it: lfx's wins
        ):
            return default if field["value"] in (None, "") else field["value"]
        return value_of(name, default)

    return read


def metric_node(component: Any, resolved: Any = _UNRESOLVED) -> str:
    """The CMS Metric node's run, synchronously (``ametric_node`` is the node's): its AccessKey (if any),
    its business metric (if any), and one status text."""
    graph, value_of = reader(component)
    key = value_of("access_key_id"), value_of("access_key_secret")
    key_line = use_credentials(*key, graph, resolved)  # None without a key of its own
    return show(component, graph, [key_line, _metric_line(component, graph, value_of)])


async def ametric_node(component: Any) -> str:
    """The CMS Metric node's run, on the event loop (the node's work is a few µs in memory, far less than the
    worker thread lfx hands a sync method to; ``bench`` row 11): read the inputs, apply the node's AccessKey
    (``node_keys.apply_key``), record its business metric (``record_metric``), show the status saying what
    was recorded or why not, whether the flow is monitored and how the reporter is doing. Never raises."""
    try:
        graph, value_of = reader(component)
        key = value_of("access_key_id"), value_of("access_key_secret")
        key_line = await apply_key(*key, graph)  # None without a key of its own
        lines = [key_line, _metric_line(component, graph, value_of)]
    except Exception as exc:
        graph, lines = None, [f"Not recorded: internal error ({type(exc).__name__})"]
    return show(component, graph, lines)


def _metric_line(component: Any, graph: Any, value_of: Any) -> str | None:
    """The business metric's status line (None without a Metric Name). Never raises."""
    try:
        name = value_of("metric_name")
        if not (name and str(name).strip()):
            return None
        field = _metric_fields(component, value_of)
        return record_metric(
            graph,
            metric_name=str(name),
            value=field("value", "1"),
            dimensions=field("dimensions"),
            input_value=value_of("input_value"),
            max_values=_int(field("max_values", 20), 20),
        )
    except Exception as exc:
        return f"Not recorded: internal error ({type(exc).__name__})"
