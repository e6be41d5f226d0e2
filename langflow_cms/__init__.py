"""langflow-cms: report Langflow flow and node latency, status and token usage to Alibaba CloudMonitor.

from langflow_cms import get_reporter
get_reporter().record("langflow_flow_duration_ms", 812.0, {"flow": "poem", "status": "ok"})
"""

from langflow_cms.reporter import NullReporter, Reporter, get_reporter, reset_reporter

__all__ = ["NullReporter", "Reporter", "get_reporter", "reset_reporter"]
__version__ = "0.1.0"
