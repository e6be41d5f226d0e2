"""langflow-cms: report Langflow flow and node latency, status and token usage to Alibaba CloudMonitor.

from langflow_cms import get_reporter
get_reporter().record("langflow_flow_duration_ms", 812.0, {"flow": "poem", "status": "ok"})
"""

from pathlib import Path

from langflow_cms.lifecycle import get_reporter, reset_reporter
from langflow_cms.reporter import NullReporter, Reporter

COMPONENTS_DIR = Path(__file__).resolve().parent / "components"
"""The folder holding the ``cms_monitor`` bundle (what ``LANGFLOW_COMPONENTS_PATH`` would point at)."""

REPOSITORY_URL = "https://github.com/langflow-cms/langflow-cms/blob/main"
"""Where an installed user reads the documents help texts and advice name (``f"{REPOSITORY_URL}/docs/…"``):
the wheel carries no ``docs/`` or ``policies/`` folder."""

__all__ = ["COMPONENTS_DIR", "REPOSITORY_URL", "NullReporter", "Reporter", "get_reporter", "reset_reporter"]
__version__ = "0.1.0"
