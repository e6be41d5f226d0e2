"""The logic behind the two canvas nodes, CMS Metric and Timer.

Langflow saves a component's source inside every flow that uses it and rebuilds the class from that copy, so
the classes in ``components/cms_monitor/`` stay thin (inputs, outputs, status text) and call into this
installed module: a fix here reaches every saved flow without re-saving it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from langflow_cms import flow_settings
from langflow_cms.flow_settings import RESERVED_DIMENSIONS, clean_dimension, parse_dimensions
from langflow_cms.limits import METRIC_NAME_RE
from langflow_cms.naming import as_number, clean_key
from langflow_cms.tracing import MONITOR, SPAN_METRIC, _current_node, get_recorder

VALUE_SOURCES = ("Constant", "Input number", "Input field")
MAX_CUSTOM_DIMENSIONS = 4
"""flow + up to 3 flow dimensions + these + the reporter's instance and env stay within CMS's 10."""
OVERFLOW_VALUE = "other"
MAX_SPANS = 10_000
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)\}")
_UNRESOLVED: Any = object()
"""``use_credentials`` without a scope looked up beforehand."""


# --- reading the input -----------------------------------------------------------------------------
def input_fields(value: Any) -> dict[str, Any]:
    """The fields a template or a value path can refer to: ``text`` for a Message, the keys of a Data."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"text": value}
    fields: dict[str, Any] = {}
    data = getattr(value, "data", None)
    if isinstance(data, dict):
        fields.update(data)
    if isinstance(value, Mapping):
        fields.update(value)
    text = getattr(value, "text", None)
    if isinstance(text, str):
        fields.setdefault("text", text)
    return fields


def lookup(fields: Mapping[str, Any], path: str) -> Any:
    """A dotted path (``usage.total``) into nested dicts; None when absent."""
    current: Any = fields
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            return None
    return current


def render(template: str, fields: Mapping[str, Any]) -> str:
    """Fill ``{field}`` placeholders from the input; a missing field renders as ``unknown``."""

    def fill(match: re.Match[str]) -> str:
        found = lookup(fields, match.group(1))
        return "unknown" if found is None else str(found)

    return _PLACEHOLDER.sub(fill, str(template))


def to_number(value: Any) -> float | None:
    """A finite float from a number or numeric text (``naming.as_number`` with text); None (the node says
    "no number") for anything else, including NaN, infinities and integers too large for a float."""
    return as_number(value, text=True)


# --- cardinality guard -----------------------------------------------------------------------------
class CardinalityGuard:
    """Caps the distinct values each (metric, dimension) may take in this process.

    A dimension filled from user input (the poem's topic) could otherwise create one CMS series per
    request; values beyond the cap are reported as ``other`` so totals stay right and series stay bounded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], set[str]] = {}

    def admit(self, metric: str, key: str, value: str, limit: int) -> str:
        with self._lock:
            seen = self._seen.setdefault((metric, key), set())
            if value in seen:
                return value
            if len(seen) < max(1, limit):
                seen.add(value)
                return value
            return OVERFLOW_VALUE

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()


GUARD = CardinalityGuard()


# --- reporter status -------------------------------------------------------------------------------
STATUS_TTL_S = 1.0
"""The reporter line of a node's status is recomputed at most once a second (``health()`` walks every
exporter and series; a flow running thousands of times a second must not pay for it each run)."""
_status_cache: list[Any] = [None, 0.0, ""]  # recorder, computed at (monotonic), text


def reporter_status() -> str:
    """One line for a node's status: is the reporter delivering? (cached for ``STATUS_TTL_S``)"""
    try:
        recorder = get_recorder()
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


def use_credentials(
    access_key_id: Any, access_key_secret: Any, graph: Any = None, resolved: Any = _UNRESOLVED
) -> str | None:
    """Deliver this flow's metrics with the node's AccessKey, and only this flow's.

    The key gets a delivery path of its own (``Reporter.scope_for``); the run's metrics recorded so far
    waited for it and go there now. Other flows and the process's credentials are untouched. Returns a
    status note that never shows the key. ``graph`` defaults to the run of the node being built (flows
    saved before this argument existed call it without). ``resolved``: the key's scope, or the error of
    its lookup, already looked up off the event loop by ``ametric_node``.
    """
    key_id = _secret_text(access_key_id)
    secret = _secret_text(access_key_secret)
    if not key_id and not secret:
        return None
    if not (key_id and secret):
        _bind(graph, None)
        return "Not monitored: the node's AccessKey needs both the id and the secret"
    try:
        if isinstance(resolved, Exception):
            raise resolved
        scope = _scope_for(key_id, secret) if resolved is _UNRESOLVED else resolved
    except Exception as exc:
        _bind(graph, None)
        return f"Not monitored: the node's AccessKey was not applied ({type(exc).__name__})"
    _bind(graph, scope)
    if scope is None:
        if getattr(get_recorder(), "storage", None) is None:  # reporting is off: the status says why
            return "Not monitored: the reporter is not running"
        return "Not monitored: too many different AccessKeys in this process (see the log)"
    return "using the node's AccessKey for this flow only"


_scopes: dict[tuple[int, str, str], Any] = {}
MAX_CACHED_SCOPES = 64


def _cached_scope(reporter: Any, key_id: str, secret: str) -> tuple[Any, Any] | None:
    """(reporter, scope) when this reporter already resolved this key, else None."""
    cached = _scopes.get((id(reporter), key_id, secret))
    return cached if cached is not None and cached[0] is reporter else None


def _scope_cached(key_id: str, secret: str) -> bool:
    return _cached_scope(get_recorder(), key_id, secret) is not None


def _scope_for(key_id: str, secret: str) -> Any:
    """The reporter's scope for this AccessKey, resolved once per (reporter, key): later runs with the same
    key only bind it to their run."""
    reporter = get_recorder()
    cached = _cached_scope(reporter, key_id, secret)
    if cached is not None:
        return cached[1]
    cache_key = (id(reporter), key_id, secret)
    from langflow_cms.credentials import Credential

    scope_for = getattr(reporter, "scope_for", None)
    scope = scope_for(Credential(key_id, secret, source="CMS Metric node")) if scope_for else None
    if scope is not None:
        if len(_scopes) >= MAX_CACHED_SCOPES:
            _scopes.clear()
        _scopes[cache_key] = (reporter, scope)
    return scope


class _RunOf:
    """A stand-in graph for ``MONITOR.bind_scope`` when only the run id is known."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id


def _bind(graph: Any, scope: Any) -> None:
    if graph is None:
        current = _current_node.get()
        graph = _RunOf(current[0]) if current and current[0] else None
    if graph is not None:
        MONITOR.bind_scope(graph, scope)


def _secret_text(value: Any) -> str:
    if value is None:
        return ""
    getter = getattr(value, "get_secret_value", None)
    text = getter() if callable(getter) else value
    return str(text).strip()


# --- CMS Metric ------------------------------------------------------------------------------------
VALUE_HELP = "a number, {text} (the input message as a number) or {field.path} of the input Data"


@functools.lru_cache(maxsize=1024)
def parse_value_spec(spec: str) -> tuple[str, Any]:
    """The node's Value field, parsed once per distinct text: ``("constant", 2.0)``,
    ``("field", "usage.total")`` (``{text}`` is a message's text) or ``("invalid", reason)``."""
    text = spec.strip()
    if not text:
        return ("constant", 1.0)
    match = _PLACEHOLDER.fullmatch(text)
    if match:
        return ("field", match.group(1))
    number = to_number(text)
    if number is None:
        return ("invalid", f"Value '{text[:40]}' is not {VALUE_HELP}")
    return ("constant", number)


DROP_REASONS = {
    "too_many_dimensions": f"at most {MAX_CUSTOM_DIMENSIONS} per business metric (CloudMonitor takes 10 in "
    "all; flow, flow dimensions, instance and env use the others)",
    "reserved_dimension": "the name is set by langflow-cms",
    "bad_dimension_name": "not a usable dimension name",
}
"""Why a row of the node's Dimensions was dropped, by the ``reason`` it counts under in
``langflow_cms_invalid``."""


@functools.lru_cache(maxsize=256)
def _template_dimensions(
    items: tuple[tuple[str, str], ...],
) -> tuple[tuple[tuple[str, str, bool], ...], tuple[tuple[str, str], ...]]:
    """The node's Dimensions parsed once per distinct setting: (key, template, has placeholders) of the rows
    kept, in order, and (key, reason) of the rows dropped (``DROP_REASONS``)."""
    kept: list[tuple[str, str, bool]] = []
    dropped: list[tuple[str, str]] = []
    for key, template in dict(items).items():
        name = clean_key(key)
        if not name:
            dropped.append((str(key)[:40], "bad_dimension_name"))
        elif name in RESERVED_DIMENSIONS:
            dropped.append((name, "reserved_dimension"))
        elif len(kept) >= MAX_CUSTOM_DIMENSIONS:
            dropped.append((name, "too_many_dimensions"))
        else:
            kept.append((name, template, bool(_PLACEHOLDER.search(template))))
    return tuple(kept), tuple(dropped)


def dropped_line(dropped: tuple[tuple[str, str], ...]) -> str:
    """One status line per reason naming the dimensions dropped (at most 8 names shown, then the count)."""
    lines = []
    for reason, why in DROP_REASONS.items():
        names = [name for name, r in dropped if r == reason]
        if names:
            shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            noun = "dimension" if len(names) == 1 else f"{len(names)} dimensions"
            lines.append(f"Dropped {noun} {shown}: {why} (counted in langflow_cms_invalid)")
    return "\n".join(lines)


def _dimension_items(dimensions: Any) -> tuple[tuple[str, str], ...] | None:
    pairs: list[tuple[str, str]] = []
    if isinstance(dimensions, dict):
        pairs = [(str(k), str(v)) for k, v in dimensions.items() if v not in (None, "")]
    elif isinstance(dimensions, list):
        if dimensions and all(isinstance(i, dict) and {"key", "value"} <= set(i) for i in dimensions):
            dimensions = [{item["key"]: item["value"]} for item in dimensions]  # lfx's key/value pairs
        for item in dimensions:
            if not isinstance(item, dict):
                return None
            pairs.extend((str(k), str(v)) for k, v in item.items() if v not in (None, ""))
    elif dimensions in (None, ""):
        return ()
    else:
        return None
    return tuple(pairs)


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


def off_reason() -> str:
    """Why nothing is monitored when ``monitor_mode()`` is "off", to follow "Monitoring ": the setting that
    switched it off."""
    try:
        recorder = get_recorder()
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
        storage = getattr(get_recorder(), "storage", None)
        if storage is not None:
            storage.reject(name, why, reason)
    except Exception:
        return


# --- Timer -----------------------------------------------------------------------------------------
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
    """A run that fails between a Timer start and its stop reports the span as ``error``."""
    for span, elapsed in CLOCK.abandon(state.run_id):
        dims = {"flow": state.flow, "span": span, "status": "error", **state.dimensions}
        MONITOR.record_for(state, SPAN_METRIC, elapsed, dims)


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


# --- the CMS Metric node while it is edited -----------------------------------------------------------
FIELD_TITLES = {"metric_name": "Metric Name", "value": "Value", "dimensions": "Dimensions"}
WARNING = "\u26a0"


def field_titles(values: Mapping[str, Any]) -> dict[str, str]:
    """The titles of the CMS Metric node's Metric Name, Value and Dimensions for the values being edited.

    A setting CMS would refuse is flagged in its field's title (``Metric Name ⚠ not a CMS name``, short enough
    for the node's width), which the canvas shows on the node at once, before any run and without opening
    anything; a fixed setting gets its plain title back (the field's help says the rule). The same checks
    run again on every run (the node's status, ``langflow_cms_invalid``).
    Never raises."""
    titles = dict(FIELD_TITLES)
    with contextlib.suppress(Exception):
        name = str(values.get("metric_name") or "").strip()
        if not name:
            return titles
        if not METRIC_NAME_RE.fullmatch(name):
            titles["metric_name"] += f" {WARNING} not a CMS name"
        value = values.get("value")
        if parse_value_spec("" if value is None else str(value))[0] == "invalid":
            titles["value"] += f" {WARNING} not a number"
        items = _dimension_items(values.get("dimensions"))
        dropped = _template_dimensions(items)[1] if items else ()
        if dropped:
            names = ", ".join(key for key, _ in dropped[:3]) + (", …" if len(dropped) > 3 else "")
            titles["dimensions"] += f" {WARNING} {len(dropped)} dropped: {names}"
    return titles


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
    and, when the canvas is watching the build, its Logs tab, one row per line. Never raises."""
    if getattr(component, "_event_manager", None) is not None:
        with contextlib.suppress(Exception):
            for line in text.splitlines():
                component.log(line, name="CMS")
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


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def timer_start_node(component: Any) -> str:
    return _tell(
        component, timer_start(_graph(component), _vertex_id(component), getattr(component, "span_name", ""))
    )


def timer_stop_node(component: Any) -> str:
    return _tell(
        component, timer_stop(_graph(component), _vertex_id(component), getattr(component, "span_name", ""))
    )
