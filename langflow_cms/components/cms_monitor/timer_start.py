"""Timer Start: opens a span; the Timer Stop after it reports the span's duration to CloudMonitor.

Declarations only: Langflow saves this source inside every flow, so the logic lives in the installed package
(``langflow_cms.langflow.timers``, the shared base in ``langflow_cms.langflow.node_base``).
"""

from lfx.io import StrInput

from langflow_cms.langflow import timers
from langflow_cms.langflow.node_base import MonitorNodeComponent, node_inputs, pass_through_input


class CmsTimerStartComponent(MonitorNodeComponent):
    display_name = "Timer Start"
    description = "Starts timing; the Timer Stop after it reports the time in between to CloudMonitor."
    icon = "timer"
    name = "CmsTimerStart"
    run_node = timers.timer_start_node

    inputs = node_inputs(
        pass_through_input("Passed through unchanged; timing starts when it arrives."),
        StrInput(
            name="span_name",
            display_name="Span Name",
            value="",
            advanced=True,
            info="The 'span' dimension in CMS. Empty: this node's name (unique in the flow), which the next "
            "Timer Stop downstream picks up by itself.",
        ),
    )
