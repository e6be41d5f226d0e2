"""One delivery path: outbox → spool → transport, with its own rate limiter, spool, health and outage log.

The reporter has one exporter for the process's own credentials and one per credential identity given on
the canvas (a CMS Metric node's AccessKey), so a flow's metrics never travel with another flow's key.

``send(deadline)`` never runs past its deadline: it waits for the send lock no longer than the deadline,
and every call inside honours it (see ``transport``). What cannot be delivered stays in the outbox (or the
spool) for the next cycle; at close it goes to the spool if there is one, else it is counted and named in
one log line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

from langflow_cms.config import Config
from langflow_cms.credentials import CredentialError, CredentialProvider
from langflow_cms.delivery.serializer import batches, is_event, raw_entries
from langflow_cms.delivery.spool import Spool, count_error, volume_full
from langflow_cms.delivery.transport import CmsError, Transport, credential_failure
from langflow_cms.pipeline.raw import RawPoint

log = logging.getLogger("langflow_cms")

Entry = dict[str, str]
REMINDER_S = 60.0
"""While delivery keeps failing, one reminder a minute at most."""


class OutageLog:
    """One WARNING when delivery starts failing, a reminder a minute at most while it lasts, one INFO when
    it recovers: a CMS outage is three lines in the log, not one per failed call."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.failing_since: float | None = None
        self._last_said = 0.0
        self._lost = 0

    def failed(self, exc: CmsError, outcome: str, lost: int = 0) -> None:
        now = time.monotonic()
        self._lost += lost
        if self.failing_since is None:
            self.failing_since = self._last_said = now
            log.warning(
                "langflow-cms: delivery to %s is failing: %s; %s%s",
                self.endpoint,
                exc,
                outcome,
                "" if exc.retryable else " (not retried: fix the configuration or credentials)",
            )
        elif now - self._last_said >= REMINDER_S:
            self._last_said = now
            log.warning(
                "langflow-cms: delivery to %s still failing after %.0f s: %s; %s",
                self.endpoint,
                now - self.failing_since,
                exc,
                outcome,
            )

    def recovered(self, delivered: int) -> None:
        if self.failing_since is None:
            return
        log.info(
            "langflow-cms: delivery to %s recovered after %.0f s; %d entries delivered, %d lost meanwhile",
            self.endpoint,
            time.monotonic() - self.failing_since,
            delivered,
            self._lost,
        )
        self.failing_since, self._lost = None, 0


class Exporter:
    """Delivers PutCustomMetric entries for one credential identity."""

    def __init__(
        self,
        config: Config,
        credentials: CredentialProvider | None,
        *,
        label: str,
        spool_dir: Path | None,
        owner: str,
    ) -> None:
        self.config = config
        self.label = label
        self.stats: Counter[str] = Counter()
        self.last_success: float | None = None
        self.last_error = ""
        self.outage = OutageLog(config.endpoint)
        self.closing = False
        self._credentials = credentials
        self._transport: Transport | None = None
        self._outbox: deque[Entry] = deque()
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self.spool = self._open_spool(spool_dir, owner)
        self.spooled = 0
        self._spool_errors: set[tuple[str, int | None]] = set()
        self._shrunk = True
        self._final_burst = False
        self._in_flight: list[Entry] = []
        """Entries a send took from memory (no spool copy) and has not delivered yet."""
        self._stop_at = float("inf")
        self._abandoned = False
        self.misconfigured: CmsError | None = None
        """The credential configuration is wrong (last call): what is left at exit is counted as failed."""
        self._sender: threading.Thread | None = None
        self._wake = threading.Event()

    def _open_spool(self, directory: Path | None, owner: str) -> Spool | None:
        if directory is None:
            return None
        try:
            return Spool(directory, int(self.config.spool_max_mb * 1_000_000), owner)
        except OSError as exc:
            count_error(exc)
            log.error("langflow-cms: cannot use the spool %s (%s); memory only", directory, exc)
            return None

    # ------------------------------------------------------------------ outbox
    def enqueue(self, entries: list[Entry]) -> None:
        """Queue entries to send; past LANGFLOW_CMS_QUEUE_SIZE the oldest are dropped (and counted)."""
        with self._lock:
            for entry in entries:
                if len(self._outbox) >= self.config.queue_size:
                    self._outbox.popleft()
                    self.stats["dropped:outbox_full"] += 1
                self._outbox.append(entry)

    def enqueue_points(self, points: list[RawPoint]) -> None:
        """Encode the pipeline's raw points (serializer.raw_entries) and queue them; raises before queueing
        anything when one cannot be encoded (the pipeline counts it)."""
        self.enqueue(raw_entries(points))

    def persist(self, entries: list[Entry]) -> bool:
        """Write ``entries`` straight to the spool, to be sent with the next send (the host's sender does
        this before it records windows as handed over; the outbox's bound does not apply). False without a
        spool, or when the write failed."""
        if self.spool is None:
            return False
        try:
            if entries:
                self.spool.write(entries)
        except OSError as exc:
            self._spool_error(exc)
            return False
        return True

    def queued(self) -> int:
        return len(self._outbox)

    def _take(self) -> list[Entry]:
        with self._lock:
            taken = list(self._outbox)
            self._outbox.clear()
        return taken

    def _requeue(self, entries: list[Entry]) -> None:
        with self._lock:
            if self._abandoned:
                return  # close() already counted them (in flight when it gave up)
            room = self.config.queue_size - len(self._outbox)
            keep = entries[-room:] if room > 0 else []
            self.stats["dropped:outbox_full"] += len(entries) - len(keep)
            self._outbox.extendleft(reversed(keep))

    # ------------------------------------------------------------------ sending
    def send(self, deadline: float) -> bool:
        """Send the outbox and, with a spool, every batch waiting on disk, until ``deadline`` (monotonic).
        True when nothing is left undelivered."""
        if not self._send_lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            return False  # another sender holds it until its own deadline: the entries wait their turn
        try:
            return self._send(deadline)
        except Exception as exc:  # a spool file operation: what is on disk stays there for the next send
            self._spool_error(exc)  # never out of send(): one exporter's trouble stops no other's
            return False
        finally:
            self._in_flight = []
            self._send_lock.release()

    def send_soon(self) -> None:
        """Send in the background, until the retry deadline: the reader thread hands its minute's entries
        over and goes on draining, so a stalled endpoint never stops aggregation (``record()`` would drop
        at the inbox limit). One sender thread per exporter, started on first use (after a fork too)."""
        with self._lock:
            if self._abandoned:
                return
            if self._sender is None or not self._sender.is_alive():
                sender = threading.Thread(target=self._send_loop, name="langflow-cms-sender", daemon=True)
                self._sender = sender
                sender.start()
        self._wake.set()

    def _send_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._abandoned:
                return
            try:
                self.send(time.monotonic() + self.config.retry_deadline)
            except Exception:  # the thread must survive anything, or delivery silently stops
                log.exception("langflow-cms: sending failed")

    def final_send(self) -> None:
        """At close, before the last send: the rate limiter's burst (``RateLimiter.final_burst``)."""
        self.closing = True
        if self._transport is not None:
            self._transport.limiter.final_burst()
        else:
            self._final_burst = True

    def stop_by(self, deadline: float) -> None:
        """At close: a send from memory, one already under way on another thread included, stops trying
        by ``deadline`` (a call in flight ends within its own timeout); a send from the spool goes on while
        the process lives (its entries are on disk either way)."""
        self._stop_at = min(self._stop_at, deadline)  # a second close brings it forward, never back

    def check_spool(self) -> None:
        """At close, before the health counters are taken: a spool that cannot take data now is counted
        (and said once), even in a run too short for a cycle; its writes at close would fail the same way."""
        if self.spool is None:
            return
        try:
            self.spool.probe()
        except OSError as exc:
            self._spool_error(exc)

    def _spool_error(self, exc: Exception) -> None:
        """A failing spool operation: one ERROR line per kind of error while it lasts (then DEBUG)."""
        if volume_full(exc, self.spool.directory if self.spool else "-"):
            return
        key = (type(exc).__name__, getattr(exc, "errno", None))
        level = logging.DEBUG if key in self._spool_errors else logging.ERROR
        self._spool_errors.add(key)
        log.log(level, "langflow-cms: spool %s: %s", self.spool.directory if self.spool else "-", exc)

    def _send(self, deadline: float) -> bool:
        pending = self._take()
        if self.spool is None:
            return self._deliver(pending, None, deadline)
        try:
            if pending:
                self.spool.write(pending)  # write-ahead: on disk before it is on the wire
        except OSError as exc:
            self._spool_error(exc)
            return self._deliver(pending, None, deadline)  # memory only: sent now, or kept in the outbox
        delivered = True
        for path in self.spool.pending():
            if time.monotonic() >= deadline:
                delivered = False
                break
            delivered = self._deliver(self.spool.read(path), path, deadline) and delivered
            if not delivered and self.outage.failing_since is not None:
                break  # the endpoint is failing: the rest waits for the next cycle
        self.spooled = 0 if delivered else self.spool.entries()
        return delivered

    def _deliver(self, entries: list[Entry], path: Path | None, deadline: float) -> bool:
        """Send ``entries`` in batches, metrics first, then events; with a spool file, shrink it as batches
        arrive. False on failure."""
        # the aggregates that carry the counts first, then sampled raw points (fleet), then events
        metrics = sorted((e for e in entries if not is_event(e)), key=lambda e: e.get("Type") != "1")
        entries = metrics + [e for e in entries if is_event(e)]
        done = 0
        shrink = path is not None
        for batch in [*batches(metrics), *batches(entries[len(metrics) :])]:
            if path is None:
                self._in_flight = entries[done:]
            try:
                if path is None:  # from memory: close() has counted them once its deadline has passed
                    deadline = min(deadline, self._stop_at)
                self._transport_or_raise().put_with_retry(batch, deadline, self._count_retry)
            except CmsError as exc:
                self._failed(entries[done:], exc, path)
                return False
            done += len(batch)
            self.stats["events_sent" if is_event(batch[0]) else "sent"] += len(batch)
            self.stats["calls"] += 1
            self.misconfigured = None
            self.last_success = time.time()
            self.outage.recovered(self.stats["sent"])
            if shrink and not self._shrink(path, entries[done:]):  # type: ignore[arg-type]
                return True  # another process took the file: the rest is theirs to send
            shrink = shrink and self._shrunk
        if path is not None and not shrink:
            path.unlink(missing_ok=True)  # every entry arrived (removing a file needs no free space)
        return True

    def _shrink(self, path: Path, left: list[Entry]) -> bool:
        """Keep only ``left`` in ``path``; on a full disk leave the file whole (``_shrunk`` False: it is
        removed once all of it arrived, and a kill before that resends the same values for the same keys).
        False when the file is gone."""
        self._shrunk = True
        try:
            return self.spool.rewrite(path, left)  # type: ignore[union-attr]
        except OSError as exc:
            self._spool_error(exc)
            self._shrunk = False
            return True

    def _failed(self, undelivered: list[Entry], exc: CmsError, path: Path | None) -> None:
        """Keep what a later cycle (or, spooled, a later process) may deliver; count the rest."""
        self.last_error = str(exc)
        lost = 0
        if exc.keeps:  # half a key pair: nothing CMS said about the data; kept until the key is fixed
            self.misconfigured = exc
        if exc.keeps and path is not None:
            outcome = f"{len(undelivered)} entries kept in the spool {self.spool.directory} until it is fixed"  # type: ignore[union-attr]
        elif exc.keeps:
            self._requeue(undelivered)
            outcome = f"{len(undelivered)} entries kept in memory until it is fixed"
        elif path is not None and not exc.retryable:
            self.spool.dead_letter(path, str(exc))  # type: ignore[union-attr]
            self.stats["failed"] += len(undelivered)
            outcome, lost = (
                f"{len(undelivered)} entries moved to {self.spool.directory}/dead",
                len(undelivered),
            )  # type: ignore[union-attr]
        elif path is not None:
            outcome = f"{len(undelivered)} entries kept in the spool {self.spool.directory}"  # type: ignore[union-attr]
        elif exc.retryable:
            self._requeue(undelivered)  # at close, abandon() then spools or counts them
            outcome = f"{len(undelivered)} entries kept in memory for the next attempt"
        else:
            self.stats["failed"] += len(undelivered)
            outcome, lost = f"{len(undelivered)} entries dropped", len(undelivered)
        self.outage.failed(exc, outcome, lost)

    def _count_retry(self, exc: CmsError) -> None:
        self.stats["retries"] += 1
        self.last_error = str(exc)

    def _transport_or_raise(self) -> Transport:
        """The transport; a credential source that cannot be set up is a CmsError like any failed call."""
        try:
            return self.transport()
        except CredentialError as exc:
            raise credential_failure(exc) from None

    def transport(self) -> Transport:
        if self._transport is None:
            if self._credentials is None:
                from langflow_cms.credentials import credential_provider

                self._credentials = credential_provider(dev=self.config.dev)
            self._transport = Transport(self.config, self._credentials)
            if self._final_burst:
                self._transport.limiter.final_burst()
        return self._transport

    def abandon(self) -> int:
        """At close, after the deadline: what is still in memory goes to the spool, else it is dropped,
        counted, and named in one log line. Returns how many entries were lost."""
        left = self._take()
        self._abandoned = True
        self._wake.set()  # the sender thread ends
        in_flight = list(self._in_flight) if self._send_lock.locked() else []
        lost = left + in_flight  # in flight: taken from memory by a send on another thread, not on disk
        if self.misconfigured is not None:
            return self._abandon_misconfigured(lost)
        if not lost:
            return 0
        advice = "set LANGFLOW_CMS_SPOOL_DIR to keep them, or raise LANGFLOW_CMS_EXIT_TIMEOUT"
        if self.spool is not None:
            try:
                self.spool.write(lost)
                self.spooled = self.spool.entries()
                log.warning(
                    "langflow-cms: %d entries not delivered to %s before the exit deadline: spooled in %s",
                    len(lost),
                    self.config.endpoint,
                    self.spool.directory,
                )
                return 0
            except OSError as exc:
                self._spool_error(exc)
                advice = f"the spool {self.spool.directory} could not take them"
        reason = "spool_full" if self.spool is not None else "exit_deadline"
        self.stats[f"dropped:{reason}"] += len(lost)
        log.warning(
            "langflow-cms: %d entries not delivered to %s before the exit deadline (%s)%s: dropped; %s",
            len(lost),
            self.config.endpoint,
            self.last_error or "no answer in time",
            f" ({len(in_flight)} of them in flight on another thread: they may still arrive)"
            if in_flight
            else "",
            advice,
        )
        return len(lost)

    def _abandon_misconfigured(self, left: list[Entry]) -> int:
        """At close, with a credential configuration that is wrong: what this process could not send is
        counted as failed, kept in the spool if there is one, and said in one line."""
        kept = False
        if self.spool is not None:
            try:
                if left:
                    self.spool.write(left)
                kept = True
            except OSError as exc:
                self._spool_error(exc)
        undelivered = len(left) + (self.spool.own_entries() if kept else 0)  # type: ignore[union-attr]
        self.stats["failed"] += undelivered
        log.error(
            "langflow-cms: %d entries could not be sent to %s (%s, said above): %s",
            undelivered,
            self.config.endpoint,
            self.misconfigured.code,
            f"kept in the spool {self.spool.directory}: they are sent once the credential is fixed"  # type: ignore[union-attr]
            if kept
            else "dropped (set LANGFLOW_CMS_SPOOL_DIR to keep them until the credential is fixed)",
        )
        return 0 if kept else len(left)

    def health(self) -> dict[str, Any]:
        dropped = sum(v for k, v in self.stats.items() if k.startswith("dropped:"))
        return {
            "sent": self.stats["sent"],
            "events_sent": self.stats["events_sent"],
            "calls": self.stats["calls"],
            "retries": self.stats["retries"],
            "failed": self.stats["failed"],
            "dropped": dropped + (self.spool.dropped if self.spool else 0),
            "queued": len(self._outbox),
            "spooled": self.spooled,
            "last_success": self.last_success,
            "last_error": self.last_error,
        }
