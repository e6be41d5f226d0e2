"""Generate ``bench/flows/chain10.json``: Chat Input → 8 × Bench Step → Chat Output (10 nodes).

Built with lfx's Python graph API and saved with ``Graph.dump()``, i.e. the JSON Langflow saves, with each
component's source in its template, so the benchmark loads and runs it exactly as ``lfx run`` would.
Run: ``python -m bench.flowgen``.
"""

from __future__ import annotations

import json
from pathlib import Path

FLOW_PATH = Path(__file__).resolve().parent / "flows" / "chain10.json"
FLOW_NAME = "bench_chain10"
STEPS = 8


def build_flow() -> dict:
    """The flow as a Langflow JSON document."""
    from lfx.components.input_output import ChatInput, ChatOutput
    from lfx.graph import Graph

    from bench.flows.step import BenchStep

    chat_input = ChatInput(_id="ChatInput-bench0")
    previous = chat_input.message_response
    for i in range(1, STEPS + 1):
        step = BenchStep(_id=f"BenchStep-bench{i}")
        step.set(input_value=previous)
        previous = step.step
    chat_output = ChatOutput(_id=f"ChatOutput-bench{STEPS + 1}")
    chat_output.set(input_value=previous)
    graph = Graph(chat_input, chat_output, flow_name=FLOW_NAME)
    return graph.dump(name=FLOW_NAME, description="10-node benchmark chain, no network, no LLM.")


def write_flow(path: Path = FLOW_PATH) -> Path:
    path.write_text(json.dumps(build_flow(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_flow())
