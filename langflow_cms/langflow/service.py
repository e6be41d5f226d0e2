"""The tracing entry point: Langflow's ``tracing_service``, plugged in through the ``lfx.services`` entry
point (``pyproject.toml``: ``tracing_service = langflow_cms.langflow.service:CmsTracingService``).

Langflow then calls it around every flow run and every component build, on every run path. With full Langflow
installed the class extends Langflow's own ``TracingService`` and calls ``super()`` everywhere, so LangSmith,
Langfuse and the native trace view keep working; under bare ``lfx`` (``lfx run``, ``lfx serve``,
``run_flow_from_json``) it implements lfx's ``BaseTracingService``. The bookkeeping is ``monitor.MONITOR``'s.

Nothing here may break a flow: every recording path swallows its own errors.
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import threading
import time
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

from langflow_cms.langflow import flow_settings, monitor, node_keys
from langflow_cms.langflow.monitor import MONITOR
from langflow_cms.langflow.runs import _current_node, _current_run
from langflow_cms.langflow.server_versions import version_dimension
from langflow_cms.langflow.tokens import TokenUsageHandler
from langflow_cms.lifecycle import chain_sigterm_flush, get_reporter
from langflow_cms.reporter import CLOSE_SLACK_S

if TYPE_CHECKING:
    from uuid import UUID

    from langchain_core.callbacks.base import BaseCallbackHandler

try:  # Full Langflow: extend its service so the built-in tracers keep working.
    from langflow.services.tracing.service import TracingService as _BaseService

    FULL_LANGFLOW = True
except ImportError:  # Bare lfx.
    from lfx.services.tracing.base import BaseTracingService as _BaseService

    FULL_LANGFLOW = False


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


# lfx and Langflow import this module when they discover services (before ``lfx serve`` or the server
# starts listening). Creating the reporter now reports a bad setting at start, replays a spool without
# waiting for traffic, and installs the SIGTERM flush before uvicorn takes over the signal.
with suppress(Exception):
    get_reporter()


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
        monitor.get_recorder()
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
            node_keys.keep_typed_keys(graph)  # before any node is built: a key typed in is the key
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
            if context is not None and context[3] is not None:
                context[3].events = getattr(component, "_event_manager", None)
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
            recorder = monitor.get_recorder()
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
