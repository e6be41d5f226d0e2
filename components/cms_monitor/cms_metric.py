"""CMS Metric: turns on CloudMonitor monitoring of the flow it sits in and reports a business metric.

Thin on purpose: Langflow saves this source inside every flow, so all logic lives in the installed
`langflow_cms` package (`langflow_cms.nodes`).
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
from lfx.schema.data import Data
from lfx.schema.dataframe import DataFrame
from lfx.schema.message import Message

from langflow_cms import nodes


class CmsMetricComponent(Component):
    display_name = "CMS Metric"
    description = (
        "Monitors this flow in Alibaba Cloud CloudMonitor: every run reports flow and node latency and "
        "status. Optionally records a business metric whose value and dimensions can come from the input."
    )
    documentation = "https://github.com/langflow-cms/langflow-cms/blob/main/docs/usage.md"
    icon = "activity"
    name = "CmsMetric"

    inputs = [  # noqa: RUF012 — Langflow reads these class attributes
        HandleInput(
            name="input_value",
            display_name="Input",
            input_types=["Message", "Data", "JSON", "DataFrame", "Table"],
            info="Passed through unchanged. Its fields can fill the metric's value and dimensions.",
            required=False,
        ),
        MessageTextInput(
            name="metric_name",
            display_name="Metric Name",
            info="Business metric to record, e.g. poem_requests. Leave empty to only monitor the flow.",
            value="",
        ),
        DropdownInput(
            name="value_source",
            display_name="Value From",
            options=list(nodes.VALUE_SOURCES),
            value="Constant",
            info="Constant: the Value below. Input number: the input's text. Input field: an input field.",
        ),
        FloatInput(name="value", display_name="Value", value=1.0, info="Used when Value From is Constant."),
        MessageTextInput(
            name="value_field",
            display_name="Value Field",
            info="Field of the input Data (dotted path, e.g. usage.total) when Value From is Input field.",
            advanced=True,
            value="",
        ),
        DictInput(
            name="dimensions",
            display_name="Dimensions",
            is_list=True,
            info="Dimensions of the business metric. Values may use {field} of the input: topic = {text}.",
        ),
        DictInput(
            name="flow_dimensions",
            display_name="Flow Dimensions",
            is_list=True,
            info="Added to every metric of this flow, e.g. version = v2 to compare versions (at most 3).",
        ),
        IntInput(
            name="max_values",
            display_name="Max Values per Dimension",
            value=20,
            advanced=True,
            info="Distinct values a dimension may take before further values are reported as 'other'.",
        ),
        SecretStrInput(
            name="access_key_id",
            display_name="AccessKey ID",
            advanced=True,
            required=False,
            info="Prefer environment credentials or a RAM role; if used, pick a Langflow global variable.",
        ),
        SecretStrInput(
            name="access_key_secret",
            display_name="AccessKey Secret",
            advanced=True,
            required=False,
            info="Prefer environment credentials or a RAM role; if used, pick a Langflow global variable.",
        ),
    ]

    outputs = [Output(display_name="Output", name="output", method="pass_through")]  # noqa: RUF012

    def pass_through(self) -> Message | Data | DataFrame:
        notes = [nodes.use_credentials(self.access_key_id, self.access_key_secret)]
        notes.append(
            nodes.record_metric(
                self.graph,
                metric_name=self.metric_name,
                value_source=self.value_source,
                constant=self.value,
                value_field=self.value_field,
                dimensions=self.dimensions,
                input_value=self.input_value,
                max_values=self.max_values,
            )
        )
        notes.append(nodes.reporter_status())
        self.status = "\n".join(note for note in notes if note)
        return self.input_value if self.input_value is not None else Message(text="")
