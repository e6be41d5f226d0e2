"""Failure events and log lines: from an alarm to the run that failed.

When a flow run fails (or, with ``LANGFLOW_CMS_SLOW_EVENTS``, runs slower than ``LANGFLOW_CMS_SLOW_RUN_MS``),
the tracing service builds one compact JSON record: flow, the failing node and its component, the error type
and a redacted, shortened message, the run, session and trace ids, the instance, the flow's dimensions, and
a link to the SLS console search for that run when SLS is configured. The record goes two ways:

* a CloudMonitor custom event (``PutCustomEvent``), through the same exporter as the metrics: off the
  caller's path, batched (at most 50 a call), rate-limited, retried, spooled and counted;
* one JSON log line on the ``langflow_cms.events`` logger (stderr by default), for Logtail/LoongCollector
  to ship to SLS, where the run id joins the event, the log line and the metric.

A failure storm is not an event storm: at most ``LANGFLOW_CMS_EVENTS_PER_MINUTE`` events per flow and
minute; the rest are counted and summarised in one ``langflow_events_suppressed`` event per flow and minute.
Every run still writes its log line.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from langflow_cms import clock as wallclock
from langflow_cms import contract
from langflow_cms.redact import cut, redact

LOG = logging.getLogger("langflow_cms.events")
MESSAGE_CHARS = 300
"""An error message is cut to this many characters: enough to act on, never a whole prompt."""
SLS_CONSOLE = "https://sls.console.aliyun.com/lognext/project/{project}/logsearch/{logstore}"
LINK_MARGIN_S = 300


def _ensure_log_handler() -> None:
    """JSON lines go to stderr, one per record, unless the application configured this logger itself."""
    if not LOG.handlers:
        handler = logging.StreamHandler(sys.__stderr__ or sys.stderr)  # the real stderr, even under lfx run
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOG.addHandler(handler)
        LOG.propagate = False
        LOG.setLevel(logging.INFO)


def sls_link(project: str | None, logstore: str | None, region: str, *, run_id: str, at: float) -> str | None:
    """The SLS console search for this run id around ``at`` (±5 minutes); None without SLS settings.

    URL parameters as documented for SLS console pages: ``encode=base64&queryString=…`` with
    ``queryTimeType=99`` and ``startTime``/``endTime`` in epoch seconds.
    """
    if not project or not logstore:
        return None
    query = base64.b64encode(f'run_id: "{run_id}"'.encode()).decode()
    return (
        SLS_CONSOLE.format(project=quote(project, safe=""), logstore=quote(logstore, safe=""))
        + f"?encode=base64&queryString={quote(query, safe='')}&queryTimeType=99"
        + f"&startTime={int(at) - LINK_MARGIN_S}&endTime={int(at) + LINK_MARGIN_S}&slsRegion={region}"
    )


def safe_message(error: BaseException | str | None, inputs: tuple[str, ...] = ()) -> str:
    """The first line of an error message, redacted (no secret), the run's own inputs blanked (no prompt),
    and cut to MESSAGE_CHARS."""
    if error is None:
        return ""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    for value in inputs:
        if value:
            text = text.replace(value, "[input]")
    text = redact(cut(text, 4 * MESSAGE_CHARS))  # a few times what is kept: redaction shortens text
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def event_entry(name: str, content: Mapping[str, Any], time_ms: int, group_id: str) -> dict[str, str]:
    """A PutCustomEvent ``EventInfo`` item (strings only, as the SDK sends them)."""
    return {
        "EventName": name,
        "Content": json.dumps(content, separators=(",", ":"), ensure_ascii=False, sort_keys=True),
        "Time": str(time_ms),
        "GroupId": group_id,
    }


class EventStream:
    """Limits events per flow and minute, summarises the rest, logs every record, hands events to ``sink``
    (an exporter's ``enqueue``)."""

    def __init__(
        self,
        *,
        per_minute: int,
        group_id: str,
        sink: Callable[[list[dict[str, str]]], None],
        clock: Callable[[], float] = wallclock.now,
    ) -> None:
        self.per_minute = per_minute
        self.group_id = group_id
        self.sink = sink
        self.clock = clock
        self.sent = 0
        self.suppressed = 0
        self._minute = -1
        self._counts: Counter[str] = Counter()
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()
        _ensure_log_handler()

    def emit(self, name: str, content: dict[str, Any]) -> bool:
        """Log the record; send it as an event unless its flow is over the minute's limit. Never raises."""
        try:
            now = self.clock()
            LOG.info("%s", json.dumps({"event": name, **content}, separators=(",", ":"), ensure_ascii=False))
            flow = str(content.get(contract.FLOW, ""))
            with self._lock:
                summaries = self._roll(int(now // 60))
                allowed = self._counts[flow] < self.per_minute
                if allowed:
                    self._counts[flow] += 1
                    self.sent += 1
                else:
                    self._held[flow] += 1
                    self.suppressed += 1
            if summaries:
                self.sink(summaries)
            if allowed:
                self.sink([event_entry(name, content, int(now * 1000), self.group_id)])
            return allowed
        except Exception:
            return False

    def flush(self, *, force: bool = False) -> None:
        """Send the summaries of minutes that have ended (all of them with ``force``, at close)."""
        with self._lock:
            summaries = self._roll(int(self.clock() // 60), force=force)
        if summaries:
            self.sink(summaries)

    def _roll(self, minute: int, force: bool = False) -> list[dict[str, str]]:
        if minute == self._minute and not force:
            return []
        summaries = [
            event_entry(
                contract.EVENT_SUPPRESSED,
                {
                    contract.FLOW: flow,
                    "suppressed": count,
                    "minute": self._minute * 60,
                    "limit": self.per_minute,
                    "note": f"{count} more events of this flow in this minute were not sent",
                },
                (self._minute * 60 + 59) * 1000,
                self.group_id,
            )
            for flow, count in sorted(self._held.items())
        ]
        self._minute = minute
        self._counts.clear()
        self._held.clear()
        return summaries
