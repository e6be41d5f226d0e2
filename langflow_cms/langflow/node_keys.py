"""A CMS Metric node's own AccessKey: this flow's metrics, and only this flow's, go to that key's account
(``Reporter.scope_for``), resolved once per (reporter, key) and bound to the run."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from langflow_cms.langflow import flow_settings, monitor
from langflow_cms.langflow.monitor import MONITOR
from langflow_cms.langflow.runs import _current_node

KEY_FIELDS = ("access_key_id", "access_key_secret")

_UNRESOLVED: Any = object()
"""``use_credentials`` without a scope looked up beforehand."""


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
        state = MONITOR.run_of_graph(graph)
        if state is None or not state.pending:
            return None  # no AccessKey of its own: the process's credentials
        # the flow has the fields set, but they reached the node empty (a variable without a value)
        return _refuse(graph, "the node's AccessKey fields are empty (a variable without a value?)")
    if not (key_id and secret):
        return _refuse(graph, "the node's AccessKey needs both the id and the secret")
    try:
        if isinstance(resolved, Exception):
            raise resolved
        scope = _scope_for(key_id, secret) if resolved is _UNRESOLVED else resolved
    except Exception as exc:
        return _refuse(graph, f"the node's AccessKey was not applied ({type(exc).__name__})")
    if scope is None:
        if getattr(monitor.get_recorder(), "storage", None) is None:  # reporting is off: the status says why
            _bind(graph, None)
            return "Not monitored: the reporter is not running"
        return _refuse(graph, "too many different AccessKeys in this process")
    _bind(graph, scope)
    return "using the node's AccessKey for this flow only"


def _refuse(graph: Any, why: str) -> str:
    """The node's own AccessKey cannot be used: the run's observations, those that waited for the key and
    later ones, go nowhere (never with another key) and each counts as dropped (``REFUSED``); the cause is
    logged once per flow, and the returned status says it. ``why`` never holds the key."""
    _bind(graph, REFUSED)  # never raises
    with suppress(Exception):
        state = MONITOR.run_of_graph(graph)
        flow = state.flow if state is not None else "?"
        storage = monitor.get_recorder().storage  # type: ignore[union-attr]
        storage.warn_once(f"node-key:{flow}:{why}", f"flow {flow} is not monitored: {why}")
    return f"Not monitored: {why}"


class _Refused:
    """The scope of a run whose CMS Metric node's own AccessKey cannot be used (``_refuse``): what the run
    records counts in ``langflow_cms_dropped`` (``unbound_credentials``) and goes nowhere. It has no
    ``series``, ``events``, ``fleet`` or ``streaks``: nothing else of the run is sent either."""

    def record(self, name: str, value: float, dimensions: Any) -> None:
        try:
            storage = getattr(monitor.get_recorder(), "storage", None)
            if storage is not None:
                storage.count("dropped:unbound_credentials")
        except Exception:
            return


REFUSED = _Refused()


_scopes: dict[tuple[int, str, str], Any] = {}
MAX_CACHED_SCOPES = 64


def _cached_scope(reporter: Any, key_id: str, secret: str) -> tuple[Any, Any] | None:
    """(reporter, scope) when this reporter already resolved this key, else None."""
    cached = _scopes.get((id(reporter), key_id, secret))
    return cached if cached is not None and cached[0] is reporter else None


def _scope_cached(key_id: str, secret: str) -> bool:
    return _cached_scope(monitor.get_recorder(), key_id, secret) is not None


def _scope_for(key_id: str, secret: str) -> Any:
    """The reporter's scope for this AccessKey, resolved once per (reporter, key): later runs with the same
    key only bind it to their run."""
    reporter = monitor.get_recorder()
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
    """Bind ``scope`` to the run of ``graph`` (or of the node being built). Never raises."""
    with suppress(Exception):
        _bind_run(graph, scope)


def _bind_run(graph: Any, scope: Any) -> None:
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


async def apply_key(access_key_id: Any, access_key_secret: Any, graph: Any) -> str | None:
    """``use_credentials`` for the node's async run, on the event loop: the one step that can touch the disk
    or build an SDK client, the delivery path of a key this process has not seen yet (``Reporter.scope_for``),
    runs in a thread first; its error, if any, is the status (it is not looked up again on the loop)."""
    resolved: Any = _UNRESOLVED
    try:
        key_id, secret = _secret_text(access_key_id), _secret_text(access_key_secret)
        if key_id and secret and not _scope_cached(key_id, secret):
            resolved = await asyncio.to_thread(_scope_for, key_id, secret)
    except Exception as exc:
        resolved = exc
    return use_credentials(access_key_id, access_key_secret, graph, resolved)


async def variable_or_typed_key(
    lookup: Callable[[str, str, Any], Awaitable[Any]], name: str, field: str, session: Any
) -> Any:
    """Langflow's lookup of a ``load_from_db`` field's global variable (``lookup``: the component's own
    ``get_variable``); for the node's AccessKey fields, when no global variable is called ``name``, the
    typed value ``name`` itself: a secret field is saved with ``load_from_db`` on, so a key typed into it
    reaches Langflow as a variable's name. Langflow 1.13 would otherwise fail the node with "<the key>
    variable not found." (the Playground's build) or log "Environment variable <the key> is not set." and
    pass None (``/api/v1/run``), and the run's metrics would be dropped. Any other field: Langflow's."""
    if field not in KEY_FIELDS:
        return await lookup(name, field, session)
    try:
        return await lookup(name, field, session)
    except Exception:  # no such variable (or no user to own one): the key was typed in
        if name in os.environ:
            raise  # an environment variable's name: Langflow's own fallback (``/api/v1/run``) reads it
        return name


_database: bool | None = None


def _variables_in_database() -> bool:
    """Whether Langflow looks ``load_from_db`` fields up in its database (the server; then it asks the node's
    ``get_variable``), not in environment variables (``lfx run``/``lfx serve``: a no-op database)."""
    global _database
    if _database is None:
        try:
            from lfx.services.database.service import NoopDatabaseService
            from lfx.services.deps import get_db_service, get_settings_service

            settings = getattr(get_settings_service(), "settings", None)
            noop = bool(getattr(settings, "use_noop_database", False))
            _database = not (noop or isinstance(get_db_service(), NoopDatabaseService))
        except Exception:
            return True  # unknown: Langflow's own lookup stays
    return _database


def keep_typed_keys(graph: Any) -> None:
    """Before a run's nodes are built without a database (``lfx run``, ``lfx serve``): an AccessKey field of a
    CMS Metric node whose value names no environment variable and no request variable holds the key as
    typed, so lfx passes it as it is (lfx would log "Environment variable <the key> is not set." and pass
    None). With a database, ``variable_or_typed_key`` decides. Never raises."""
    try:
        vertices = [
            v for v in getattr(graph, "vertices", None) or () if flow_settings.is_cms_metric_vertex(v)
        ]
        if not vertices or _variables_in_database():
            return
        context = getattr(graph, "context", None)
        named = (context.get("request_variables") if isinstance(context, dict) else None) or {}
        for vertex in vertices:
            fields = getattr(vertex, "load_from_db_fields", None)
            for field in KEY_FIELDS if isinstance(fields, list) else ():
                value = (getattr(vertex, "params", None) or {}).get(field)
                if (
                    field in fields
                    and isinstance(value, str)
                    and value
                    and value not in named
                    and value not in os.environ  # set, even empty: a variable
                ):
                    fields.remove(field)
                    template = vertex.data["node"]["template"]  # read again if lfx rebuilds the params
                    template[field]["load_from_db"] = False
    except Exception:
        return
