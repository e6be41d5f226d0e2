"""Timer Stop: reports the time since the Timer Start before it to CloudMonitor.

Declarations only: Langflow saves this source inside every flow, so the logic lives in the installed package
(``langflow_cms.langflow.timers``, the shared base in ``langflow_cms.langflow.node_base``).
"""

from lfx.io import StrInput

from langflow_cms.langflow import timers
from langflow_cms.langflow.node_base import MonitorNodeComponent, node_inputs, pass_through_input


class CmsTimerStopComponent(MonitorNodeComponent):
    display_name = "Timer Stop"
    description = "Reports the time since the Timer Start before it to CloudMonitor."
    icon = "timer-off"
    name = "CmsTimerStop"
    run_node = timers.timer_stop_node

    inputs = node_inputs(
        pass_through_input("Passed through unchanged; timing stops when it arrives."),
        StrInput(
            name="span_name",
            display_name="Span Name",
            value="",
            advanced=True,
            info="Empty: stops the nearest Timer Start upstream. Set: stops the Timer Start with this Span "
            "Name. A stop with no start records nothing and is flagged on the node.",
        ),
    )
