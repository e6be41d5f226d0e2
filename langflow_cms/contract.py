"""The metric contract: every metric name, dimension and event name the plugin writes, in one place.

Everything that reads data back (``top``, ``compare``, the dashboards, the alarm specs, the demo table) and
everything that writes it (the tracing service, the canvas nodes, the reporter's self-health) names metrics
through this module, so a rename is one edit. docs/metrics.md documents each of them.

Two kinds of series:

* **Per-host aggregates** (``Type=1``, free of charge): 60 s and 300 s statistics computed in-process,
  carrying an ``instance`` dimension (the host with a shared spool directory, else one process start).
  Exact counts and sums come from these.
* **The fleet stream** (``Type=0`` raw points, billed): one point per flow run with *no* ``instance``
  dimension, so CloudMonitor itself computes fleet-wide percentiles per flow. Alarms and dashboards target
  these: they survive restarts and scaling.
"""

from __future__ import annotations

# --- per-host aggregates ------------------------------------------------------------------------------
FLOW_METRIC = "langflow_flow_duration_ms"
"""One observation per flow run, ms. Dimensions: flow, status, flow dimensions, instance, env."""
NODE_METRIC = "langflow_node_duration_ms"
"""One observation per node build, ms. Dimensions: flow, node, component, status, flow dimensions, ..."""
SPAN_METRIC = "langflow_span_duration_ms"
"""One observation per Timer start/stop pair, ms. Dimensions: flow, span, status, flow dimensions, ..."""
TOKENS_METRIC = "langflow_llm_tokens"
"""Tokens per LLM call. Dimensions: flow, model, direction, flow dimensions, ..."""

# --- the fleet stream (raw, no instance) --------------------------------------------------------------
FLEET_FLOW_METRIC = "langflow_fleet_flow_duration_ms"
"""One raw point per (sampled) flow run, ms. Dimensions: exactly flow, status (+ env), what alarms name; a
flow with its own dimensions sends the run a second time with them (flow, status, flow dimensions, env)."""
FLEET_ERROR_METRIC = "langflow_fleet_flow_error"
"""One raw point per (sampled) flow run: 1 failed, 0 ok, so CMS's ``Average`` is the fleet error rate and
``SampleCount`` the sampled run count. Dimensions: exactly flow (+ env)."""
FLEET_NODE_METRIC = "langflow_fleet_node_duration_ms"
"""Optional (``LANGFLOW_CMS_FLEET_NODES``): one raw point per node build. Dimensions: exactly flow, node,
status (+ env); again with the flow dimensions when the flow has some."""
SLOW_STREAK_METRIC = "langflow_fleet_slow_streak"
"""Raw, one point per flow, process and minute with runs: the longest run of consecutive runs slower than
the flow's threshold that was reached in that minute (streaks carry over minute boundaries). Dimensions:
exactly flow, threshold_ms (+ env). CMS ``Maximum`` at 60 s is the longest streak of any process."""
AGGREGATED_METRICS = (FLOW_METRIC, NODE_METRIC, SPAN_METRIC, TOKENS_METRIC)
FLEET_METRICS = (FLEET_FLOW_METRIC, FLEET_ERROR_METRIC, FLEET_NODE_METRIC, SLOW_STREAK_METRIC)

# --- the reporter's own health (aggregated, dimensions instance/env, plus reason where noted) -----------
HEALTH_PREFIX = "langflow_cms_"
HEALTH_COUNTERS = ("dropped", "folded", "retries", "failed", "invalid", "spool_errors")
"""Sent as the increase since the last report. ``dropped`` and ``spool_errors`` carry a ``reason``
dimension (``spool_errors``: ``volume_full``, ``read_only``, ``not_writable``, ``not_a_folder``,
``foreign_file``, ``other``)."""
HEALTH_GAUGES = ("queued", "spooled", "last_success_age_s", "fleet_sample_rate")
HEALTH_METRICS = tuple(HEALTH_PREFIX + name for name in HEALTH_COUNTERS + HEALTH_GAUGES)

# --- dimensions -----------------------------------------------------------------------------------------
FLOW, NODE, NODE_ID, COMPONENT, STATUS = "flow", "node", "node_id", "component", "status"
SPAN, MODEL, DIRECTION, THRESHOLD = "span", "model", "direction", "threshold_ms"
INSTANCE, ENV, REASON = "instance", "env", "reason"
OVERFLOW = "cms_overflow"
OK, ERROR = "ok", "error"

FLEET_TARGET_DIMENSIONS = {
    FLEET_FLOW_METRIC: (FLOW, STATUS),
    FLEET_ERROR_METRIC: (FLOW,),
    FLEET_NODE_METRIC: (FLOW, NODE, STATUS),
    SLOW_STREAK_METRIC: (FLOW, THRESHOLD),
}
"""The dimensions of the fleet series alarms target (plus ``env`` when the reporter sets one): a rule that
names exactly these matches under exact and under superset matching alike."""

RESERVED_DIMENSIONS = frozenset(
    {FLOW, NODE, NODE_ID, COMPONENT, STATUS, SPAN, MODEL, DIRECTION, THRESHOLD, INSTANCE, ENV, OVERFLOW}
)
"""Keys a flow's own dimensions (the CMS Metric node's Flow Dimensions) may not use."""
COMMON_DIMENSIONS = (INSTANCE, ENV)
"""Added by the reporter to every aggregated series (only ``env`` to the fleet stream)."""
KEPT_ON_OVERFLOW = (FLOW, STATUS)
"""Past the series cap, a new series keeps these (and the common ones) and folds the rest."""

# --- events (PutCustomEvent) ----------------------------------------------------------------------------
EVENT_FLOW_FAILED = "langflow_flow_failed"
EVENT_NODE_FAILED = "langflow_node_failed"
EVENT_FLOW_SLOW = "langflow_flow_slow"
EVENT_SUPPRESSED = "langflow_events_suppressed"
EVENT_GUARD = "langflow_guard"
"""Every decision of ``langflow-cms guard`` (watching, promoted, rolled_back, undecided, rollback_failed)."""
EVENT_NAMES = (EVENT_FLOW_FAILED, EVENT_NODE_FAILED, EVENT_FLOW_SLOW, EVENT_SUPPRESSED)

# --- CMS --------------------------------------------------------------------------------------------------
PERIODS = (60, 300)
"""Type=1 periods we send; CMS computes raw data at these two only."""
CUSTOM_NAMESPACE_PREFIX = "acs_customMetric_"
"""DescribeMetricList namespace of custom metrics: ``acs_customMetric_<account uid>``."""
