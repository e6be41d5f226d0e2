"""`langflow-cms export` on the flow shapes Langflow's own flows use: loops, separate parts, shared imports.

Each shape is a small offline flow built with lfx (as a user's canvas would save it), exported, and run both
ways against the emulator: `lfx run FLOW.json` and the script with plain `python` must print the same output
and report the same metric series.
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

LFX = Path(sys.executable).parent / "lfx"

WORDS = textwrap.dedent(
    """
    from lfx.custom.custom_component.component import Component
    from lfx.io import MessageTextInput, Output
    from lfx.schema.data import Data
    from lfx.schema.dataframe import DataFrame


    class WordsComponent(Component):
        display_name = "Words"
        name = "Words"
        inputs = [MessageTextInput(name="text", display_name="Text")]
        outputs = [Output(display_name="Words", name="words", method="split")]

        def split(self) -> DataFrame:
            return DataFrame([Data(data={"word": w}) for w in str(self.text).split()])
    """
)
LOOP = textwrap.dedent(
    """
    from lfx.components.flow_controls.loop import LoopComponent
    from lfx.components.input_output import ChatInput, ChatOutput
    from lfx.components.processing.parser import ParserComponent
    from words import WordsComponent

    chat_input = ChatInput(_id="ChatInput-loop1")
    words = WordsComponent(_id="Words-loop1")
    words.set(text=chat_input.message_response)
    loop = LoopComponent(_id="Loop-loop1")
    loop.set(data=words.split)
    body = ParserComponent(_id="Parser-loop1", mode="Parser", pattern="<{word}>")
    body.set(input_data=loop.item_output)
    loop.set(item=body.parse_combined_text)  # a Message fed back, as the canvas allows (loop_types)
    loop.get_edges()[-1]["data"]["targetHandle"]["output_types"] = ["Data", "Message"]
    join = ParserComponent(_id="Join-loop1", mode="Parser", pattern="{text}", sep=" ")
    join.set(input_data=loop.done_output)
    chat_output = ChatOutput(_id="ChatOutput-loop1")
    chat_output.set(input_value=join.parse_combined_text)
    graph = Graph(chat_input, chat_output)
    """
)
PARTS = textwrap.dedent(
    """
    from lfx.components.input_output import ChatInput, ChatOutput, TextInputComponent, TextOutputComponent
    from words import WordsComponent

    chat_input = ChatInput(_id="ChatInput-rag1")
    chat_output = ChatOutput(_id="ChatOutput-rag1")
    chat_output.set(input_value=chat_input.message_response)
    # a second, unconnected part, like a RAG flow's ingestion branch
    text_input = TextInputComponent(_id="TextInput-ingest1", input_value="to be ingested")
    words = WordsComponent(_id="Words-ingest1")
    words.set(text=text_input.text_response)
    graph = Graph(chat_input, chat_output)
    graph.add_component(words)
    """
)


def build(tmp_path: Path, env: dict[str, str], name: str, code: str) -> Path:
    """The flow JSON a graph built in code dumps to; the custom component's file is removed afterwards."""
    (tmp_path / "words.py").write_text(WORDS)
    program = "import json\nfrom lfx.graph import Graph\n" + code
    program += f"\nprint(json.dumps(graph.dump(name={name!r})))\n"
    (tmp_path / "build.py").write_text(program)
    done = subprocess.run(
        [sys.executable, "build.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (tmp_path / "words.py").unlink()  # the flow carries the code itself
    path = tmp_path / f"{name}.json"
    path.write_text(done.stdout.strip().splitlines()[-1])
    return path


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def series(emu: Emulator) -> set[tuple[str, frozenset]]:
    """The emulator's 60 s series without ``instance``."""
    return {
        (e["name"], frozenset((k, v) for k, v in e["dimensions"].items() if k != "instance"))
        for e in emu.entries()
        if e["period"] == 60
    }


def round_trip(emulator: Emulator, env: dict[str, str], flow: Path, text: str) -> tuple[str, Path]:
    """Run the JSON and its exported script; assert the same output and series; return (output, script)."""
    env = {**env, "LANGFLOW_CMS_MONITOR": "all"}
    script = flow.with_suffix(".py")
    script.write_text(export_flow(flow))
    from_json = run([str(LFX), "run", str(flow), text], env)
    result = json.loads(from_json.stdout.strip().splitlines()[-1])
    assert result["success"], result
    expected = series(emulator)
    emulator.reset()
    done = run([sys.executable, str(script), text], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.rstrip("\n") == result["result"]
    assert series(emulator) == expected
    return result["result"], script


# --- loops ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_loop_flow_runs_its_body_per_item_like_lfx(emulator, env, tmp_path):
    flow = build(tmp_path, env, "loop", LOOP)
    output, script = round_trip(emulator, env, flow, "red green blue")
    assert output == "<red> <green> <blue>"
    # lfx runs each iteration as a subgraph of the same run: the body's node is the flow's own, once per
    # item, and the flow is recorded once (not as a flow of its own named ``loop_subgraph``)
    entries = [e for e in emulator.entries() if e["period"] == 60]
    assert {e["dimensions"]["flow"] for e in entries} == {"loop"}
    flows = [e for e in entries if e["name"] == "langflow_flow_duration_ms"]
    assert [e["dimensions"]["status"] for e in flows] == ["ok"]
    body = [
        e
        for e in entries
        if e["name"] == "langflow_node_duration_ms" and e["dimensions"]["node"] == "Parser_Parser-loop1"
    ]
    assert sum(e["values"]["SampleCount"] for e in body) == 3, entries
    text = script.read_text()
    assert "loop_loop1.set(item=parser_loop1.parse_combined_text)" in text
    # the Loop is defined before its body; the body's last node closes the loop
    assert text.index("loop_loop1 = LoopComponent(") < text.index("parser_loop1 = ParserComponent(")


@pytest.mark.slow  # Python subprocesses importing lfx: 10-30 s on a loaded machine
def test_an_edge_into_an_output_that_is_no_loop_is_refused(tmp_path, env):
    flow = json.loads(build(tmp_path, env, "loop", LOOP).read_text())
    loop = next(n for n in flow["data"]["nodes"] if n["id"] == "Loop-loop1")
    for output in loop["data"]["node"]["outputs"]:
        output["allows_loop"] = False
    with pytest.raises(
        ExportError, match=r"ends at output 'item' of node Loop-loop1, which is not a loop output"
    ):
        export_flow(flow)


# --- separate parts (a RAG flow's ingestion branch) ----------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_flow_with_separate_parts_runs_whole_like_lfx_and_one_part_on_request(emulator, env, tmp_path):
    flow = build(tmp_path, env, "parts", PARTS)
    output, script = round_trip(emulator, env, flow, "hello")
    assert output == "hello"
    text = script.read_text()
    assert "graph = Graph(flow_name=FLOW_NAME)" in text
    # `Graph.dump` keeps no edge from text_input to words (they were never connected in the graph's edges),
    # so the saved flow has three parts: the chat, and two unconnected ingestion nodes
    assert '"ChatInput-rag1": [chat_output_rag1],' in text and '"Words-ingest1": [words_ingest1],' in text
    assert '"TextInput-ingest1": [text_input_ingest1],' in text
    assert "--part TextInput-ingest1" in text  # the docstring says how to run the ingestion alone

    monitored = {**env, "LANGFLOW_CMS_MONITOR": "all"}
    emulator.reset()
    ingest = run([sys.executable, str(script), "--part", "TextInput-ingest1"], monitored)
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    assert ingest.stdout.strip() == "No response generated"  # that part has no Chat Output
    emulator.reset()
    chat = run([sys.executable, str(script), "--part", "ChatInput-rag1", "hi"], monitored)
    assert chat.returncode == 0 and chat.stdout.strip() == "hi", chat.stderr[-2000:]
    wrong = run([sys.executable, str(script), "--part", "Nope-1"], monitored)
    assert (
        wrong.returncode == 1
        and "--part takes one of ChatInput-rag1, Words-ingest1, TextInput-ingest1" in (wrong.stderr)
    )


@pytest.mark.slow  # Python subprocesses importing lfx: 10-30 s on a loaded machine
def test_connected_flow_is_one_graph_without_parts(tmp_path, env):
    script = export_flow(build(tmp_path, env, "loop", LOOP))
    assert "graph = Graph(flow_name=FLOW_NAME)\ngraph.add_component(chat_output_loop1)\n" in script
    assert "PARTS" not in script and "--part" not in script


# --- imports of the same object under two paths ---------------------------------------------------------
def _custom(node_id: str, imports: str, cls: str) -> dict:
    code = f"{imports}\nfrom lfx.custom import Component\n\n\nclass {cls}(Component):\n    name = {cls!r}\n"
    template = {"code": {"value": code}}
    outputs = [{"name": "out", "method": "run"}]
    return {"id": node_id, "data": {"type": cls, "node": {"template": template, "outputs": outputs}}}


def _two(first: str, second: str) -> dict:
    return {"name": "two", "data": {"nodes": [_custom("A-1", first, "A"), _custom("B-1", second, "B")]}}


def test_one_object_imported_two_ways_is_imported_once():
    second = (
        "from lfx.inputs.inputs import BoolInput\nfrom lfx.custom.custom_component.component import Component"
    )
    script = export_flow(_two("from lfx.io import BoolInput", second), flow_name="two")
    compile(script, "two.py", "exec")
    assert "from lfx.io import BoolInput" in script
    assert "lfx.inputs.inputs import" not in script
    # Component from lfx.custom and from lfx.custom.custom_component.component: one import
    assert (
        len(re.findall(r"^from lfx\.custom(\.custom_component\.component)? import .*Component", script, re.M))
        == 1
    )


@pytest.mark.parametrize(
    ("second", "why"),
    [
        ("from json import loads as BoolInput", "different objects"),
        ("from no_such_module_xyz import BoolInput", "cannot tell whether they are the same object here"),
    ],
)
def test_two_objects_under_one_name_are_refused(second, why):
    with pytest.raises(ExportError, match=re.escape(why)) as refused:
        export_flow(_two("from lfx.io import BoolInput", second))
    assert "rename one of them" in str(refused.value)


# --- the command line ----------------------------------------------------------------------------------
@pytest.mark.slow  # Python subprocesses importing lfx: 10-30 s on a loaded machine
def test_cli_creates_a_missing_output_folder(tmp_path):
    flow = tmp_path / "two.json"
    flow.write_text(json.dumps(_two("from lfx.io import BoolInput", "from lfx.io import IntInput")))
    target = tmp_path / "missing" / "dir" / "flow.py"
    done = subprocess.run(
        [sys.executable, "-m", "langflow_cms.cli", "export", str(flow), "-o", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    compile(target.read_text(), str(target), "exec")


@pytest.mark.slow  # Python subprocesses importing lfx: 10-30 s on a loaded machine
def test_cli_reports_an_unwritable_output_in_one_line(tmp_path):
    flow = tmp_path / "two.json"
    flow.write_text(json.dumps(_two("from lfx.io import BoolInput", "from lfx.io import IntInput")))
    (tmp_path / "a_file").write_text("")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "langflow_cms.cli",
            "export",
            str(flow),
            "-o",
            str(tmp_path / "a_file" / "flow.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("langflow-cms export: cannot write ") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
