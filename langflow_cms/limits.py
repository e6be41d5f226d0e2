"""CloudMonitor's documented limits for PutCustomMetric, in one place.

Both the client (which must never send an invalid request) and the emulator (which must reject one the way
CMS does) read these, so the two can never disagree. Sources: ../shared/reference/cms-api.md §1.
"""

import re

MAX_ENTRIES_PER_CALL = 21
"""`MetricList.N`: N is 1..21 in the API metadata (the overview page's 100 conflicts; 21 is safe)."""

MAX_EVENTS_PER_CALL = 50
"""`EventInfo.N` of PutCustomEvent: N is 1..50 in the API metadata (doc 60196: 100 events, 500 KB)."""
MAX_EVENT_CALLS_PER_S = 20
"""PutCustomEvent calls per second per account (doc 60196)."""

MAX_DIMENSIONS = 10
MAX_NAME_BYTES = 64
MAX_DIMENSION_BYTES = 64
METRIC_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
FORBIDDEN_DIMENSION_CHARS = "=&,"
PERIODS = (60, 300)
"""Type=1 periods. CMS needs both 60 s and 300 s aggregates to answer queries longer than 7 days."""

AGGREGATE_KEYS = ("SampleCount", "Sum", "Minimum", "Maximum", "Average", "P50", "P90", "P95", "P99")
TIMESTAMP_WINDOW_S = 15 * 60
"""The POP gateway rejects a request whose signed Timestamp is more than 15 minutes away."""
