"""Stand-ins for the CMS Metric node in the node-cost benchmark (``bench/node.py``).

* ``BenchPassThrough`` — the trivial pass-through node the issue compares against: one input, one output,
  returns its input.
* ``BenchSameShape`` — the CMS Metric node's inputs (the very declarations of
  ``components/cms_monitor/cms_metric.py``, so it cannot drift from the node) and output, with the trivial
  node's body. Comparing it with ``BenchPassThrough`` isolates what lfx itself spends on the node's inputs;
  comparing the CMS Metric flow with it gives the rest: our code (the node's method and monitoring the run)
  less the worker-thread hand-off below, which the CMS Metric node's async method skips.

Both bodies are sync, the common case, which lfx runs in a worker thread (``asyncio.to_thread``).
"""

from lfx.custom.custom_component.component import Component
from lfx.io import HandleInput, Output
from lfx.schema.message import Message

from langflow_cms.components.cms_monitor.cms_metric import CmsMetricComponent

INPUT_TYPES = ["Message", "Data", "JSON", "DataFrame", "Table"]


class BenchPassThrough(Component):
    display_name = "Bench Pass-Through"
    description = "Returns its input unchanged."
    name = "BenchPassThrough"

    inputs = [HandleInput(name="input_value", display_name="Input", input_types=INPUT_TYPES, required=False)]  # noqa: RUF012
    outputs = [Output(display_name="Output", name="output", method="pass_through")]  # noqa: RUF012

    def pass_through(self) -> Message:
        return self.input_value if self.input_value is not None else Message(text="")


class BenchSameShape(Component):
    display_name = "Bench Same Shape"
    description = "The CMS Metric node's inputs and output; returns its input unchanged."
    name = "BenchSameShape"

    inputs = CmsMetricComponent.inputs
    outputs = [Output(display_name="Output", name="output", method="pass_through")]  # noqa: RUF012

    def pass_through(self) -> Message:
        return self.input_value if self.input_value is not None else Message(text="")
