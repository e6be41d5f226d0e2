"""Timer (legacy): start/stop a named span; the stop reports its duration to CloudMonitor.

Superseded by Timer Start / Timer Stop, which pair by themselves. Kept (hidden from the sidebar as legacy) so
flows saved with it keep loading and running; a stop without a start is flagged and counted.

Declarations only: Langflow saves this source inside every flow, so the logic lives in the installed package
(``langflow_cms.langflow.timers``, the shared base in ``langflow_cms.langflow.node_base``).
"""

from lfx.io import DropdownInput, MessageTextInput

from langflow_cms.langflow import timers
from langflow_cms.langflow.node_base import MonitorNodeComponent, node_inputs, pass_through_input


class CmsTimerComponent(MonitorNodeComponent):
    display_name = "Timer"
    description = "Legacy: times the part between a start and a stop Timer with the same span name."
    icon = "timer"
    name = "CmsTimer"
    legacy = True
    replacement = ["cms_monitor.CmsTimerStart", "cms_monitor.CmsTimerStop"]  # noqa: RUF012
    run_node = timers.timer_step_node

    inputs = node_inputs(
        pass_through_input("Passed through unchanged."),
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
    )
