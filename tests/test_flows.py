"""Real lfx flows, every run path that needs no Langflow server, read back from the real emulator.

Each run happens in a subprocess, as users run flows: the plugin is found through its ``lfx.services``
entry point, the reporter is configured from the environment and flushes at interpreter exit, and the
emulator answers what actually arrived.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from langflow_cms import contract
from langflow_cms.emulator import Emulator

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
FLOWS = REPO / "examples" / "flows"
LFX = Path(sys.executable).parent / "lfx"
FLOW, NODE, SPAN, TOKENS = (
    "langflow_flow_duration_ms",
    "langflow_node_duration_ms",
    "langflow_span_duration_ms",
    "langflow_llm_tokens",
)

THREE_NODE_SCRIPT = textwrap.dedent(
    '''
    """Chat Input -> Slow (30 ms, raises on "boom") -> Chat Output."""
    import time

    from lfx.components.input_output import ChatInput, ChatOutput
    from lfx.custom.custom_component.component import Component
    from lfx.graph import Graph
    from lfx.io import MessageTextInput, Output
    from lfx.schema.message import Message


    class SlowComponent(Component):
        display_name = "Slow"
        name = "Slow"
        inputs = [MessageTextInput(name="text", display_name="Text")]
        outputs = [Output(display_name="Out", name="out", method="run")]

        def run(self) -> Message:
            time.sleep(0.03)
            if self.text == "boom":
                raise ValueError("boom")
            return Message(text=self.text.upper())


    chat_input = ChatInput(_id="ChatInput-held1")
    slow = SlowComponent(_id="Slow-held1")
    slow.set(text=chat_input.message_response)
    chat_output = ChatOutput(_id="ChatOutput-held1")
    chat_output.set(input_value=slow.run)
    graph = Graph(chat_input, chat_output)
    '''
)


def lfx_run(env: dict[str, str], flow: Path, text: str, **extra: str) -> dict:
    done = subprocess.run(
        [str(LFX), "run", str(flow), text],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def samples(emu: Emulator, name: str, **dims: str) -> list[dict]:
    """The 60 s aggregates of a metric whose dimensions include ``dims``."""
    return [
        e
        for e in emu.entries(name=name)
        if e["period"] == 60 and all(e["dimensions"].get(k) == v for k, v in dims.items())
    ]


def count(emu: Emulator, name: str, **dims: str) -> int:
    return int(sum(e["values"]["SampleCount"] for e in samples(emu, name, **dims)))


def minimum(emu: Emulator, name: str, **dims: str) -> float:
    return min(e["values"]["Minimum"] for e in samples(emu, name, **dims))


POEM_NODES = {  # the readable `node` dimension of examples/flows/poem.json's nodes (docs/metrics.md)
    "ChatInput": "Chat_Input",
    "CmsMetric": "CMS_Metric",
    "TimerStart": "Timer_Start",
    "Prompt": "Prompt_Template",
    "OfflinePoet": "Offline_Poet",
    "TimerStop": "Timer_Stop",
    "ChatOutput": "Chat_Output",
}


def test_lfx_run_json_poem_success(emulator, env):
    out = lfx_run(env, FLOWS / "poem.json", "the sea")
    assert out["success"] is True and out["result"].startswith("Of the sea I sing")
    assert count(emulator, FLOW, flow="poem", status="ok", version="v1") == 1
    for node in ("ChatInput", "CmsMetric", "TimerStart", "Prompt", "OfflinePoet", "TimerStop", "ChatOutput"):
        assert count(emulator, NODE, flow="poem", node=POEM_NODES[node], status="ok", version="v1") == 1, node
    assert count(emulator, NODE, node="Prompt_Template", component="PromptTemplate") == 1
    assert count(emulator, SPAN, flow="poem", span="write", status="ok") == 1
    assert minimum(emulator, SPAN, span="write") >= minimum(emulator, NODE, node="Offline_Poet")
    assert minimum(emulator, FLOW, flow="poem") >= minimum(emulator, SPAN, span="write")
    for direction in ("input", "output"):
        assert count(emulator, TOKENS, flow="poem", model="offline-poet-mini", direction=direction) == 1
    assert count(emulator, "poem_requests", flow="poem", topic="the_sea", version="v1") == 1
    entry = samples(emulator, FLOW, flow="poem")[0]
    assert {"instance", "env"} <= set(entry["dimensions"])


def test_a_renamed_copy_of_a_flow_reports_under_the_flows_own_name(emulator, env, tmp_path):
    """#25: `lfx run poem_slow.json` of a flow named "poem" is flow=poem (its JSON's name comes before the
    file's stem, docs/metrics.md), so `compare --flow poem` and the flow=poem alarms find its runs."""
    copy = tmp_path / "poem_slow.json"
    copy.write_text((FLOWS / "poem.json").read_text(encoding="utf-8"), encoding="utf-8")
    out = lfx_run(env, copy, "the sea")
    assert out["success"] is True
    assert count(emulator, FLOW, flow="poem", status="ok") == 1
    assert samples(emulator, FLOW, flow="poem_slow") == []
    fleet = emulator.entries(name=contract.FLEET_FLOW_METRIC)
    assert fleet and {p["dimensions"]["flow"] for p in fleet} == {"poem"}


def test_lfx_run_json_failure_is_reported_as_error(emulator, env):
    out = lfx_run(env, FLOWS / "poem_failing.json", "the sea")
    assert out["success"] is False
    assert count(emulator, FLOW, flow="poem_failing", status="error") == 1
    assert count(emulator, FLOW, flow="poem_failing", status="ok") == 0
    assert count(emulator, NODE, node="Offline_Poet", status="error") == 1
    assert count(emulator, NODE, node="Prompt_Template", status="ok") == 1
    assert count(emulator, NODE, node="Chat_Output") == 0


def test_lfx_run_branching_flow_reports_only_the_branch_taken(emulator, env):
    lfx_run(env, FLOWS / "poem_branching.json", "a haiku about rain")
    lfx_run(env, FLOWS / "poem_branching.json", "the mountains")
    assert count(emulator, FLOW, flow="poem_branching", status="ok") == 2
    # two "Offline Poet" nodes: each keeps its name plus the tail of its id
    assert count(emulator, NODE, node="Offline_Poet_aiku1", status="ok") == 1
    assert count(emulator, NODE, node="Offline_Poet_poem1", status="ok") == 1
    assert count(emulator, TOKENS, model="offline-poet-large", direction="output") == 1


def test_unannotated_flows_are_not_measured_by_default(emulator, env, tmp_path):
    script = tmp_path / "three.py"
    script.write_text(THREE_NODE_SCRIPT)
    lfx_run(env, script, "hello")  # LANGFLOW_CMS_MONITOR=annotated, no CMS Metric node
    assert emulator.entries(name=FLOW) == [] and emulator.entries(name=NODE) == []


@pytest.mark.parametrize("kind", ["py", "json"])
def test_held_out_three_node_flow(emulator, env, tmp_path, kind):
    """Chat Input -> 30 ms node raising on "boom" -> Chat Output, `lfx run`, LANGFLOW_CMS_MONITOR=all."""
    script = tmp_path / "three.py"
    script.write_text(THREE_NODE_SCRIPT)
    flow = script
    if kind == "json":  # the same graph saved as flow JSON (component source embedded)
        flow = tmp_path / "three.json"
        dump = (
            f"import json, runpy; g = runpy.run_path({str(script)!r})['graph']; print(json.dumps(g.dump()))"
        )
        saved = subprocess.run(
            [sys.executable, "-c", dump], capture_output=True, text=True, timeout=120, env=env
        )
        flow.write_text(saved.stdout.strip().splitlines()[-1])
    assert lfx_run(env, flow, "hello", LANGFLOW_CMS_MONITOR="all")["success"] is True
    assert lfx_run(env, flow, "boom", LANGFLOW_CMS_MONITOR="all")["success"] is False

    for status in ("ok", "error"):
        assert count(emulator, FLOW, flow="three", status=status) == 1, status
        assert count(emulator, NODE, flow="three", node="Slow", status=status) == 1, status
        slow = minimum(emulator, NODE, node="Slow", status=status)
        assert slow >= 30
        assert minimum(emulator, FLOW, flow="three", status=status) >= slow
    assert count(emulator, NODE, node="Chat_Output", status="ok") == 1
    assert count(emulator, NODE, node="Chat_Output", status="error") == 0


RUN_FROM_JSON = textwrap.dedent(
    """
    import asyncio, json, sys
    from lfx.load import arun_flow_from_json, run_flow_from_json

    path, mode = sys.argv[1], sys.argv[2]
    if mode == "one":
        for text in ("the sea", "the moon"):
            run_flow_from_json(path, text)
        try:
            run_flow_from_json(path, "boom", tweaks={"OfflinePoet-poem1": {"fail_when": "boom"}})
        except Exception as exc:
            print("failed as expected:", type(exc).__name__)
    else:
        topics = [f"boom {i}" if i % 3 == 0 else f"topic {i}" for i in range(24)]
        tweaks = {"OfflinePoet-poem1": {"fail_when": "boom", "latency_scale": 0.5}}

        async def one(text):
            try:
                await arun_flow_from_json(path, text, tweaks=tweaks)
                return "ok"
            except Exception:
                return "error"

        async def main():
            return await asyncio.gather(*(one(t) for t in topics))

        print(json.dumps(asyncio.run(main())))
    """
)


def test_run_flow_from_json_success_and_failure(emulator, env):
    done = subprocess.run(
        [sys.executable, "-c", RUN_FROM_JSON, str(FLOWS / "poem.json"), "one"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "failed as expected" in done.stdout, done.stderr[-2000:]
    assert count(emulator, FLOW, flow="poem", status="ok") == 2
    assert count(emulator, FLOW, flow="poem", status="error") == 1
    assert count(emulator, NODE, node="Offline_Poet", status="error") == 1
    assert count(emulator, SPAN, span="write", status="ok") == 2
    assert count(emulator, SPAN, span="write", status="error") == 1


def test_24_concurrent_runs_are_attributed_exactly(emulator, env):
    """24 interleaved runs in one process (one tracing-service singleton), 8 of them failing."""
    done = subprocess.run(
        [sys.executable, "-c", RUN_FROM_JSON, str(FLOWS / "poem.json"), "concurrent"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    statuses = json.loads(done.stdout.strip().splitlines()[-1])
    assert statuses.count("ok") == 16 and statuses.count("error") == 8
    assert count(emulator, FLOW, flow="poem", status="ok") == 16
    assert count(emulator, FLOW, flow="poem", status="error") == 8
    for node in ("ChatInput", "CmsMetric", "TimerStart", "Prompt"):
        assert count(emulator, NODE, node=POEM_NODES[node], status="ok") == 24, node
    assert count(emulator, NODE, node="Offline_Poet", status="ok") == 16
    assert count(emulator, NODE, node="Offline_Poet", status="error") == 8
    for node in ("TimerStop", "ChatOutput"):
        assert count(emulator, NODE, node=POEM_NODES[node], status="ok") == 16, node
        assert count(emulator, NODE, node=POEM_NODES[node], status="error") == 0, node
    assert count(emulator, SPAN, span="write", status="ok") == 16
    assert count(emulator, SPAN, span="write", status="error") == 8
    assert count(emulator, TOKENS, model="offline-poet-mini", direction="output") == 16
    assert count(emulator, "poem_requests") == 24


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(url: str, body: dict | None = None, key: str = "test-key") -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, headers={"x-api-key": key, "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_lfx_serve_concurrent_requests(emulator, env, tmp_path):
    for name in ("poem.json", "poem_failing.json"):
        (tmp_path / name).write_text((FLOWS / name).read_text())
    port = _free_port()
    server = subprocess.Popen(
        [str(LFX), "serve", str(tmp_path), "--host", "127.0.0.1", "--port", str(port)],
        env={**env, "LANGFLOW_API_KEY": "test-key"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, flows = _call(f"{base}/flows")
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "lfx serve did not start"
            assert server.poll() is None, server.stderr.read()[-3000:]
            time.sleep(0.5)
        ids = {Path(meta["relative_path"]).stem: meta["id"] for meta in flows}
        jobs = [("poem", f"topic {i}") for i in range(20)] + [("poem_failing", f"x {i}") for i in range(4)]
        with ThreadPoolExecutor(max_workers=24) as pool:
            codes = list(
                pool.map(
                    lambda job: _call(f"{base}/flows/{ids[job[0]]}/run", {"input_value": job[1]})[0], jobs
                )
            )
        assert codes.count(200) == 20 and codes.count(500) == 4
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    # lfx serve gives the graph only the id; the flow's JSON name comes first, as in every run path (#25)
    poem, failing = "poem", "poem_failing"
    assert samples(emulator, FLOW, flow=ids["poem"]) == []
    assert count(emulator, FLOW, flow=poem, status="ok") == 20
    assert count(emulator, FLOW, flow=failing, status="error") == 4
    assert count(emulator, NODE, flow=poem, node="Offline_Poet", status="ok") == 20
    assert count(emulator, NODE, flow=failing, node="Offline_Poet", status="error") == 4
    assert count(emulator, SPAN, flow=poem, span="write", status="ok") == 20
