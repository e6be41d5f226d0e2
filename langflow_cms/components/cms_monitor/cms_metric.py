"""CMS Metric: turns on CloudMonitor monitoring of the flow it sits in and reports a business metric.

Thin on purpose: Langflow saves this source inside every flow, so all logic lives in the installed
`langflow_cms` package (`langflow_cms.nodes`).
"""

from typing import Any

from lfx.custom.custom_component.component import Component
from lfx.io import DictInput, HandleInput, IntInput, SecretStrInput, StrInput
from lfx.schema.data import Data
from lfx.schema.dataframe import DataFrame
from lfx.schema.message import Message

from langflow_cms import nodes

METRIC_FIELDS = ("value", "dimensions", "max_values")
"""Shown only when a Metric Name is set (lfx also skips hidden fields when it builds the node)."""


class CmsMetricComponent(Component):
    display_name = "CMS Metric"
    description = "Monitors this flow in CloudMonitor, with an optional business metric."
    documentation = "https://github.com/langflow-cms/langflow-cms/blob/main/docs/usage.md"
    icon = "activity"
    name = "CmsMetric"

    inputs = [  # noqa: RUF012 — Langflow reads these class attributes
        HandleInput(
            name="input_value",
            display_name="Input",
            input_types=["Message", "Data", "JSON", "DataFrame", "Table"],
            info="Passed through unchanged. {text} or {field} in Value and Dimensions read from it.",
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
            info=f"CMS dimensions of the business metric, at most {nodes.MAX_CUSTOM_DIMENSIONS} rows, e.g. "
            "topic = {text}: further rows are dropped, named on the node and counted in CMS. More than Max "
            "Values distinct values of one dimension are sent as 'other'.",
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
    ]
    nodes.with_absent_flags(inputs)  # cheaper lookups for lfx, see the function

    outputs = [nodes.pass_through_output()]  # noqa: RUF012 — the same types on every start, Message first

    def update_build_config(
        self, build_config: dict, field_value: Any, field_name: str | None = None
    ) -> dict:
        values = {name: field.get("value") for name, field in build_config.items() if isinstance(field, dict)}
        if field_name is not None:
            values[field_name] = field_value
        if field_name in (None, "metric_name"):
            for name in METRIC_FIELDS:
                if name in build_config:
                    build_config[name]["show"] = bool(str(values.get("metric_name") or "").strip())
        # A setting CMS would refuse is flagged in the field's title while editing, before any run.
        for name, title in nodes.field_titles(values).items():
            if name in build_config:
                build_config[name]["display_name"] = title
        return build_config

    async def pass_through(self) -> Message | Data | DataFrame:
        self.status = await nodes.ametric_node(self)
        return self.input_value if self.input_value is not None else Message(text="")
