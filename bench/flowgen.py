"""Generate the benchmark flows in ``bench/flows/`` (run: ``python -m bench.flowgen``).

* ``chain10.json``: Chat Input → 8 × Bench Step → Chat Output (10 nodes), for the flow-overhead row.
* ``chain10_cms.json``: the same chain with a **CMS Metric** node (``components/cms_monitor/cms_metric.py``,
  default settings: monitors the flow, no business metric) between the last step and Chat Output.
* ``chain10_shape.json``: a node with the CMS Metric node's inputs and a pass-through body in its place.
* ``chain10_pass.json``: a trivial pass-through node (one input, one output) in its place.

Built with lfx's Python graph API and saved with ``Graph.dump()``, i.e. the JSON Langflow saves, with each
component's source in its template, so the benchmark loads and runs them exactly as ``lfx run`` would.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

FLOWS = Path(__file__).resolve().parent / "flows"
FLOW_PATH = FLOWS / "chain10.json"
NODE_FLOW_PATHS = {
    "cms": FLOWS / "chain10_cms.json",
    "shape": FLOWS / "chain10_shape.json",
    "pass": FLOWS / "chain10_pass.json",
}
FLOW_NAME = "bench_chain10"
STEPS = 8
CMS_METRIC_FILE = Path(__file__).resolve().parents[1] / "components" / "cms_monitor" / "cms_metric.py"


def cms_metric_class() -> type:
    """The CMS Metric component class, imported from its bundle file as the extension loader does."""
    module_name = "_bench_cms_monitor_cms_metric"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, CMS_METRIC_FILE)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[module_name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.CmsMetricComponent


def build_flow(extra: str | None = None) -> dict:
    """The flow as a Langflow JSON document; ``extra`` (a key of NODE_FLOW_PATHS) adds that node before
    Chat Output."""
    from lfx.components.input_output import ChatInput, ChatOutput
    from lfx.graph import Graph

    from bench.flows.passthrough import BenchPassThrough, BenchSameShape
    from bench.flows.step import BenchStep

    chat_input = ChatInput(_id="ChatInput-bench0")
    previous = chat_input.message_response
    for i in range(1, STEPS + 1):
        step = BenchStep(_id=f"BenchStep-bench{i}")
        step.set(input_value=previous)
        previous = step.step
    last = STEPS + 1
    if extra is not None:
        cls = {"cms": cms_metric_class(), "shape": BenchSameShape, "pass": BenchPassThrough}[extra]
        node = cls(_id=f"{cls.__name__.removesuffix('Component')}-bench{last}")
        node.set(input_value=previous)
        previous = node.pass_through
        last += 1
    chat_output = ChatOutput(_id=f"ChatOutput-bench{last}")
    chat_output.set(input_value=previous)
    name = FLOW_NAME if extra is None else f"{FLOW_NAME}_{extra}"
    graph = Graph(chat_input, chat_output, flow_name=name)
    what = "10-node benchmark chain" if extra is None else f"10-node benchmark chain + a {extra} node"
    return graph.dump(name=name, description=f"{what}, no network, no LLM.")


def write_flow(path: Path = FLOW_PATH, extra: str | None = None) -> Path:
    path.write_text(json.dumps(build_flow(extra), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def cms_flow_is_current(path: Path = NODE_FLOW_PATHS["cms"]) -> bool:
    """True when the CMS Metric node saved in ``chain10_cms.json`` has the source of
    ``components/cms_monitor/cms_metric.py`` (Langflow saves a component's source inside the flow, so a
    changed node file needs the flow regenerated to be measured)."""
    if not path.exists():
        return False
    for node in json.loads(path.read_text(encoding="utf-8"))["data"]["nodes"]:
        if node["data"]["id"].startswith("CmsMetric"):
            return node["data"]["node"]["template"]["code"]["value"] == CMS_METRIC_FILE.read_text(
                encoding="utf-8"
            )
    return False


def write_all() -> list[Path]:
    return [write_flow()] + [write_flow(path, extra) for extra, path in NODE_FLOW_PATHS.items()]


if __name__ == "__main__":
    for written in write_all():
        print(written)
