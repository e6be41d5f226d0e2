"""Flows saved with the first CMS Metric and Timer nodes keep loading and reporting.

Langflow saves each component's source inside the flow, so a flow saved before the compact CMS Metric node
and the Timer Start/Stop pair still runs its own copy of the old classes, which call the installed
``langflow_cms.nodes`` with the old arguments. ``tests/data/poem_v0.json`` is ``examples/flows/poem.json`` as
it was saved then (Timer start/stop as one node with an Action, CMS Metric with Value From/Value/Value Field).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
OLD_FLOW = REPO / "tests" / "data" / "poem_v0.json"
MAIN_FLOW = REPO / "tests" / "data" / "poem_main.json"
"""``examples/flows/poem.json`` as saved before issue 26 (its nodes' code reads the output types from the
method, the Max Values label and descriptions of then): the same field names and module paths as today."""
LFX = Path(sys.executable).parent / "lfx"


def entries(emulator, name: str, **dims: str) -> list[dict]:
    return [
        e
        for e in emulator.entries(name=name)
        if e["period"] == 60 and all(e["dimensions"].get(k) == v for k, v in dims.items())
    ]


def count(emulator, name: str, **dims: str) -> int:
    return int(sum(e["values"]["SampleCount"] for e in entries(emulator, name, **dims)))


def test_the_old_flow_still_holds_the_old_nodes():
    flow = json.loads(OLD_FLOW.read_text())
    templates = {n["id"]: n["data"]["node"]["template"] for n in flow["data"]["nodes"]}
    assert "value_source" in templates["CmsMetric-poem1"]
    assert templates["TimerStop-poem1"]["action"]["value"] == "stop"


def lfx_run(flow: Path, env: dict) -> tuple[dict, str]:
    """``lfx run FLOW "the sea"``: its JSON result and its stderr."""
    done = subprocess.run(
        [str(LFX), "run", str(flow), "the sea"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        check=False,
    )
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr[-3000:]


def assert_the_poem_ran_and_reported(emulator, out: dict, stderr: str) -> None:
    """The poem flow answered, and CMS got its run, its span, its business metric and its 7 nodes."""
    assert out["success"] is True and out["result"].startswith("Of the sea I sing"), stderr
    assert count(emulator, "langflow_flow_duration_ms", flow="poem", status="ok") == 1
    assert count(emulator, "langflow_span_duration_ms", flow="poem", span="write", status="ok") == 1
    assert count(emulator, "poem_requests", flow="poem", topic="the_sea") == 1
    assert count(emulator, "langflow_node_duration_ms", flow="poem", status="ok") == 7


def test_a_flow_saved_with_the_old_nodes_loads_and_reports(emulator, env):
    """Both saved files are named "poem" inside: that name, not the file's stem, is the ``flow`` dimension
    (docs/metrics.md, issue 25)."""
    out, stderr = lfx_run(OLD_FLOW, env)
    assert out["success"] is True, stderr
    assert count(emulator, "langflow_flow_duration_ms", flow="poem", status="ok") == 1
    assert count(emulator, "langflow_span_duration_ms", flow="poem", span="write", status="ok") == 1
    assert count(emulator, "poem_requests", flow="poem", topic="the_sea", version="v1") == 1
    assert count(emulator, "langflow_node_duration_ms", flow="poem", status="ok") == 7


def test_a_flow_saved_before_the_fixed_output_types_keeps_its_edges_and_reports(emulator, env):
    """Issue 26: flows saved with the nodes of before (output types read from the method's union; labels and
    descriptions of then) keep every edge and report the same series with today's installed package."""
    flow = json.loads(MAIN_FLOW.read_text())
    code = {n["id"]: n["data"]["node"]["template"]["code"]["value"] for n in flow["data"]["nodes"]}
    metric_code = code["CmsMetric-poem1"]
    assert "Max Values per Dimension" in metric_code and "PASS_THROUGH_TYPES" not in metric_code
    assert len(flow["data"]["edges"]) == 6
    assert_the_poem_ran_and_reported(emulator, *lfx_run(MAIN_FLOW, env))


SAVED_BEFORE_MOVE = REPO / "tests" / "data" / "poem_before_langflow_room.json"
"""``examples/flows/poem.json`` as committed before the Langflow adapter moved into ``langflow_cms/langflow/``
(issue 28): its nodes' saved code imports ``from langflow_cms import nodes``."""


@pytest.mark.parametrize("components_path", [False, True], ids=["installed", "components-path"])
def test_a_flow_saved_before_the_langflow_room_loads_and_reports(emulator, env, components_path):
    """The saved copy of the nodes' code keeps its module paths after the move, run with the installed bundle
    alone and with ``LANGFLOW_COMPONENTS_PATH`` pointing at the bundle too."""
    saved = json.loads(SAVED_BEFORE_MOVE.read_text())
    codes = [n["data"]["node"]["template"]["code"]["value"] for n in saved["data"]["nodes"]]
    assert sum("from langflow_cms import nodes" in code for code in codes) == 3  # Metric, Timer Start, Stop
    env = {k: v for k, v in env.items() if k != "LANGFLOW_COMPONENTS_PATH"}
    if components_path:
        env["LANGFLOW_COMPONENTS_PATH"] = str(REPO / "components")
    assert_the_poem_ran_and_reported(emulator, *lfx_run(SAVED_BEFORE_MOVE, env))
