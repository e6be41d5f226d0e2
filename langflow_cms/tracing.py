"""Kept for installs and settings that name the old path: the ``lfx.services`` entry point of releases before
issue 28 was ``langflow_cms.tracing:CmsTracingService``. The service now lives in
``langflow_cms.langflow.service``."""

from langflow_cms.langflow.service import CmsTracingService

__all__ = ["CmsTracingService"]
