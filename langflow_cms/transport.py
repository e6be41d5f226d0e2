"""One PutCustomMetric call through the real SDK, and the retry policy around it.

The SDK's own retry never fires for CMS (its retry table only knows ECS) and it returns an HTTP-200 reply
whose body ``Code`` is an error as if it had succeeded. So: ``AcsClient(auto_retry=False)``, the body is
always checked, every failure becomes a ``CmsError`` that knows whether trying again can help, and
tenacity retries the ones that can (exponential backoff with full jitter, bounded by a deadline).
Authentication, signature, permission and parameter errors never improve with time: they fail at once.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable

from aliyunsdkcms.request.v20190101.PutCustomMetricRequest import PutCustomMetricRequest
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from langflow_cms.config import Config
from langflow_cms.credentials import CredentialError, CredentialProvider, make_acs_client, proxies_for
from langflow_cms.redact import redact

log = logging.getLogger("langflow_cms")

RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "Throttling.User",
        "Throttling.Api",
        "ServiceUnavailable",
        "InternalError",
        "UnknownError",
        "SDK.HttpError",
        "SDK.UnknownServerError",
        "InvalidTimeStamp.Expired",  # the next attempt is signed afresh
        "SignatureNonceUsed",
    }
)


_QUERY = re.compile(r"\?[^\s'\"<>()]+")


class CmsError(Exception):
    """A failed call, with the CMS error code, the HTTP status and whether a retry can help.

    The message is redacted: SDK errors quote the signed URL, with ``AccessKeyId`` and ``Signature``.
    """

    def __init__(self, code: str, message: str, http_status: int | None = None) -> None:
        self.code = code
        self.http_status = http_status
        self.retryable = code in RETRYABLE_CODES or code.startswith("Throttling") or (http_status or 0) >= 500
        text = _QUERY.sub("?…", redact(message))  # SDK errors quote the whole signed URL: drop its query
        super().__init__(f"{code}: {text}" + (f" (HTTP {http_status})" if http_status else ""))


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, CmsError) and exc.retryable


class RateLimiter:
    """At most ``qps`` calls a second from this process (CMS caps each account at 50-200 QPS per region)."""

    def __init__(self, qps: float) -> None:
        self._interval = 1.0 / qps
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self._interval
        if delay > 0:
            time.sleep(delay)


class Transport:
    """Sends batches of entries to one CMS endpoint with one set of credentials."""

    def __init__(self, config: Config, credentials: CredentialProvider) -> None:
        self.config = config
        self.credentials = credentials
        self.limiter = RateLimiter(config.max_qps)
        self._client = None

    def put(self, entries: list[dict[str, str]]) -> str:
        """One PutCustomMetric call; returns the RequestId or raises CmsError."""
        self.limiter.wait()
        request = PutCustomMetricRequest()
        request.set_endpoint(self.config.endpoint)
        request.set_MetricLists(entries)
        try:
            body = self._acs_client().do_action_with_exception(request)
        except ServerException as exc:
            raise CmsError(exc.get_error_code(), exc.get_error_msg(), exc.get_http_status()) from None
        except ClientException as exc:
            raise CmsError(exc.get_error_code(), exc.get_error_msg()) from None
        except CredentialError as exc:
            raise CmsError("NoCredentials", str(exc)) from None
        try:
            reply = json.loads(body)
        except ValueError:
            raise CmsError("SDK.UnknownServerError", f"unparsable reply {body[:200]!r}", 200) from None
        code = str(reply.get("Code", ""))
        if code != "200":
            status = int(code) if code.isdigit() else None
            raise CmsError(code or "NoCode", str(reply.get("Message", "")), status)
        return str(reply.get("RequestId", ""))

    def put_with_retry(
        self,
        entries: list[dict[str, str]],
        deadline: float,
        on_retry: Callable[[CmsError], None] | None = None,
    ) -> str:
        """``put`` with backoff and full jitter on retryable errors, for at most ``deadline`` seconds."""

        def before_sleep(state: RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None:
                on_retry(state.outcome.exception())  # type: ignore[arg-type]

        retrying = Retrying(
            retry=retry_if_exception(_is_retryable),
            wait=wait_random_exponential(multiplier=0.25, max=10),
            stop=stop_after_delay(deadline),
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self.put, entries)

    def _acs_client(self):
        if self._client is None:
            self._client = make_acs_client(
                self.credentials,
                region=self.config.region,
                connect_timeout=self.config.connect_timeout,
                read_timeout=self.config.read_timeout,
                proxy=proxies_for(self.config.endpoint),
            )
        return self._client
