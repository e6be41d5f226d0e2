"""The one CMS client: signed calls through the real SDK, hard deadlines, the retry policy, the rate
limiter and the error type, for the reporter's writes, the alarms commands and the readers (query.py) alike.

The SDK's own retry never fires for CMS (its retry table only knows ECS) and it returns an HTTP-200 reply
whose body ``Code`` is an error as if it had succeeded. So: ``AcsClient(auto_retry=False)``, the body is
always checked, every failure becomes a ``CmsError`` that knows whether trying again can help, and tenacity
retries the ones that can (exponential backoff with full jitter). Authentication, signature, permission and
parameter errors never improve with time: they fail at once.

Deadlines are hard. Each attempt's connect and read timeouts come from what is left of the budget, the call
itself runs on a short-lived worker thread that the caller waits for no longer than that (an endpoint that
accepts the connection and trickles bytes cannot hold the caller), tenacity stops before a backoff sleep that
would pass the deadline, and the rate limiter never sleeps past it either.

Reads: :meth:`Transport.call_json` returns the parsed reply of any action (``call`` only its RequestId);
:func:`read_json` is the same body check and rate limit for a reader's own ``AcsClient`` (query.py), which
retries throttling only, for up to ``THROTTLE_RETRY_S``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from aliyunsdkcms.request.v20190101.PutCustomEventRequest import PutCustomEventRequest
from aliyunsdkcms.request.v20190101.PutCustomMetricRequest import PutCustomMetricRequest
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
    wait_random_exponential,
)

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
        "SDK.Timeout",
        "InvalidTimeStamp.Expired",  # the next attempt is signed afresh
        "SignatureNonceUsed",
        "Credentials.Unavailable",  # the metadata service or STS, for now (``credential_failure``)
    }
)
BURST_S = 2.0
"""The final send may spend the call allowance of this many idle seconds at once (``final_burst``)."""
MIN_ATTEMPT_S = 0.05
"""An attempt with less budget than this is not started."""
THROTTLE_RETRY_S = 20.0
"""How long a throttled read (:func:`read_json`) is retried before the error is raised."""
_QUERY = re.compile(r"\?[^\s'\"<>()]+")


class CmsError(Exception):
    """A failed call, with the CMS error code, the HTTP status and whether a retry can help.

    The message is redacted: SDK errors quote the signed URL, with ``AccessKeyId`` and ``Signature``.
    """

    def __init__(
        self, code: str, message: str, http_status: int | None = None, request_id: str | None = None
    ) -> None:
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.retryable = code in RETRYABLE_CODES or code.startswith("Throttling") or (http_status or 0) >= 500
        self.keeps = code == NO_CREDENTIALS
        """Not retried, but never dead-lettered nor dropped: our configuration is wrong, not the data."""
        self.message = _QUERY.sub("?…", redact(message))  # SDK errors quote the signed URL: drop its query
        super().__init__(
            f"{code}: {self.message}"
            + (f" (RequestId {request_id})" if request_id else "")
            + (f" (HTTP {http_status})" if http_status else "")
        )


NO_CREDENTIALS = "NoCredentials"
CREDENTIALS_UNAVAILABLE = "Credentials.Unavailable"


def credential_failure(exc: CredentialError) -> CmsError:
    """A credential source that failed for now is retried; a half-configured one is not (data is kept)."""
    return CmsError(CREDENTIALS_UNAVAILABLE if exc.transient else NO_CREDENTIALS, str(exc))


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, CmsError) and exc.retryable


def checked_reply(body: bytes | str) -> dict[str, Any]:
    """The parsed reply, or CmsError: the old SDK raises only for non-2xx statuses, so a body ``Code`` other
    than ``"200"`` (or ``Success: false``) is an error even at HTTP 200 (cms-api.md §1.2)."""
    try:
        reply = json.loads(body)
    except ValueError:
        raise CmsError("SDK.UnknownServerError", f"unparsable reply {body[:200]!r}") from None
    if not isinstance(reply, dict):
        raise CmsError("SDK.UnknownServerError", f"unexpected reply {body[:200]!r}")
    code = str(reply.get("Code", "200"))
    if code != "200" or reply.get("Success") is False:
        status = int(code) if code.isdigit() else None
        request_id = str(reply["RequestId"]) if reply.get("RequestId") else None
        raise CmsError(code or "NoCode", str(reply.get("Message", "")), status, request_id)
    return reply


class RateLimiter:
    """At most ``qps`` calls a second from this process (CMS caps each account at 50-200 QPS per region)."""

    def __init__(self, qps: float) -> None:
        if not qps > 0:
            raise ValueError("qps must be positive")
        self.interval = 1.0 / qps
        self._next = 0.0
        self._credit = 0
        self._lock = threading.Lock()

    def final_burst(self) -> None:
        """For the last send (at close): the calls this process left unused in the last ``BURST_S``
        seconds may go at once, so an exit that follows an idle stretch (the usual case: sends happen
        once a minute) delivers a full last minute within its budget. A process that kept sending up to
        now gets no credit, so the average rate never passes ``qps``."""
        with self._lock:
            idle = min(time.monotonic() - self._next, BURST_S)
            self._credit = max(int(idle / self.interval), 0)

    def wait(self, deadline: float = float("inf")) -> None:
        """Sleep until the next call may go; CmsError (retryable) if that would pass ``deadline``."""
        with self._lock:
            now = time.monotonic()
            if self._credit > 0:  # the final send's burst
                self._credit -= 1
                self._next = max(now, self._next)
                return
            delay = self._next - now
            if now + max(delay, 0.0) > deadline - MIN_ATTEMPT_S:
                raise CmsError("Throttling.Local", "the local rate limit leaves no time before the deadline")
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            time.sleep(delay)


class _Quiet(logging.Filter):
    """The SDK logs every failed call at ERROR with the whole URL-encoded payload (thousands of lines in an
    outage). Its records go to DEBUG on ``langflow_cms.sdk``, redacted; our exporter logs one line per
    outage instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            sdk_log = logging.getLogger("langflow_cms.sdk")
            if sdk_log.isEnabledFor(logging.DEBUG):
                sdk_log.debug("%s", redact(record.getMessage()))
            return False
        return True


_QUIET = _Quiet()


def quiet_sdk_logs() -> None:
    """Install the filter on the SDK's loggers (idempotent)."""
    import aliyunsdkcore.client  # noqa: F401  (creates the logger)

    for name in ("aliyunsdkcore", "aliyunsdkcore.client", "aliyunsdkcore.http.http_response"):
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)


def _run_within(call: Callable[[], Any], budget: float) -> Any:
    """Run ``call`` on a worker thread and wait at most ``budget`` seconds for it."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=target, name="langflow-cms-call", daemon=True)
    worker.start()
    worker.join(max(budget, 0.0))
    if worker.is_alive():
        raise CmsError("SDK.Timeout", f"no complete answer within {budget:.2f} s (the deadline)")
    if "error" in box:
        raise box["error"]
    return box["value"]


class Transport:
    """Signed calls to one CMS endpoint with one set of credentials and one rate limiter."""

    def __init__(self, config: Config, credentials: CredentialProvider) -> None:
        self.config = config
        self.credentials = credentials
        self.limiter = RateLimiter(config.max_qps)
        self._client = None
        quiet_sdk_logs()

    def put(self, entries: list[dict[str, str]], deadline: float = float("inf")) -> str:
        """One PutCustomMetric call (or PutCustomEvent, for event entries); the RequestId or CmsError."""
        if entries and "EventName" in entries[0]:
            events = PutCustomEventRequest()
            events.set_EventInfos(entries)
            return self.call(events, deadline)
        request = PutCustomMetricRequest()
        request.set_MetricLists(entries)
        return self.call(request, deadline)

    def call(self, request: Any, deadline: float = float("inf")) -> str:
        """One signed RPC call that must finish by ``deadline`` (monotonic); its RequestId."""
        return str(self.call_json(request, deadline).get("RequestId", ""))

    def call_json(self, request: Any, deadline: float = float("inf")) -> dict[str, Any]:
        """One signed RPC call that must finish by ``deadline`` (monotonic); the parsed reply, its body
        ``Code`` checked (CmsError otherwise)."""
        self.limiter.wait(deadline)
        budget = min(deadline - time.monotonic(), self.config.connect_timeout + self.config.read_timeout)
        if budget < MIN_ATTEMPT_S:
            raise CmsError("SDK.Timeout", "no time left before the deadline")
        request.set_endpoint(self.config.endpoint)
        request.set_connect_timeout(min(self.config.connect_timeout, budget))
        request.set_read_timeout(min(self.config.read_timeout, budget))
        try:
            body = _run_within(lambda: self._acs_client().do_action_with_exception(request), budget)
        except ServerException as exc:
            raise CmsError(exc.get_error_code(), exc.get_error_msg(), exc.get_http_status()) from None
        except ClientException as exc:
            raise CmsError(exc.get_error_code(), exc.get_error_msg()) from None
        except CredentialError as exc:
            raise credential_failure(exc) from None
        return checked_reply(body)

    def call_with_retry(
        self,
        make_call: Callable[[float], Any],
        deadline: float,
        on_retry: Callable[[CmsError], None] | None = None,
    ) -> Any:
        """``make_call(deadline)`` with backoff and full jitter on retryable errors, until ``deadline``.

        tenacity stops before a sleep that would pass the deadline (``upcoming_sleep`` is known when the
        stop is decided), so the whole call returns by the deadline plus one attempt's wrap-up.
        """

        def stop(state: RetryCallState) -> bool:
            return time.monotonic() + state.upcoming_sleep >= deadline - MIN_ATTEMPT_S

        def before_sleep(state: RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None:
                on_retry(state.outcome.exception())  # type: ignore[arg-type]

        retrying = Retrying(
            retry=retry_if_exception(_is_retryable),
            wait=wait_random_exponential(multiplier=0.25, max=10),
            stop=stop,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(make_call, deadline)

    def put_with_retry(
        self,
        entries: list[dict[str, str]],
        deadline: float,
        on_retry: Callable[[CmsError], None] | None = None,
    ) -> str:
        """``put`` with retries until ``deadline`` (a monotonic time)."""
        return self.call_with_retry(lambda d: self.put(entries, d), deadline, on_retry)

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


def is_throttling(exc: BaseException) -> bool:
    """A ``Throttling``/``Throttling.User``/``Throttling.Api`` answer, as an HTTP error or in a 200 body."""
    if isinstance(exc, ServerException):
        return exc.get_error_code().startswith("Throttling")
    return isinstance(exc, CmsError) and exc.code.startswith("Throttling")


def read_json(
    client: Any, request: Any, endpoint: str | None, limiter: RateLimiter | None = None
) -> dict[str, Any]:
    """One read through a reader's own signing ``AcsClient`` (query.py): the shared rate limiter, the body
    check of every call (:func:`checked_reply`), and throttling retried with jittered exponential backoff for
    up to ``THROTTLE_RETRY_S``; other errors (SDK exceptions included) are raised at once."""
    if endpoint:
        request.set_endpoint(endpoint)
    if not endpoint or "://" not in endpoint:
        # A bare host name means real CMS: never send credentials over plain HTTP.
        request.set_protocol_type("https")

    retrying = Retrying(
        retry=retry_if_exception(is_throttling),
        wait=wait_exponential_jitter(initial=0.2, max=5.0),
        stop=stop_after_delay(THROTTLE_RETRY_S),
        reraise=True,
    )

    def once() -> dict[str, Any]:
        if limiter is not None:
            limiter.wait()
        return checked_reply(client.do_action_with_exception(request))

    return retrying(once)
