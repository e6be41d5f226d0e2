"""The emulator's own copy of CloudMonitor's documented limits.

A test oracle must not share constants with the code it judges: if the client's ``langflow_cms.limits``
drifted from the API, an emulator reading the same module would drift with it and every test would still
pass. So each value here is copied from the documentation, with its source (``cms-api.md`` is
``/work/shared/reference/cms-api.md``, the project's research notes; "Tea" is the docstring of the
``alibabacloud_cms20190101`` model of the action, i.e. the public API metadata).
"""

from __future__ import annotations

import re

# --- common (POP gateway) ---------------------------------------------------------------------------

TIMESTAMP_WINDOW_S = 15 * 60
"""A signed ``Timestamp`` more than 15 minutes away is ``InvalidTimeStamp.Expired`` (cms-api.md §1.3)."""

# --- PutCustomMetric --------------------------------------------------------------------------------

MAX_METRIC_ENTRIES = 21
"""``MetricList.N``: "Valid values of N: 1 to 21" (Tea docstring of every ``MetricList.N.*``; cms-api.md
§1.1; the overview page's "100 entries" conflicts, the API metadata is the narrower)."""

MAX_NAME_BYTES = 64
"""Metric names over 64 bytes are truncated by CMS (doc 63275; cms-api.md §1.1)."""

METRIC_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
"""Letters, digits and ``_``, starting with a letter (doc 63275; cms-api.md §1.1)."""

MAX_DIMENSION_BYTES = 64
"""Dimension keys and values are 1-64 bytes, longer ones truncated (doc 115004/63275; cms-api.md §1.1)."""

DIMENSION_CHAR_RE = re.compile(r"[A-Za-z0-9._\-/\\]")
"""Dimension keys/values: ASCII letters, digits and ``. - _ / \\`` only (Tea docstring of
``MetricList.N.Dimensions``; zh doc "英文字母、数字、点号…"; cms-api.md §6.1)."""

SANITISED_DIMENSION_CHARS = "=&,"
"""The characters the doc names as replaced by ``_`` (doc 63275; cms-api.md §1.1)."""

# No dimension-count limit: "at most 10 dimensions" was removed from the PutCustomMetric doc in 2021
# (AlibabaCloudDocs/cms commit 3241c68b; cms-api.md §6.1). The client keeps 10 as its own policy.

METRIC_PERIODS = (60, 300)
"""``MetricList.N.Period`` for Type=1: "60 or 300" (Tea docstring; cms-api.md §1.1)."""

STATISTICS = (
    "Average",
    "Maximum",
    "Minimum",
    "Sum",
    "SampleCount",
    "LastValue",
    "SumPerSecond",
    "CountPerSecond",
    "P10",
    "P20",
    "P30",
    "P40",
    "P50",
    "P60",
    "P70",
    "P75",
    "P80",
    "P90",
    "P95",
    "P98",
    "P99",
)
"""Type=1 value keys and the statistics CMS computes from raw data (aliyun-cms-java-sdk
``MetricAttribute.java``; doc 63275 aggregation table; cms-api.md §1.1 and §6.1)."""

PERCENTILES = {name: int(name[1:]) for name in STATISTICS if name.startswith("P")}

# --- DescribeMetricList (custom metrics) ------------------------------------------------------------

RAW_AGGREGATION_PERIODS = (60, 300)
"""CMS aggregates raw (Type=0) data at 1 minute and 5 minutes only (doc 63275; cms-api.md §1.4, §6.1)."""

QUERY_PERIODS = (60, 300)
"""Periods a custom-metric query may ask for: the two that exist (reported Type=1 periods and the raw
aggregation periods above; cms-api.md §6.2)."""

MAX_QUERY_LENGTH = 1440
"""``Length`` ≤ 1440 points per page (DescribeMetricList doc; cms-api.md §6.2)."""

MAX_QUERY_RANGE_MS = 31 * 24 * 3600 * 1000
"""``EndTime - StartTime`` ≤ 31 days (DescribeMetricList doc; cms-api.md §6.2)."""

# --- PutCustomEvent ---------------------------------------------------------------------------------

MAX_EVENT_ENTRIES = 50
"""``EventInfo.N``: N = 1..50 (API metadata; cms-api.md §2.2, §6.5). Doc 60196's "100 events per report"
conflicts; the metadata is the narrower."""

MAX_EVENT_REPORT_BYTES = 500 * 1024
"""500 KB per report (doc 60196; cms-api.md §6.5). The emulator counts the UTF-8 bytes of the
``EventInfo.N.*`` values."""

# --- alarm rules and contacts -----------------------------------------------------------------------

COMPARISON_OPERATORS = (">=", "=", "<=", ">", "<", "!=")
"""``PutCustomMetricRule.ComparisonOperator`` (Tea docstring; cms-api.md §6.3)."""

ALARM_LEVELS = ("CRITICAL", "WARN", "INFO")
"""``Level`` of PutCustomMetricRule / PutCustomEventRule (Tea docstrings; cms-api.md §6.3)."""

RULE_PERIOD_UNIT_S = 60
"""A rule's ``Period`` is an integral multiple of 60 s (Tea docstrings; cms-api.md §6.3)."""

DEFAULT_SILENCE_TIME_S = 86400
"""``SilenceTime`` default (Tea docstring of DescribeMetricRuleList ``SilenceTime``; cms-api.md §6.3)."""

DEFAULT_EVENT_RULE_PERIOD_S = 300
"""``PutCustomEventRule.Period`` default 300 (Tea docstring)."""

MAX_DELETE_RULE_IDS = 100
"""``DeleteMetricRules.Id.N``: N = 1..100 (DeleteMetricRules doc)."""

MAX_QUERY_RULE_IDS = 20
"""``DescribeMetricRuleList.RuleIds``: "up to 20 IDs" (Tea docstring)."""

MAX_PATTERN_VALUES = 50
"""``PutEventRule.EventPattern.N.*List.M``: "Valid values of N: 1 to 50" (Tea docstrings)."""

MAX_DELETE_EVENT_RULE_NAMES = 20
"""``DeleteEventRules.RuleNames.N``: N = 1..20 (DeleteEventRules page)."""

MAX_CONTACT_NAMES = 100
"""``PutContactGroup.ContactNames.N``: N = 1..100 (cms-api.md §6.4)."""
