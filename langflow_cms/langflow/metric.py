"""The CMS Metric node's run: its own AccessKey (if any), its business metric (if any), and one status text
saying what was recorded or why not, whether the flow is monitored and how the reporter is doing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from langflow_cms.langflow import flow_settings
from langflow_cms.langflow.canvas import (
    _count_invalid,
    _graph,
    _inputs,
    _int,
    _tell,
    monitoring_line,
    off_reason,
    reporter_status,
)
from langflow_cms.langflow.flow_settings import clean_dimension, parse_dimensions
from langflow_cms.langflow.metric_ask import (
    DROP_REASONS,
    GUARD,
    MAX_CUSTOM_DIMENSIONS,
    VALUE_SOURCES,
    _dimension_items,
    _template_dimensions,
    dropped_line,
    input_fields,
    lookup,
    parse_value_spec,
    render,
    to_number,
)
from langflow_cms.langflow.monitor import MONITOR
from langflow_cms.langflow.node_keys import (
    _UNRESOLVED,
    _scope_cached,
    _scope_for,
    _secret_text,
    use_credentials,
)
from langflow_cms.limits import METRIC_NAME_RE


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
        return _record_metric(
            graph,
            metric_name,
            value_source,
            constant,
            value_field,
            dimensions,
            input_value,
            max_values,
            value,
        )
    except Exception as exc:  # a monitoring mistake never fails the flow
        return f"Not recorded: internal error ({type(exc).__name__})"


def _record_metric(
    graph: Any,
    metric_name: Any,
    value_source: str | None,
    constant: Any,
    value_field: str,
    dimensions: Any,
    input_value: Any,
    max_values: int,
    value: Any,
) -> str:
    if flow_settings.monitor_mode() == "off":
        return f"Not recorded: monitoring {off_reason()}"
    name = (metric_name or "").strip() if isinstance(metric_name, str) else str(metric_name or "").strip()
    if not name:
        label, _ = MONITOR.flow_dimensions_for(graph)
        return f"Monitoring flow '{label}' (no custom metric configured)"
    if not METRIC_NAME_RE.fullmatch(name):
        _count_invalid(name, "not a valid CMS metric name", "bad_metric_name")
        return (
            f"Not recorded: '{name[:64]}' is not a valid CMS metric name "
            "(a letter, then letters, digits or _, at most 64)"
        )
    fields: Mapping[str, Any] | None = None
    if value_source is None or value_source not in VALUE_SOURCES:
        kind, detail = parse_value_spec(str(constant if value is None else value))
        if kind == "invalid":
            _count_invalid(name, "value is not a number", "not_a_number")
            return f"Not recorded: {detail}"
        if kind == "field":
            fields = input_fields(input_value)
            number = to_number(lookup(fields, detail))
            where = "the input's text" if detail == "text" else f"input field '{detail}'"
        else:
            number, where = detail, "Value"
    elif value_source == "Input number":
        number, where = to_number(getattr(input_value, "text", input_value)), "input number"
    elif value_source == "Input field":
        fields = input_fields(input_value)
        number, where = to_number(lookup(fields, (value_field or "").strip())), "input field"
    else:
        number, where = to_number(constant), "constant"
    if number is None:
        _count_invalid(name, f"no number from {where}", "not_a_number")
        return f"Not recorded: no number for {name} from {where}"
    label, flow_dims = MONITOR.flow_dimensions_for(graph)
    dims = {"flow": label, **flow_dims}
    items = _dimension_items(dimensions)
    templates, dropped = (
        _template_dimensions(items)
        if items is not None
        else (
            tuple(
                (k, v, True)
                for k, v in parse_dimensions(dimensions, MAX_CUSTOM_DIMENSIONS, clean_values=False).items()
            ),
            (),
        )
    )
    for _key, reason in dropped:
        _count_invalid(name, f"a dimension dropped: {DROP_REASONS[reason]}", reason)
    for key, template, dynamic in templates:
        if dynamic:
            if fields is None:
                fields = input_fields(input_value)
            template = render(template, fields)
        dims[key] = GUARD.admit(name, key, clean_dimension(template), max_values)
    MONITOR.record_for_graph(graph, name, number, dims)
    shown = ", ".join(f"{k}={v}" for k, v in dims.items())
    recorded = f"Recorded {name} = {number:g} {{{shown}}}"
    return f"{recorded}\n{dropped_line(dropped)}" if dropped else recorded


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
    """The CMS Metric node's run: its AccessKey (if any), its business metric (if any), and one status text
    saying what was recorded or why not, whether the flow is monitored and how the reporter is doing."""
    graph = _graph(component)
    lines = []
    try:
        value_of = _inputs(component)
        key_id, secret = value_of("access_key_id"), value_of("access_key_secret")
        if key_id or secret:
            lines.append(use_credentials(key_id, secret, graph, resolved))
        name = value_of("metric_name")
        if name and str(name).strip():
            field = _metric_fields(component, value_of)
            lines.append(
                record_metric(
                    graph,
                    metric_name=str(name),
                    value=field("value", "1"),
                    dimensions=field("dimensions"),
                    input_value=value_of("input_value"),
                    max_values=_int(field("max_values", 20), 20),
                )
            )
        lines.append(monitoring_line(graph))
    except Exception as exc:
        lines.append(f"Not recorded: internal error ({type(exc).__name__})")
    lines.append(reporter_status())
    return _tell(component, "\n".join(line for line in lines if line))


async def ametric_node(component: Any) -> str:
    """``metric_node`` for the node's async method, on the event loop. The node's work is a few µs in memory,
    far less than the worker thread lfx hands a sync method to (``asyncio.to_thread``; ``bench`` row 11).
    The one step that can touch the disk or build an SDK client, the delivery path of a node AccessKey this
    process has not seen yet (``Reporter.scope_for``), runs in a thread first. Never raises."""
    resolved = _UNRESOLVED
    try:
        value_of = _inputs(component)
        key_id, secret = _secret_text(value_of("access_key_id")), _secret_text(value_of("access_key_secret"))
        if key_id and secret and not _scope_cached(key_id, secret):
            resolved = await asyncio.to_thread(_scope_for, key_id, secret)
    except Exception as exc:  # the node's status says why; it is not looked up again on the loop
        resolved = exc
    return metric_node(component, resolved)
