"""Kept for saved flows: Langflow saves each node's source inside the flow, and every flow saved before the
Langflow adapter moved to ``langflow_cms.langflow`` (issue 28) runs ``from langflow_cms import nodes`` and
calls the names below (the first nodes called ``record_metric``, ``use_credentials``, ``reporter_status``
and ``timer_step``). Exported scripts (docs/export.md) import it too. New code imports the modules."""

from langflow_cms.langflow.canvas import (
    PASS_THROUGH_TYPES,
    pass_through_output,
    reporter_status,
    with_absent_flags,
)
from langflow_cms.langflow.metric import ametric_node, metric_node, record_metric
from langflow_cms.langflow.metric_ask import MAX_CUSTOM_DIMENSIONS, VALUE_SOURCES, field_titles
from langflow_cms.langflow.node_keys import use_credentials
from langflow_cms.langflow.timers import timer_start_node, timer_step, timer_stop_node

__all__ = [
    "MAX_CUSTOM_DIMENSIONS",
    "PASS_THROUGH_TYPES",
    "VALUE_SOURCES",
    "ametric_node",
    "field_titles",
    "metric_node",
    "pass_through_output",
    "record_metric",
    "reporter_status",
    "timer_start_node",
    "timer_step",
    "timer_stop_node",
    "use_credentials",
    "with_absent_flags",
]
