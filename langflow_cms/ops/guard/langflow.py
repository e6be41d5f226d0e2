"""The Langflow 1.13 API the guard needs: flows, their saved versions, and activating one.

Routes (``langflow/api/v1/flow_version.py``): ``GET /api/v1/flows/{id}/versions/`` lists ``{"entries":
[{"id", "version_number", "version_tag", "created_at", "description"}, ...]}`` newest first;
``GET …/versions/{vid}`` returns one with its ``data``; ``POST …/versions/{vid}/activate?save_draft=true``
with ``If-Match: <the flow's version_token>`` auto-saves the current graph as a new version, then copies the
version's data into the flow, in one transaction. Authentication: ``x-api-key`` (docs/guard.md lists the
permissions the key's user needs).

Refusals: 503 (database busy, ``Retry-After``), 429, 502/504 and connection errors are retried with
backoff for up to ``retry_s`` seconds; 401/403 (the key may not), 404 and 409 (the flow changed since it
was read) are raised at once as :class:`LangflowError`, for the caller to report or re-read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

RETRYABLE = frozenset({429, 502, 503, 504})
API_KEY_VARIABLE = "LANGFLOW_API_KEY"


class LangflowError(Exception):
    """Langflow refused or could not be reached. ``status`` is None when no answer came."""

    def __init__(self, status: int | None, detail: str, method: str = "", path: str = "") -> None:
        where = f"{method} {path}: " if method else ""
        super().__init__(f"{where}{status if status is not None else 'unreachable'}: {detail}"[:400])
        self.status = status
        self.detail = detail

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE


class LangflowClient:
    """A few calls to one Langflow server with one API key (None: the server's auto-login, for tests)."""

    def __init__(
        self, url: str, api_key: str | None = None, *, timeout: float = 15.0, retry_s: float = 30.0
    ) -> None:
        self.url = url.rstrip("/")
        self.retry_s = retry_s
        headers = {"x-api-key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        def once() -> Any:
            try:
                response = self._http.request(method, path, params=params, headers=headers)
            except httpx.HTTPError as exc:
                raise LangflowError(None, type(exc).__name__, method, path) from None
            if response.status_code >= 400:
                try:
                    detail = str(response.json().get("detail", ""))
                except (ValueError, AttributeError):
                    detail = response.text[:200]
                raise LangflowError(response.status_code, detail, method, path)
            try:
                return response.json() if response.content else None
            except ValueError:  # a 2xx page that is not JSON (a proxy's, a login page): not Langflow's answer
                kind = response.headers.get("content-type", "no content type")
                raise LangflowError(response.status_code, f"not JSON ({kind})", method, path) from None

        retrying = Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, LangflowError) and exc.retryable),
            wait=wait_exponential_jitter(initial=0.5, max=5.0),
            stop=stop_after_delay(self.retry_s),
            reraise=True,
        )
        return retrying(once)

    # --- reads -------------------------------------------------------------------------------------------
    def flows(self) -> list[dict[str, Any]]:
        """Every flow the key's user owns (with its data)."""
        found = self._request(
            "GET", "/api/v1/flows/", params={"get_all": "true", "remove_example_flows": "true"}
        )
        return list(found or [])

    def flow(self, flow_id: str) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/flows/{flow_id}")

    def versions(self, flow_id: str) -> list[dict[str, Any]]:
        """The flow's saved versions, newest first (at most 100: Langflow's page limit)."""
        found = self._request("GET", f"/api/v1/flows/{flow_id}/versions/", params={"limit": 100})
        return list((found or {}).get("entries") or [])

    def version(self, flow_id: str, version_id: str) -> dict[str, Any]:
        """One saved version with its ``data``."""
        return self._request("GET", f"/api/v1/flows/{flow_id}/versions/{version_id}")

    # --- the one write -----------------------------------------------------------------------------------
    def activate(self, flow_id: str, version_id: str, version_token: str | None) -> dict[str, Any]:
        """Make a saved version the flow's graph (the current one is auto-saved first). With the token the
        flow was read with, a flow changed in between is refused (409) instead of overwritten."""
        headers = {"If-Match": f'"{version_token}"'} if version_token else None
        return self._request(
            "POST",
            f"/api/v1/flows/{flow_id}/versions/{version_id}/activate",
            params={"save_draft": "true"},
            headers=headers,
        )
