"""Stand-ins for the CMS Metric node in the node-cost benchmark (``bench/node.py``).

* ``BenchPassThrough`` — the trivial pass-through node the issue compares against: one input, one output,
  returns its input.
* ``BenchSameShape`` — the CMS Metric node's inputs and output (same names, types and defaults) with the
  pass-through body only. Comparing it with ``BenchPassThrough`` isolates what lfx itself spends on the
  node's ten inputs; comparing the CMS Metric flow with it isolates our code.
"""

from lfx.custom.custom_component.component import Component
from lfx.io import (
    DictInput,
    DropdownInput,
    FloatInput,
    HandleInput,
    IntInput,
    MessageTextInput,
    Output,
    SecretStrInput,
)
from lfx.schema.message import Message

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

    inputs = [  # noqa: RUF012
        HandleInput(name="input_value", display_name="Input", input_types=INPUT_TYPES, required=False),
        MessageTextInput(name="metric_name", display_name="Metric Name", value=""),
        DropdownInput(
            name="value_source",
            display_name="Value From",
            options=["Constant", "Input number", "Input field"],
            value="Constant",
        ),
        FloatInput(name="value", display_name="Value", value=1.0),
        MessageTextInput(name="value_field", display_name="Value Field", advanced=True, value=""),
        DictInput(name="dimensions", display_name="Dimensions", is_list=True),
        DictInput(name="flow_dimensions", display_name="Flow Dimensions", is_list=True),
        IntInput(name="max_values", display_name="Max Values per Dimension", value=20, advanced=True),
        SecretStrInput(name="access_key_id", display_name="AccessKey ID", advanced=True, required=False),
        SecretStrInput(
            name="access_key_secret", display_name="AccessKey Secret", advanced=True, required=False
        ),
    ]
    outputs = [Output(display_name="Output", name="output", method="pass_through")]  # noqa: RUF012

    def pass_through(self) -> Message:
        return self.input_value if self.input_value is not None else Message(text="")
