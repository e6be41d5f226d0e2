"""Timer Stop: reports the time since the Timer Start before it to CloudMonitor.

Thin on purpose: Langflow saves this source inside every flow, so all logic lives in the installed
`langflow_cms` package (`langflow_cms.nodes`).
"""

from lfx.custom.custom_component.component import Component
from lfx.io import HandleInput, StrInput
from lfx.schema.data import Data
from lfx.schema.dataframe import DataFrame
from lfx.schema.message import Message

from langflow_cms import nodes


class CmsTimerStopComponent(Component):
    display_name = "Timer Stop"
    description = "Reports the time since the Timer Start before it to CloudMonitor."
    documentation = "https://github.com/langflow-cms/langflow-cms/blob/main/docs/usage.md"
    icon = "timer-off"
    name = "CmsTimerStop"

    inputs = [  # noqa: RUF012 — Langflow reads these class attributes
        HandleInput(
            name="input_value",
            display_name="Input",
            input_types=["Message", "Data", "JSON", "DataFrame", "Table"],
            info="Passed through unchanged; timing stops when it arrives.",
            required=True,
        ),
        StrInput(
            name="span_name",
            display_name="Span Name",
            value="",
            advanced=True,
            info="Empty: stops the nearest Timer Start upstream. Set: stops the Timer Start with this Span "
            "Name. A stop with no start records nothing and is flagged on the node.",
        ),
    ]
    nodes.with_absent_flags(inputs)  # cheaper lookups for lfx, see the function

    outputs = [nodes.pass_through_output()]  # noqa: RUF012 — the same types on every start, Message first

    async def pass_through(self) -> Message | Data | DataFrame:
        self.status = nodes.timer_stop_node(self)
        return self.input_value
