"""`langflow-cms export`: a flow JSON becomes a script that runs the same graph and reports the same series.

The round trips are real subprocesses against the emulator: `lfx run FLOW.json`, then the exported script with
plain `python` (and once with `lfx run flow.py`), comparing the printed output and the set of metric series.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from langflow_cms.emulator import Emulator
from langflow_cms.ops.export import ExportError, export_flow

REPO = Path(__file__).resolve().parents[1]
FLOWS = REPO / "examples" / "flows"
LFX = Path(sys.executable).parent / "lfx"
FLOW, NODE = "langflow_flow_duration_ms", "langflow_node_duration_ms"

ROUND_TRIPS = [
    ("poem", "the sea"),
    ("poem_failing", "the sea"),
    ("poem_branching", "a haiku about rain"),
    ("poem_branching", "the mountains"),
]


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=REPO)


def series(emu: Emulator) -> set[tuple[str, frozenset]]:
    """Every series of the flow the emulator holds: metric name and dimensions, without the per-process
    ``instance``, and without the reporter's own health (sent once a minute, so only by a run that spans a
    minute boundary)."""
    return {
        (e["name"], frozenset((k, v) for k, v in e["dimensions"].items() if k != "instance"))
        for e in emu.entries()
        if e["period"] in (60, None) and not e["name"].startswith("langflow_cms_")
    }


def json_run_output(done: subprocess.CompletedProcess) -> tuple[bool, str]:
    """(success, text) of `lfx run FLOW.json`: the Chat Output text, or the error message."""
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["success"], out["result"] if out["success"] else out["exception_message"]


@pytest.mark.slow
@pytest.mark.parametrize(("flow", "text"), ROUND_TRIPS)
def test_round_trip_same_output_and_series(emulator, env, tmp_path, flow, text):
    script = tmp_path / f"{flow}.py"
    exported = run(
        [sys.executable, "-m", "langflow_cms.cli", "export", str(FLOWS / f"{flow}.json"), "-o", str(script)],
        env,
    )
    assert exported.returncode == 0, exported.stderr[-2000:]

    success, expected = json_run_output(run([str(LFX), "run", str(FLOWS / f"{flow}.json"), text], env))
    from_json = series(emulator)
    assert any(name == FLOW for name, _ in from_json)
    emulator.reset()

    done = run([sys.executable, str(script), text], env)
    assert done.returncode == (0 if success else 1), done.stderr[-2000:]
    if success:
        assert done.stdout.rstrip("\n") == expected
    else:
        assert expected.strip() in done.stderr
    assert series(emulator) == from_json


@pytest.mark.slow
def test_lfx_run_of_the_exported_script_matches_the_json_run(emulator, env, tmp_path):
    script = tmp_path / "poem.py"
    script.write_text(export_flow(FLOWS / "poem.json"))
    expected = json_run_output(run([str(LFX), "run", str(FLOWS / "poem.json"), "the moon"], env))
    from_json = series(emulator)
    emulator.reset()
    assert json_run_output(run([str(LFX), "run", str(script), "the moon"], env)) == expected
    assert series(emulator) == from_json


# --- a held-out flow: a custom-code component with secret fields -------------------------------------------
SHOUT = textwrap.dedent(
    """
    from lfx.custom.custom_component.component import Component
    from lfx.io import MessageTextInput, Output, SecretStrInput
    from lfx.schema.message import Message


    class ShoutComponent(Component):
        display_name = "Shout"
        name = "Shout"
        inputs = [
            MessageTextInput(name="text", display_name="Text"),
            MessageTextInput(name="suffix", display_name="Suffix", value="!"),
            SecretStrInput(name="api_key", display_name="API Key"),
            SecretStrInput(name="token", display_name="Token"),
        ]
        outputs = [Output(display_name="Out", name="out", method="shout")]

        def shout(self) -> Message:
            if not self.api_key or not self.token:
                raise ValueError("credentials missing")
            return Message(text=self.text.upper() + self.suffix)
    """
)
BUILD = textwrap.dedent(
    """
    import json, sys
    from lfx.components.input_output import ChatInput, ChatOutput
    from lfx.graph import Graph
    from shout import ShoutComponent

    chat_input = ChatInput(_id="ChatInput-held1")
    shout = ShoutComponent(_id="Shout-held1", suffix="!!")
    shout.set(text=chat_input.message_response)
    chat_output = ChatOutput(_id="ChatOutput-held1")
    chat_output.set(input_value=shout.shout)
    print(json.dumps(Graph(chat_input, chat_output).dump(name="held_out")))
    """
)
PASTED_KEY = "sk-held-out-DO-NOT-LEAK-4242"


@pytest.fixture
def held_out(tmp_path, env) -> Path:
    """A flow JSON with a custom-code node: an API key pasted into it, a token from a global variable."""
    (tmp_path / "shout.py").write_text(SHOUT)
    (tmp_path / "build.py").write_text(BUILD)
    done = subprocess.run(
        [sys.executable, "build.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    flow = json.loads(done.stdout.strip().splitlines()[-1])
    node = next(n for n in flow["data"]["nodes"] if n["id"] == "Shout-held1")
    template = node["data"]["node"]["template"]
    template["api_key"].update(value=PASTED_KEY, password=True, load_from_db=False)
    template["token"].update(value="SHOUT_TOKEN", password=True, load_from_db=True)
    (tmp_path / "shout.py").unlink()  # the flow must carry the code itself
    path = tmp_path / "held_out.json"
    path.write_text(json.dumps(flow))
    return path


@pytest.mark.slow
def test_held_out_custom_flow_runs_with_plain_python(emulator, env, held_out, tmp_path):
    script_text = export_flow(held_out)
    assert PASTED_KEY not in script_text
    assert 'secret("SHOUT_HELD1_API_KEY")' in script_text and 'secret("SHOUT_TOKEN")' in script_text
    assert "class ShoutComponent(Component):" in script_text
    script = tmp_path / "exported" / "held_out.py"
    script.parent.mkdir()
    script.write_text(script_text)

    monitored = {**env, "LANGFLOW_CMS_MONITOR": "all"}
    missing = run([sys.executable, str(script), "hello"], monitored)
    assert missing.returncode != 0 and "SHOUT_HELD1_API_KEY" in missing.stderr

    secrets = {"SHOUT_HELD1_API_KEY": "k", "SHOUT_TOKEN": "t"}
    done = run([sys.executable, str(script), "hello"], {**monitored, **secrets})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "HELLO!!"
    flows = [e for e in emulator.entries(name=FLOW) if e["period"] == 60]
    assert {(e["dimensions"]["flow"], e["dimensions"]["status"]) for e in flows} == {("held_out", "ok")}
    nodes = {e["dimensions"]["node"] for e in emulator.entries(name=NODE) if e["period"] == 60}
    assert nodes == {"Chat_Input", "Shout", "Chat_Output"}  # the readable node dimension


# --- what the script looks like, and what cannot be exported --------------------------------------------
def test_poem_script_reads_like_the_flow():
    script = export_flow(FLOWS / "poem.json")
    compile(script, "poem.py", "exec")
    assert "from lfx.components.input_output.chat import ChatInput" in script
    assert "class CmsMetricComponent(MonitorNodeComponent):" in script  # the nodes share one base
    assert script.count("class CmsTimerStartComponent(MonitorNodeComponent):") == 1  # a Timer Start/Stop pair
    assert script.count("class CmsTimerStopComponent(MonitorNodeComponent):") == 1
    assert 'chat_input_poem1 = ChatInput(_id="ChatInput-poem1", input_value="the sea")' in script
    assert "prompt_poem1.set(topic=timer_start_poem1.pass_through)" in script
    assert 'flow_dimensions={"version": "v1"}' in script
    graph_part = script[script.index("# --- The flow") :]
    assert "max_values" not in graph_part and "latency_scale" not in graph_part  # defaults are left out
    # built from its end, without a start, as lfx builds the JSON: the same nodes run in the same order
    assert "graph = Graph(flow_name=FLOW_NAME)\ngraph.add_component(chat_output_poem1)\n" in script
    assert 'FLOW_NAME = "poem"' in script and "get_reporter().close()" in script


def _flow(nodes: list[dict], edges: list[dict] | None = None) -> dict:
    return {"name": "bad", "data": {"nodes": nodes, "edges": edges or []}}


def _node(node_id: str, node_type: str, code: str | None = "class X(Component): pass") -> dict:
    template = {"code": {"value": code}} if code is not None else {}
    outputs = [{"name": "out", "method": "run"}]
    return {"id": node_id, "data": {"type": node_type, "node": {"template": template, "outputs": outputs}}}


@pytest.mark.parametrize(
    ("flow", "message"),
    [
        (
            _flow([_node("Mystery-1", "Mystery", code=None)]),
            "node Mystery-1: the component's code is missing",
        ),
        (_flow([_node("Blank-1", "", code="x = 1")]), "node Blank-1: unknown component type"),
        (_flow([_node("NoClass-1", "NoClass", code="x = 1")]), "node NoClass-1: No Component subclass"),
        (
            _flow([_node("A-1", "A"), _node("B-1", "B")], [{"source": "A-1", "target": "B-1", "data": {}}]),
            "edge A-1 -> B-1: malformed",
        ),
        (
            _flow(
                [_node("A-1", "A")],
                [
                    {
                        "source": "A-1",
                        "target": "Gone-1",
                        "data": {"sourceHandle": {"name": "out"}, "targetHandle": {"fieldName": "x"}},
                    }
                ],
            ),
            "node Gone-1 is not in the flow",
        ),
        (
            _flow(
                [_node("A-1", "A"), _node("B-1", "B")],
                [
                    {
                        "source": "A-1",
                        "target": "B-1",
                        "data": {"sourceHandle": {"name": "nope"}, "targetHandle": {"fieldName": "x"}},
                    }
                ],
            ),
            "node A-1: has no output 'nope'",
        ),
    ],
)
def test_unsupported_flows_name_the_node(flow, message):
    with pytest.raises(ExportError, match=re.escape(message)):
        export_flow(flow)


def test_cli_reports_errors_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_flow([_node("Mystery-1", "Mystery", code=None)])))
    done = subprocess.run(
        [sys.executable, "-m", "langflow_cms.cli", "export", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "node Mystery-1" in done.stderr and "Traceback" not in done.stderr


def _docstring(script: str) -> str:
    return script.split('"""', 2)[1]


def test_the_docstring_says_what_is_true_for_a_flow_without_a_cms_metric_node(tmp_path):
    """Issue #27 point 8 (failed before: every script claimed its CMS Metric and Timer nodes configure
    monitoring, and showed `python Basic Prompting.py`)."""
    flow = json.loads((FLOWS / "poem.json").read_text())
    metric = {n["id"] for n in flow["data"]["nodes"] if "CmsMetric" in n["data"]["type"]}
    flow["data"]["nodes"] = [n for n in flow["data"]["nodes"] if n["id"] not in metric]
    flow["data"]["edges"] = [e for e in flow["data"]["edges"] if not {e["source"], e["target"]} & metric]
    path = tmp_path / "Basic Prompting.json"
    path.write_text(json.dumps(flow))

    doc = _docstring(export_flow(path))
    assert "configured by the flow's own CMS Metric" not in doc
    assert "no CMS Metric node" in doc and "LANGFLOW_CMS_MONITOR=all" in doc
    usage = [line.strip() for line in doc.splitlines() if line.strip().startswith(("python ", "lfx run "))]
    assert usage and all("'Basic Prompting.py'" in line for line in usage), usage

    named = _docstring(export_flow(path, script_name="basic.py"))
    assert 'python basic.py "your input"' in named

    monitored = _docstring(export_flow(FLOWS / "poem.json"))
    assert (
        "configured by the flow's own CMS Metric node" in monitored and "no CMS Metric node" not in monitored
    )


@pytest.mark.slow  # Python subprocesses importing lfx: 10-30 s on a loaded machine
def test_the_cli_usage_lines_name_the_written_script(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "langflow_cms.cli",
            "export",
            str(FLOWS / "poem.json"),
            "-o",
            str(tmp_path / "my flow.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "python 'my flow.py' \"your input\"" in (tmp_path / "my flow.py").read_text()
