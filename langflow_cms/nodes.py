"""The logic behind the two canvas nodes, CMS Metric and Timer.

Langflow saves a component's source inside every flow that uses it and rebuilds the class from that copy, so
the classes in ``components/cms_monitor/`` stay thin (inputs, outputs, status text) and call into this
installed module: a fix here reaches every saved flow without re-saving it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from langflow_cms import flow_settings
from langflow_cms.flow_settings import clean_dimension, parse_dimensions
from langflow_cms.limits import METRIC_NAME_RE
from langflow_cms.naming import as_number
from langflow_cms.tracing import MONITOR, SPAN_METRIC, _current_node, get_recorder

VALUE_SOURCES = ("Constant", "Input number", "Input field")
MAX_CUSTOM_DIMENSIONS = 4
"""flow + up to 3 flow dimensions + these + the reporter's instance and env stay within CMS's 10."""
OVERFLOW_VALUE = "other"
MAX_SPANS = 10_000
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)\}")


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
def reporter_status() -> str:
    """One line for a node's status: is the reporter delivering?"""
    try:
        recorder = get_recorder()
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
    return f"reporter {state}: sent {sent}, queued {queued}, failed {failed}, dropped {dropped}"


def use_credentials(access_key_id: Any, access_key_secret: Any, graph: Any = None) -> str | None:
    """Deliver this flow's metrics with the node's AccessKey, and only this flow's.

    The key gets a delivery path of its own (``Reporter.scope_for``); the run's metrics recorded so far
    waited for it and go there now. Other flows and the process's credentials are untouched. Returns a
    status note that never shows the key. ``graph`` defaults to the run of the node being built (flows
    saved before this argument existed call it without).
    """
    key_id = _secret_text(access_key_id)
    secret = _secret_text(access_key_secret)
    if not key_id and not secret:
        return None
    if not (key_id and secret):
        _bind(graph, None)
        return "Not monitored: the node's AccessKey needs both the id and the secret"
    try:
        from langflow_cms.credentials import Credential

        reporter = get_recorder()
        scope_for = getattr(reporter, "scope_for", None)
        scope = scope_for(Credential(key_id, secret, source="CMS Metric node")) if scope_for else None
    except Exception as exc:
        _bind(graph, None)
        return f"Not monitored: the node's AccessKey was not applied ({type(exc).__name__})"
    _bind(graph, scope)
    if scope is None:
        return "Not monitored: too many different AccessKeys in this process (see the log)"
    return "using the node's AccessKey for this flow only"


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
def record_metric(
    graph: Any,
    *,
    metric_name: str,
    value_source: str,
    constant: Any,
    value_field: str,
    dimensions: Any,
    input_value: Any,
    max_values: int = 20,
) -> str:
    """Record the node's business metric and return its status text (never raises)."""
    if flow_settings.monitor_mode() == "off":
        return "LANGFLOW_CMS_MONITOR=off: nothing recorded"
    label, flow_dims = MONITOR.flow_dimensions_for(graph)
    name = (metric_name or "").strip()
    if not name:
        return f"Monitoring flow '{label}' (no custom metric configured)"
    if not METRIC_NAME_RE.fullmatch(name):
        _count_invalid(name, "not a valid CMS metric name")
        return f"Not recorded: '{name[:64]}' is not a valid CMS metric name (letters, digits, _)"
    fields = input_fields(input_value)
    if value_source == "Input number":
        value = to_number(getattr(input_value, "text", input_value))
    elif value_source == "Input field":
        value = to_number(lookup(fields, (value_field or "").strip()))
    else:
        value = to_number(constant)
    if value is None:
        _count_invalid(name, f"no number from {value_source.lower()}")
        return f"Not recorded: no number for {name} from {value_source.lower()}"
    dims = {"flow": label, **flow_dims}
    for key, template in parse_dimensions(dimensions, MAX_CUSTOM_DIMENSIONS, clean_values=False).items():
        dims[key] = GUARD.admit(name, key, clean_dimension(render(template, fields)), max_values)
    MONITOR.record_for_graph(graph, name, value, dims)
    shown = ", ".join(f"{k}={v}" for k, v in dims.items())
    return f"Recorded {name} = {value:g} {{{shown}}}"


def _count_invalid(name: str, why: str) -> None:
    """A business metric the node could not record counts in ``langflow_cms_invalid`` (logged once)."""
    try:
        storage = getattr(get_recorder(), "storage", None)
        if storage is not None:
            storage.reject(name, why)
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
    run_id = getattr(graph, "_run_id", None)
    return str(run_id) if run_id else f"graph-{id(graph)}"


def timer_step(graph: Any, span: str, action: str) -> str:
    """Start or stop a span; a stop records ``langflow_span_duration_ms``. Returns the status text."""
    span = clean_dimension(span or "span")
    if flow_settings.monitor_mode() == "off":
        return "LANGFLOW_CMS_MONITOR=off: nothing recorded"
    if action == "start":
        CLOCK.start(_run_key(graph), span)
        return f"Started span '{span}'"
    elapsed = CLOCK.stop(_run_key(graph), span)
    if elapsed is None:
        return f"Stop without start: span '{span}' was not started in this run; nothing recorded"
    label, flow_dims = MONITOR.flow_dimensions_for(graph)
    MONITOR.record_for_graph(
        graph, SPAN_METRIC, elapsed, {"flow": label, "span": span, "status": "ok", **flow_dims}
    )
    return f"Span '{span}': {elapsed:.1f} ms"
