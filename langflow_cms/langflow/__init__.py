"""The Langflow adapter: the tracing entry point (``service``), the per-run bookkeeping (``monitor``,
``runs``), the canvas nodes' logic (``canvas``, ``metric_ask``, ``metric``, ``node_keys``, ``timers``), a
flow's own settings (``flow_settings``), token usage (``tokens``) and flow versions (``versioning``,
``server_versions``)."""
