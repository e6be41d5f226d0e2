"""Regenerate ``examples/flows/*.json`` with lfx's own flow builder.

``lfx.graph.flow_builder`` produces what the Langflow UI saves (``genericNode`` nodes with positions and the
full component template, source included), so the examples open on the canvas as well as run under
``lfx run``. Run: ``python -m langflow_cms.examples.build_flows [output_dir]``; a second run writes the same
bytes (``tests/test_docs.py`` checks it).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXAMPLE_COMPONENTS = Path(__file__).resolve().parent / "components"
OUT_DIR = Path(__file__).resolve().parent / "flows"

# The CMS nodes come from the installed package (a Langflow extension: the @official slot); the example
# LLM, which is not part of the product, from its path (an inline bundle: @extra).
METRIC = "ext:cms_monitor:CmsMetricComponent@official"
TIMER_START = "ext:cms_monitor:CmsTimerStartComponent@official"
TIMER_STOP = "ext:cms_monitor:CmsTimerStopComponent@official"
POET = "ext:cms_examples:OfflinePoetComponent@extra"


def load_registry() -> dict[str, dict]:
    """Component templates by type: Langflow's, our installed bundle's, the example LLM's (by path)."""
    os.environ["LANGFLOW_COMPONENTS_PATH"] = str(EXAMPLE_COMPONENTS)
    from lfx.interface.components import get_and_cache_all_types_dict
    from lfx.services.deps import get_settings_service

    all_types = asyncio.run(get_and_cache_all_types_dict(get_settings_service()))
    return {key: value for category in all_types.values() for key, value in category.items()}


class FlowDraft:
    """A flow under construction with stable, readable node ids (``Prompt-poem1``)."""

    def __init__(self, registry: dict[str, dict], name: str, description: str) -> None:
        from lfx.graph.flow_builder import empty_flow

        self.registry = registry
        self.flow = empty_flow(name, description)

    def add(self, component_type: str, node_id: str, **params: Any) -> str:
        from lfx.graph.flow_builder import add_component, configure_component

        add_component(self.flow, component_type, self.registry, component_id=node_id)
        for output in self._node(node_id)["data"]["node"].get("outputs", []):
            # lfx lists an output's types from a set in no fixed order (and selects the first): order them,
            # Message first, before any edge copies them, so a second run writes the same bytes.
            types = output.get("types") or []
            if len(types) > 1:
                output["types"] = sorted(types, key=lambda t: (t != "Message", t))
                output["selected"] = output["types"][0]
        if params:
            configure_component(self.flow, node_id, params)
            template = self._node(node_id)["data"]["node"]["template"]
            for name in params:  # a field the author filled in is one the canvas shows
                template[name]["show"] = True
        return node_id

    def prompt(self, node_id: str, template: str) -> str:
        """A Prompt Template whose ``{variables}`` become input fields, as the UI's template editor does."""
        from lfx.base.prompts.api_utils import process_prompt_template

        self.add("Prompt Template", node_id, template=template)
        node = self._node(node_id)["data"]["node"]
        node.setdefault("custom_fields", {})
        process_prompt_template(template, "template", node["custom_fields"], node["template"])
        return node_id

    def connect(self, source: str, output: str, target: str, field: str) -> None:
        from lfx.graph.flow_builder import add_connection

        add_connection(self.flow, source, output, target, field)

    def _node(self, node_id: str) -> dict:
        return next(n for n in self.flow["data"]["nodes"] if n["id"] == node_id)

    def done(self) -> dict:
        from lfx.graph.flow_builder import layout_flow

        layout_flow(self.flow)
        return self.flow


def poem_flow(registry: dict[str, dict]) -> dict:
    """Chat Input → CMS Metric → Timer Start → Prompt → Offline Poet → Timer Stop → Chat Output."""
    draft = FlowDraft(registry, "poem", "Write a poem about a topic, monitored in CloudMonitor.")
    draft.add("ChatInput", "ChatInput-poem1", input_value="the sea")
    draft.add(
        METRIC,
        "CmsMetric-poem1",
        metric_name="poem_requests",
        value="1",
        dimensions={"topic": "{text}"},
        max_values=20,  # shown with a Metric Name, as on the canvas
        flow_dimensions={"version": "v1"},
    )
    draft.add(TIMER_START, "TimerStart-poem1", span_name="write")
    draft.prompt("Prompt-poem1", "write a poem about {topic}")
    draft.add(POET, "OfflinePoet-poem1")
    draft.add(TIMER_STOP, "TimerStop-poem1", span_name="write")
    draft.add("ChatOutput", "ChatOutput-poem1")
    draft.connect("ChatInput-poem1", "message", "CmsMetric-poem1", "input_value")
    draft.connect("CmsMetric-poem1", "output", "TimerStart-poem1", "input_value")
    draft.connect("TimerStart-poem1", "output", "Prompt-poem1", "topic")
    draft.connect("Prompt-poem1", "prompt", "OfflinePoet-poem1", "prompt")
    draft.connect("OfflinePoet-poem1", "text", "TimerStop-poem1", "input_value")
    draft.connect("TimerStop-poem1", "output", "ChatOutput-poem1", "input_value")
    return draft.done()


def failing_flow(registry: dict[str, dict]) -> dict:
    """The poem flow whose LLM always fails (a simulated provider outage): every run reports error."""
    draft = FlowDraft(registry, "poem_failing", "A poem flow whose LLM provider is down: every run fails.")
    draft.add("ChatInput", "ChatInput-fail1", input_value="the sea")
    draft.add(METRIC, "CmsMetric-fail1", flow_dimensions={"version": "v1"})
    draft.prompt("Prompt-fail1", "write a poem about {topic}")
    draft.add(POET, "OfflinePoet-fail1", fail_when="*")
    draft.add("ChatOutput", "ChatOutput-fail1")
    draft.connect("ChatInput-fail1", "message", "CmsMetric-fail1", "input_value")
    draft.connect("CmsMetric-fail1", "output", "Prompt-fail1", "topic")
    draft.connect("Prompt-fail1", "prompt", "OfflinePoet-fail1", "prompt")
    draft.connect("OfflinePoet-fail1", "text", "ChatOutput-fail1", "input_value")
    return draft.done()


def branching_flow(registry: dict[str, dict]) -> dict:
    """If the input mentions "haiku", the large model writes a haiku; otherwise the small one a poem."""
    draft = FlowDraft(registry, "poem_branching", "Routes haiku requests to a second prompt and model.")
    draft.add("ChatInput", "ChatInput-branch1", input_value="a haiku about rain")
    draft.add(METRIC, "CmsMetric-branch1", flow_dimensions={"version": "v1"})
    draft.add("ConditionalRouter", "IfElse-branch1", operator="contains", match_text="haiku")
    draft.prompt("Prompt-haiku1", "write a haiku about {topic}")
    draft.prompt("Prompt-poem1", "write a poem about {topic}")
    draft.add(POET, "OfflinePoet-haiku1", model_name="offline-poet-large")
    draft.add(POET, "OfflinePoet-poem1", model_name="offline-poet-mini")
    draft.add("ChatOutput", "ChatOutput-haiku1")
    draft.add("ChatOutput", "ChatOutput-poem1")
    draft.connect("ChatInput-branch1", "message", "CmsMetric-branch1", "input_value")
    draft.connect("CmsMetric-branch1", "output", "IfElse-branch1", "input_text")
    draft.connect("IfElse-branch1", "true_result", "Prompt-haiku1", "topic")
    draft.connect("IfElse-branch1", "false_result", "Prompt-poem1", "topic")
    draft.connect("Prompt-haiku1", "prompt", "OfflinePoet-haiku1", "prompt")
    draft.connect("Prompt-poem1", "prompt", "OfflinePoet-poem1", "prompt")
    draft.connect("OfflinePoet-haiku1", "text", "ChatOutput-haiku1", "input_value")
    draft.connect("OfflinePoet-poem1", "text", "ChatOutput-poem1", "input_value")
    return draft.done()


FLOWS: dict[str, Callable[[dict[str, dict]], dict]] = {
    "poem": poem_flow,
    "poem_failing": failing_flow,
    "poem_branching": branching_flow,
}


def main(argv: list[str] | None = None) -> None:
    out_dir = Path((argv or sys.argv[1:] or [str(OUT_DIR)])[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    registry = load_registry()
    for name, build in FLOWS.items():
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(build(registry), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
