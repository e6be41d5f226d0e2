"""Timer Start: opens a span; the Timer Stop after it reports the span's duration to CloudMonitor.

Thin on purpose: Langflow saves this source inside every flow, so all logic lives in the installed
`langflow_cms` package (`langflow_cms.nodes`).
"""

from lfx.custom.custom_component.component import Component
from lfx.io import HandleInput, StrInput
from lfx.schema.data import Data
from lfx.schema.dataframe import DataFrame
from lfx.schema.message import Message

from langflow_cms import nodes


class CmsTimerStartComponent(Component):
    display_name = "Timer Start"
    description = "Starts timing; the Timer Stop after it reports the time in between to CloudMonitor."
    documentation = "https://github.com/langflow-cms/langflow-cms/blob/main/docs/usage.md"
    icon = "timer"
    name = "CmsTimerStart"

    inputs = [  # noqa: RUF012 — Langflow reads these class attributes
        HandleInput(
            name="input_value",
            display_name="Input",
            input_types=["Message", "Data", "JSON", "DataFrame", "Table"],
            info="Passed through unchanged; timing starts when it arrives.",
            required=True,
        ),
        StrInput(
            name="span_name",
            display_name="Span Name",
            value="",
            advanced=True,
            info="The 'span' dimension in CMS. Empty: this node's name (unique in the flow), which the next "
            "Timer Stop downstream picks up by itself.",
        ),
    ]
    nodes.with_absent_flags(inputs)  # cheaper lookups for lfx, see the function

    outputs = [nodes.pass_through_output()]  # noqa: RUF012 — the same types on every start, Message first

    async def pass_through(self) -> Message | Data | DataFrame:
        self.status = nodes.timer_start_node(self)
        return self.input_value
