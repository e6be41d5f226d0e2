"""The bench flow's middle nodes: append one character to the message. As light as a component can be,
so the flow's time is lfx's own scheduling and the monitoring overhead is not hidden behind real work."""

from lfx.custom.custom_component.component import Component
from lfx.io import MessageInput, Output
from lfx.schema.message import Message


class BenchStep(Component):
    display_name = "Bench Step"
    description = "Appends '.' to the message."
    name = "BenchStep"

    inputs = [MessageInput(name="input_value", display_name="Input")]  # noqa: RUF012
    outputs = [Output(display_name="Output", name="out", method="step")]  # noqa: RUF012

    def step(self) -> Message:
        return Message(text=f"{self.input_value.text}.")
