"""Helpers for the tests that need the real Langflow server (tests/test_server.py, tests/test_browser.py).

The project venv (.venv) has lfx but not Langflow, on purpose: the unit tests prove the plugin works without
it. So the server runs from .venv-server as a subprocess, started through ``scripts/langflow.sh`` (which
also creates .venv-server on first use), and the CMS emulator runs in the test process, where the tests can
read what the plugin reported. This module uses only the standard library, ``lfx`` and ``langflow_cms``, so
it imports in both venvs.
"""

from __future__ import annotations

import atexit
import gzip
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clock_support import ShiftedClock

REPO = Path(__file__).resolve().parents[1]
SERVER_VENV = REPO / ".venv-server"
SERVER_PYTHON = SERVER_VENV / "bin" / "python"
LANGFLOW_SH = REPO / "scripts" / "langflow.sh"
ENSURE_BROWSER_SH = REPO / "scripts" / "ensure_browser.sh"

FLOW_METRIC = "langflow_flow_duration_ms"
NODE_METRIC = "langflow_node_duration_ms"
METRIC_TYPE = "ext:cms_monitor:CmsMetricComponent@official"  # installed: the extension's slot
FLOW_COMPONENTS = {"ChatInput", "CmsMetricComponent", "ChatOutput"}
"""The ``component`` dimensions of a ``LangflowServer.create_flow`` flow."""
TIMER_TYPE = "ext:cms_monitor:CmsTimerComponent@official"

READY_TIMEOUT_S = 480.0
"""Langflow 1.13 needs 30-50 s to start on 2 idle cores (migrations, component index, starter projects), over
four minutes when other test suites share them."""
FLUSH_TIMEOUT_S = 75.0
"""The reporter delivers each minute window at the next minute boundary: at most 60 s after a run."""


def run_checked(command: list[str], timeout: float) -> None:
    """Run a set-up command; on failure raise with its output, so CI shows why instead of skipping."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def ensure_server_venv() -> None:
    """Create or update .venv-server (full Langflow + this package): minutes on a fresh clone, else quick."""
    run_checked([str(LANGFLOW_SH), "--install"], timeout=1200)


def ensure_browser() -> None:
    """Debian's Chromium and the Playwright package in .venv-server (after the venv, which it extends)."""
    ensure_server_venv()
    run_checked([str(ENSURE_BROWSER_SH)], timeout=900)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(
    method: str, url: str, body: Any = None, timeout: float = 60.0, headers: dict[str, str] | None = None
) -> Any:
    """One JSON request; Langflow sends /api/v1/all gzip-compressed even unasked, so that is undone here."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
    return json.loads(raw) if raw.strip() else None


class LangflowServer:
    """``scripts/langflow.sh`` on a free port, reporting to ``cms_endpoint``, with a fresh config and DB."""

    def __init__(
        self,
        cms_endpoint: str,
        command: list[str] | None = None,
        extra_env: dict[str, str | None] | None = None,
    ) -> None:
        """``command`` replaces ``scripts/langflow.sh`` (e.g. another venv's ``langflow run``); ``extra_env``
        is added to the environment (``None`` values remove a variable)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix="langflow-cms-server-"))
        self.log_path = self.workdir / "langflow.log"
        self.clock = ShiftedClock(self.workdir / "test-clock")
        """The server's wall clock (``LANGFLOW_CMS_TEST_CLOCK``): tests step it, never wait for minutes."""
        env = {
            **os.environ,
            "LANGFLOW_PORT": str(self.port),
            "LANGFLOW_CONFIG_DIR": str(self.workdir / "config"),
            "LANGFLOW_CMS_DEV": "1",
            "LANGFLOW_CMS_ENDPOINT": cms_endpoint,
            "LANGFLOW_CMS_MAX_QPS": "200",
            "LANGFLOW_CMS_TEST_CLOCK": str(self.clock.path),
        }
        for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(proxy, None)
        for key, value in (extra_env or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        if "LANGFLOW_CMS_DEV" not in env:  # a server as a user runs it: the test clock is refused there
            env.pop("LANGFLOW_CMS_TEST_CLOCK", None)
        self.command, self.env = command or [str(LANGFLOW_SH)], env
        self._start()

    def _start(self) -> None:
        with self.log_path.open("ab") as log:
            # With LANGFLOW_CMS_ENDPOINT set the script execs langflow: SIGTERM reaches Langflow itself.
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    def restart(self, extra_env: dict[str, str] | None = None) -> None:
        """Stop and start again on the same port, config and database (its saved flows), with ``extra_env``
        added to the environment: what a deploy or a host reboot does."""
        self.stop()
        self.env = {**self.env, **(extra_env or {})}
        self._start()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Langflow exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"Langflow was not ready after {READY_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def end_minute(self) -> None:
        """Step the server's clock to half a second before its minute ends, instead of waiting up to 60 s:
        every worker's reporter seals the minute within a second or two and sends it."""
        self.clock.to_end_of_minute()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 60.0) -> int | None:
        """Graceful stop (SIGTERM, as a service manager would), then kill the process group if it hangs."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode

    headers: dict[str, str] = {}  # noqa: RUF012
    """Sent with every ``api`` call (``x-api-key`` for a server without LANGFLOW_SKIP_AUTH_AUTO_LOGIN)."""

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return http(method, f"{self.url}{path}", body, headers=self.headers)

    def registry(self) -> dict[str, dict]:
        """Component templates by type, as the sidebar gets them (our bundle included)."""
        all_types = self.api("GET", "/api/v1/all")
        return {
            key: template
            for category, components in all_types.items()
            if category != "component_display_names"
            for key, template in components.items()
        }

    def create_flow(self, name: str) -> str:
        """Save Chat Input -> CMS Metric -> Chat Output (as the UI would) and return the flow id."""
        from lfx.graph.flow_builder import add_component, add_connection, empty_flow, layout_flow

        registry = self.registry()
        flow = empty_flow(name, "langflow-cms server test")
        add_component(flow, "ChatInput", registry, component_id="ChatInput-cms1")
        add_component(flow, METRIC_TYPE, registry, component_id="CmsMetric-cms1")
        add_component(flow, "ChatOutput", registry, component_id="ChatOutput-cms1")
        add_connection(flow, "ChatInput-cms1", "message", "CmsMetric-cms1", "input_value")
        add_connection(flow, "CmsMetric-cms1", "output", "ChatOutput-cms1", "input_value")
        layout_flow(flow)
        created = self.api("POST", "/api/v1/flows/", {"name": name, "description": "", "data": flow["data"]})
        return created["id"]


def build_events(server: LangflowServer, flow_id: str, text: str) -> list[dict]:
    """Build a flow the way the Playground does and return its event stream (NDJSON, read to the end)."""
    request = urllib.request.Request(
        f"{server.url}/api/v1/build/{flow_id}/flow?event_delivery=direct",
        data=json.dumps({"inputs": {"input_value": text}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        lines = response.read().decode().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def flow_label(name: str) -> str:
    """The ``flow`` dimension the plugin reports for a flow name (CMS-safe: ``New Flow`` -> ``New_Flow``)."""
    from langflow_cms.langflow.flow_settings import clean_dimension

    return clean_dimension(name)


def minute_entries(emulator: Any, metric: str, flow: str) -> list[dict]:
    """The 60 s entries of one metric for one flow (each observation is also rolled up into 300 s ones)."""
    entries = emulator.entries(name=metric)
    return [e for e in entries if e["period"] == 60 and e["dimensions"].get("flow") == flow]


def sample_count(entries: list[dict]) -> int:
    return int(sum(e["values"]["SampleCount"] for e in entries))


def run_counts(emulator: Any, flow: str, components: set[str]) -> dict[str, int]:
    """Runs counted so far in the 60 s entries: the flow's, and each component's node series."""
    counts = {"flow": sample_count(minute_entries(emulator, FLOW_METRIC, flow))}
    for component in components:
        nodes = minute_entries(emulator, NODE_METRIC, flow)
        counts[component] = sample_count([e for e in nodes if e["dimensions"].get("component") == component])
    return counts


def wait_for(check: Callable[[], Any], timeout: float = FLUSH_TIMEOUT_S, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (the reporter flushes once a minute)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            break
        time.sleep(1)
    if not result:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
    return result


def wait_for_flow(emulator: Any, flow: str, node_components: set[str]) -> tuple[list[dict], list[dict]]:
    """Wait until the flow's duration series and one node series per expected component have arrived."""

    def arrived() -> tuple[list[dict], list[dict]] | None:
        flows = minute_entries(emulator, FLOW_METRIC, flow)
        nodes = minute_entries(emulator, NODE_METRIC, flow)
        components = {e["dimensions"].get("component") for e in nodes}
        return (flows, nodes) if flows and node_components <= components else None

    return wait_for(arrived, what=f"the duration series of flow {flow!r}")


SHARED_SEED = "1"


class _Shared:
    """One emulator and one server per test process: Langflow takes ~45 s to start, so the tests share it."""

    emulator: Any = None
    server: LangflowServer | None = None


def shared_emulator() -> Any:
    if _Shared.emulator is None:
        from langflow_cms.emulator import Emulator

        _Shared.emulator = Emulator(port=0).start()
        atexit.register(_Shared.emulator.stop)
    return _Shared.emulator


def shared_server() -> LangflowServer:
    """The running shared server, started (after bootstrapping .venv-server) on first use or after a stop."""
    if _Shared.server is None or not _Shared.server.alive():
        ensure_server_venv()
        # A fixed hash seed: a restart with another one (test_server) then shows what varies with it.
        _Shared.server = LangflowServer(shared_emulator().endpoint, extra_env={"PYTHONHASHSEED": SHARED_SEED})
        atexit.register(_Shared.server.stop)
    return _Shared.server
