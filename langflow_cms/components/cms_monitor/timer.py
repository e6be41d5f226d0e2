"""Timer (legacy): start/stop a named span; the stop reports its duration to CloudMonitor.

Superseded by Timer Start / Timer Stop, which pair by themselves. Kept (hidden from the sidebar as legacy) so
flows saved with it keep loading and running; a stop without a start is flagged and counted.

Thin on purpose: Langflow saves this source inside every flow, so all logic lives in the installed
`langflow_cms` package (`langflow_cms.nodes`).
"""

from lfx.custom.custom_component.component import Component
from lfx.io import DropdownInput, HandleInput, MessageTextInput
from lfx.schema.data import Data
from lfx.schema.dataframe import DataFrame
from lfx.schema.message import Message

from langflow_cms import nodes


class CmsTimerComponent(Component):
    display_name = "Timer"
    description = "Legacy: times the part between a start and a stop Timer with the same span name."
    documentation = "https://github.com/langflow-cms/langflow-cms/blob/main/docs/usage.md"
    icon = "timer"
    name = "CmsTimer"
    legacy = True
    replacement = ["cms_monitor.CmsTimerStart", "cms_monitor.CmsTimerStop"]  # noqa: RUF012

    inputs = [  # noqa: RUF012 — Langflow reads these class attributes
        HandleInput(
            name="input_value",
            display_name="Input",
            input_types=["Message", "Data", "JSON", "DataFrame", "Table"],
            info="Passed through unchanged.",
            required=True,
        ),
        MessageTextInput(
            name="span_name", display_name="Span", value="span", info="Pairs a start with its stop."
        ),
        DropdownInput(
            name="action",
            display_name="Action",
            options=["start", "stop"],
            value="start",
            info="start opens the span; stop reports its duration to CloudMonitor.",
        ),
    ]
    nodes.with_absent_flags(inputs)  # cheaper lookups for lfx, see the function

    outputs = [nodes.pass_through_output()]  # noqa: RUF012 — the same types on every start, Message first

    async def pass_through(self) -> Message | Data | DataFrame:
        self.status = nodes.timer_step(self.graph, self.span_name, self.action)
        return self.input_value
