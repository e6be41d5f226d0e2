"""CMS Metric: turns on CloudMonitor monitoring of the flow it sits in and reports a business metric.

Declarations only: Langflow saves this source inside every flow, so the logic lives in the installed package
(``langflow_cms.langflow.metric``, the shared base in ``langflow_cms.langflow.node_base``).
"""

from typing import Any

from lfx.io import DictInput, IntInput, SecretStrInput, StrInput

from langflow_cms.langflow import metric, metric_ask
from langflow_cms.langflow.node_base import MonitorNodeComponent, node_inputs, pass_through_input


class CmsMetricComponent(MonitorNodeComponent):
    display_name = "CMS Metric"
    description = "Monitors this flow in CloudMonitor, with an optional business metric."
    icon = "activity"
    name = "CmsMetric"
    run_node = metric.ametric_node

    inputs = node_inputs(
        pass_through_input(
            "Passed through unchanged. {text} or {field} in Value and Dimensions read from it.",
            required=False,
        ),
        StrInput(
            name="metric_name",
            display_name="Metric Name",
            info="Business metric recorded in CMS on every run, e.g. poem_requests (a letter, then letters, "
            "digits, _). Empty: CMS gets only the flow's and nodes' latency and status.",
            value="",
            real_time_refresh=True,
        ),
        StrInput(
            name="value",
            display_name="Value",
            info="The number recorded in CMS each run: 1 counts runs; {text} reads the input message as a "
            "number; {usage.total} reads a field of the input Data.",
            value="1",
            show=False,
            real_time_refresh=True,
        ),
        DictInput(
            name="dimensions",
            display_name="Dimensions",
            is_list=True,
            info=f"CMS dimensions of the business metric, at most {metric_ask.MAX_CUSTOM_DIMENSIONS} rows, "
            "e.g. topic = {text}: further rows are dropped, named on the node and counted in CMS. More "
            "than Max Values distinct values of one dimension are sent as 'other'.",
            show=False,
            real_time_refresh=True,
        ),
        StrInput(
            name="flow_name",
            display_name="Flow Name",
            info="The 'flow' dimension in CMS for every metric of this flow (alarms target it). Empty: the "
            "flow's name, cleaned (New Flow (1) -> New_Flow_1).",
            value="",
            advanced=True,
        ),
        DictInput(
            name="flow_dimensions",
            display_name="Flow Dimensions",
            is_list=True,
            advanced=True,
            info="Added in CMS to every metric of this flow, e.g. version = v2 to compare versions "
            "(at most 3).",
        ),
        IntInput(
            name="max_values",
            display_name="Max Values",
            value=20,
            advanced=True,
            show=False,
            info="Per dimension of the business metric: the distinct values it may take in CMS before "
            "further values are sent as 'other'.",
        ),
        SecretStrInput(
            name="access_key_id",
            display_name="AccessKey ID",
            advanced=True,
            required=False,
            info="Sends this flow's metrics to the CMS account of this AccessKey (both fields needed). "
            "Prefer environment credentials or a RAM role; if used, pick a Langflow global variable.",
        ),
        SecretStrInput(
            name="access_key_secret",
            display_name="AccessKey Secret",
            advanced=True,
            required=False,
            info="The secret of the AccessKey above; never shown or logged.",
        ),
    )

    def update_build_config(
        self, build_config: dict, field_value: Any, field_name: str | None = None
    ) -> dict:
        return metric_ask.edited(build_config, field_value, field_name)
