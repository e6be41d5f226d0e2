"""The reporter: a thin facade over the storage, the reader thread and one exporter per credential identity.

::

    record(name, value, dims)           Scope (pipeline/storage.py): cached series, one append, never raises
        │ inbox
    Reader thread (this module)         drains once a second; each minute: collect → encode → send
        │ sealed 60 s and 300 s windows
    Storage.collect()                   the one locked aggregation (pipeline/storage.py)
        │ entries (delivery/serializer.py)
    Exporter per credential identity    outbox → spool → transport, hard deadlines (delivery/)

Merging per host, the process's own windows go to the host journal and the elected sender sends them
merged (``delivery/host.py``, which also snapshots open windows and adopts what killed processes left).

``flush()`` and ``close()`` go through the same locked ``collect`` and the same exporters as the thread, so
they can be called from any thread at any time. ``close(timeout)`` returns by ``timeout`` + 0.5 s whatever
the endpoint does. After ``fork()`` the child starts empty with its own instance, locks and thread, and
delivers what it recorded when it exits through ``multiprocessing`` (whose children skip ``atexit``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import secrets
import threading
import time
import weakref
from collections import Counter
from collections.abc import Mapping
from typing import Any

from langflow_cms import clock, contract
from langflow_cms.config import Config, default_instance, host_instance
from langflow_cms.credentials import Credential, CredentialError, CredentialProvider, credential_provider
from langflow_cms.delivery import spool as spools
from langflow_cms.delivery.exporter import Exporter
from langflow_cms.delivery.host import HostMerge, open_journal
from langflow_cms.delivery.journal import CHUNK, GRACE_S, past
from langflow_cms.delivery.serializer import aggregate_entry
from langflow_cms.events import EventStream
from langflow_cms.pipeline.fleet import FleetStream, SlowStreaks
from langflow_cms.pipeline.pause import release
from langflow_cms.pipeline.raw import RawScope
from langflow_cms.pipeline.storage import Scope, Series, Storage, gc_paused
from langflow_cms.pipeline.window import Ledger, Window
from langflow_cms.redact import mask_key_id, register_secret

log = logging.getLogger("langflow_cms")

DRAIN_INTERVAL = 1.0
"""Seconds between the reader thread's aggregation passes."""
MAX_SCOPES = 16
"""Distinct canvas credentials (CMS Metric nodes with their own AccessKey) one process delivers for."""
CLOSE_SLACK_S = 0.5
FILE_RESERVE_S = 0.3
"""At close, the part of the budget the file work (snapshot, journal, merge, spool batches) leaves over."""
HEALTH_PREFIX = contract.HEALTH_PREFIX


def credential_identity(credential: Credential) -> str:
    """A short, stable, non-reversible id of a key pair (spool folders and logs name this, never the key)."""
    digest = hashlib.sha256(
        f"{credential.access_key_id}\0{credential.access_key_secret}".encode()
    ).hexdigest()
    return f"k{digest[:12]}"


class Reporter:
    """Aggregates observations per series and window and delivers them to CMS in the background."""

    def __init__(
        self, config: Config, credentials: CredentialProvider | None = None, *, start: bool = True
    ) -> None:
        self.config = config
        self._process_credentials = credentials
        self._closed = False
        self._close_done = threading.Event()
        """Set when the first close() has ended: a second one (SIGTERM's closer) waits for it."""
        self._setup()
        try:
            self.host.adopt_orphans()  # file work only: what a killed process left is queued first
        except Exception as exc:  # never costs this process its reporting
            self.storage.warn_once("orphans", f"adopting dead processes' roll-up snapshots failed: {exc!r}")
        _live.add(self)
        if start:
            self._reader.start()

    def _setup(self) -> None:
        """Everything that belongs to one process (run again in a forked child)."""
        config = self.config
        self.owner = f"{os.getpid()}.{secrets.token_hex(4)}"  # this process start, in the spool
        self._spool_errors_before = spools.errors()  # the process's count so far: not this reporter's
        self.storage = Storage(
            max_series_per_metric=config.max_series_per_metric, max_metrics=config.max_metrics
        )
        credentials = self._process_credentials or self._credentials_from_environment()
        exporter = Exporter(
            config, credentials, label="process", spool_dir=config.spool_dir, owner=self.owner
        )
        self._exporters: dict[str, Exporter] = {"": exporter}
        self.journal = open_journal(config, self.owner) if config.merges_per_host and exporter.spool else None
        instance = config.instance
        if config.merges_per_host and instance == host_instance():  # the default, not the user's
            instance = self.journal.instance(instance) if self.journal else default_instance()
            self.config = config = dataclasses.replace(config, instance=instance)  # events, health, doctor
        # what this process sends itself (a CMS Metric node's own AccessKey) needs its own instance
        self.process_instance = default_instance() if self.journal else instance
        self.common = {contract.INSTANCE: instance}
        if config.env:
            self.common[contract.ENV] = config.env
        self.host = HostMerge(self.config, self.storage, exporter, self.journal, self.process_instance)
        self._scopes: dict[str, Scope] = {}
        self._scopes_lock = threading.Lock()
        self._default = self._make_scope("")
        self.record = self._default.record
        self.series = self._default.series
        self.observe = self._default.observe
        self.fleet = self._default.fleet
        self.events = self._default.events
        self.streaks = self._default.streaks
        self._health_reported: Counter[str] = Counter()
        self._ledger = Ledger()  # what this process sent itself, per key: a second write carries it all
        self._cycle_lock = threading.Lock()
        self._reader = Reader(self)

    def _make_scope(self, scope_id: str) -> Scope:
        scope: Scope
        if self.config.mode == "raw":
            scope = RawScope(
                self.storage,
                scope_id,
                self.common,
                sample_rate=self.config.sample_rate,
                group_id=self.config.group_id,
                sink=self._exporters[scope_id].enqueue_points,
            )
        else:
            common = (
                self.common if not scope_id else {**self.common, contract.INSTANCE: self.process_instance}
            )
            scope = Scope(self.storage, scope_id, common)
        if self.config.fleet:
            scope.fleet = FleetStream(
                budget_per_minute=self.config.fleet_budget,
                rate=self.config.fleet_rate,
                group_id=self.config.group_id,
                common={k: v for k, v in self.common.items() if k != contract.INSTANCE},
                sink=self._exporters[scope_id].enqueue_points,
            )
            scope.streaks = SlowStreaks(scope.fleet)
        if self.config.events:
            scope.events = EventStream(
                per_minute=self.config.events_per_minute,
                group_id=self.config.group_id,
                sink=self._exporters[scope_id].enqueue,
            )
        self._scopes[scope_id] = scope
        return scope

    def _credentials_from_environment(self) -> CredentialProvider | None:
        """Chosen when the reporter is created, not at the first send (which may be the exit flush);
        a half-configured source is reported by the first send instead, as a clear delivery error."""
        try:
            return credential_provider(dev=self.config.dev)
        except CredentialError:
            return None

    # ------------------------------------------------------------------ credential scopes
    def scope_for(self, credential: Credential) -> Scope | None:
        """The scope whose metrics are delivered with ``credential`` only (a CMS Metric node's AccessKey).

        Bounded (``MAX_SCOPES``): past it None, counted and logged: the flow's metrics are then dropped,
        never sent with another identity's key.
        """
        identity = credential_identity(credential)
        scope = self._scopes.get(identity)
        if scope is not None:
            return scope
        with self._scopes_lock:
            scope = self._scopes.get(identity)
            if scope is not None:
                return scope
            if len(self._scopes) > MAX_SCOPES:
                self.storage.count("dropped:scope_cap")
                self.storage.warn_once(
                    "scope_cap",
                    f"more than {MAX_SCOPES} different AccessKeys in CMS Metric nodes of this process: "
                    "metrics of flows with further keys are dropped",
                )
                return None
            register_secret(credential.access_key_secret)
            provider = credential_provider(credential, dev=self.config.dev)
            spool = self.config.spool_dir / "scopes" / identity if self.config.spool_dir else None
            label = f"CMS Metric node key {mask_key_id(credential.access_key_id)}"
            self._exporters[identity] = Exporter(
                self.config, provider, label=label, spool_dir=spool, owner=self.owner
            )
            return self._make_scope(identity)

    # ------------------------------------------------------------------ the cycle
    def _collect_and_hand_off(self) -> None:
        """Collect and hand the sealed windows on with the cyclic garbage collector paused, then drop them
        a few hundred at a time (``pipeline.pause``): at 200,000 series the windows of one minute would
        otherwise start collector passes, and freeing them in one statement would hold every ``record()``
        up for milliseconds (bench row 14 runs its collections this way)."""
        with gc_paused():
            sealed = self.storage.collect()
            self._hand_off(sealed)
        release(sealed)

    def _hand_off(self, sealed: list[Window]) -> None:
        """Sealed windows to delivery, the snapshot with them first: a kill during the hand-off loses none."""
        if sealed:
            self.host.snapshot(sealed)
        self._export(sealed)

    def _export(self, windows: list[Window]) -> None:
        """Encode sealed windows into entries of their scope's exporter (merging per host, the process's own
        windows go to the host journal instead: ``delivery/host.py``)."""
        self._encode(self.host.export(windows))

    def _encode(self, windows: list[Window], deadline: float | None = None) -> list[Window]:
        """Entries of each scope's exporter, on disk at once with a spool; returns the windows not encoded
        before ``deadline`` (monotonic)."""
        by_scope: dict[str, list[dict[str, str]]] = {}
        done = 0
        while done < len(windows) and not past(deadline):
            for window in windows[done : done + CHUNK]:
                try:
                    complete = self._ledger.complete(window)  # a minute written before: with what it had
                    entry = aggregate_entry(complete, self.config.group_id)
                    by_scope.setdefault(window.scope, []).append(entry)
                except (ValueError, OverflowError, TypeError) as exc:
                    self.storage.reject(window.name, f"window could not be encoded: {exc}")
            done += CHUNK
        for scope_id, entries in by_scope.items():
            exporter = self._exporters.get(scope_id)
            if exporter is not None and not exporter.persist(entries):  # with a spool: on disk at once
                exporter.enqueue(entries)
        return windows[done:]

    def _send_all(self, deadline: float) -> bool:
        self._adopt_setting()
        return all([exporter.send(deadline) for exporter in list(self._exporters.values())])

    def _send_soon(self) -> None:
        """The reader thread's send: handed to each exporter's sender thread, never waited for."""
        self._adopt_setting()
        for exporter in list(self._exporters.values()):
            exporter.send_soon()

    def _adopt_setting(self) -> None:
        spool = self._exporters[""].spool
        if self.journal is not None and spool is not None:
            spool.adopt = self.journal.elected  # one process replays the dead ones' files, in order

    def _flush_events(self, force: bool = False) -> None:
        """The streams' pending work: fleet points to encode, and the per-minute summaries (suppressed
        events, slow streaks) of the minutes that have ended."""
        for scope in list(self._scopes.values()):
            for stream in (scope.fleet, scope.events, scope.streaks):
                if stream is not None:
                    stream.flush(force=force)

    def cycle(self) -> None:
        """The minute's work (reader thread): health metrics, collect, hand off, snapshot, send."""
        with self._cycle_lock:
            self._record_health()
            self._collect_and_hand_off()
            self.host.send()
            self._flush_events()
            self.host.snapshot()
        self._send_soon()

    def host_tick(self) -> None:
        """Merging per host, ``GRACE_S`` after the minute's cycle (every process has sealed the minute by
        then): the sender (or, if it died, whoever is elected now) merges and sends the host's windows."""
        if self.journal is None or not self.journal.elect():
            return
        with self._cycle_lock:
            self.host.send()
        self._send_soon()

    def _record_health(self) -> None:
        """The reporter's own health as CMS metrics, so an alarm can watch the watcher.

        Counters are sent as the increase since the last report, gauges as they are. Only the periodic
        cycle reports them (not ``flush``/``close``), so short runs add no series of their own.
        """
        totals = self._counters()
        for key, total in totals.items():
            increase = total - self._health_reported[key]
            self._health_reported[key] = total
            name, _, reason = key.partition(":")
            if increase or not reason:
                dims = {contract.REASON: reason} if reason else None
                self.record(f"{HEALTH_PREFIX}{name}", increase, dims)
        health = self.health()
        if self.fleet is not None:
            self.record(f"{HEALTH_PREFIX}fleet_sample_rate", self.fleet.effective_rate)
        self.record(f"{HEALTH_PREFIX}queued", health["queued"])
        self.record(f"{HEALTH_PREFIX}spooled", health["spooled"])
        if health["last_success_age_s"] is not None and (self.journal is None or self.journal.elected):
            # merged per host, only the sender sends: the others' age would only say they are idle
            self.record(f"{HEALTH_PREFIX}last_success_age_s", health["last_success_age_s"])

    def _record_error_counters(self) -> None:
        """At close: the counters of mistakes (invalid, dropped, spool errors) that grew since the last
        report, so a short run (``lfx run`` from cron) that dropped something leaves a trace in CMS. A clean
        run adds none."""
        try:
            for key, total in self._counters().items():
                name, _, reason = key.partition(":")
                increase = total - self._health_reported[key]
                if increase and name in ("invalid", "dropped", "spool_errors"):
                    self._health_reported[key] = total
                    self.record(
                        f"{HEALTH_PREFIX}{name}", increase, {contract.REASON: reason} if reason else None
                    )
        except Exception:  # closing must go on
            log.exception("langflow-cms: could not record the error counters at close")

    def _counters(self) -> Counter[str]:
        totals: Counter[str] = Counter(
            {name: 0 for name in contract.HEALTH_COUNTERS if name not in ("dropped", "spool_errors")}
        )
        for reason, count in (spools.errors() - self._spool_errors_before).items():
            totals[f"spool_errors:{reason}"] += count
        for exporter in list(self._exporters.values()):
            for key, value in exporter.stats.items():
                if key in ("retries", "failed") or key.startswith("dropped:"):
                    totals[key] += value
            if exporter.spool is not None and exporter.spool.dropped:
                totals["dropped:spool_full"] += exporter.spool.dropped
        for key, value in self.storage.stats.items():
            if key in ("invalid", "folded") or key.startswith(("dropped:", "invalid:")):
                totals[key] += value
        return totals

    # ------------------------------------------------------------------ public API
    def flush(self, timeout: float = 30.0) -> bool:
        """Deliver every window that has ended; True when nothing is left undelivered. Any thread."""
        deadline = time.monotonic() + timeout
        with self._cycle_lock:
            self._collect_and_hand_off()
            self.host.send(force=True)  # what is known now; a later merge resends the complete windows
            self._flush_events()
            self.host.snapshot()
        return self._send_all(deadline)

    def close(self, timeout: float = 30.0) -> bool:
        """Seal the open windows and deliver everything, returning by ``timeout`` + 0.5 s at the latest.

        What cannot be delivered in time goes to the spool if there is one; otherwise it is counted as
        dropped and named in one log line. Later ``record()`` calls are dropped and counted.

        A close while another is under way (SIGTERM's closer while an exported script's ``finally`` closes)
        brings that close's deadline forward to its own and waits for it to end, so the process is not
        killed mid-delivery; what is still undelivered by then is spooled or counted and named.
        """
        if self._closed:
            return self._await_close(time.monotonic() + timeout)
        self._closed = True
        try:
            return self._close(time.monotonic() + timeout)
        finally:
            self._close_done.set()

    def _await_close(self, deadline: float) -> bool:
        exporters = list(self._exporters.values())
        if not self._close_done.is_set():
            for exporter in exporters:
                exporter.stop_by(deadline)
            if not self._close_done.wait(max(deadline - time.monotonic(), 0.0) + CLOSE_SLACK_S / 2):
                for exporter in exporters:
                    exporter.abandon()  # the process may end now: what is left is spooled or counted
        return not any(e.queued() for e in exporters)

    def _close(self, deadline: float) -> bool:
        for exporter in list(self._exporters.values()):
            exporter.check_spool()  # counted now, so a short run's unusable spool is in the counters
        self._record_error_counters()
        self.storage.close()
        self._reader.stop()
        # a cycle of the reporter thread under way (seconds at 100,000 series) ends first, but not later
        # than the deadline: then the open windows stay in memory and are lost, counted and named
        if self._cycle_lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            try:
                # the file work stops early enough to leave the send, the spooling of what is left and
                # the interpreter's own exit their share of the budget
                self._close_hand_off(deadline - min(FILE_RESERVE_S, self.config.exit_timeout / 4))
            finally:
                self._cycle_lock.release()
        else:
            self._lost_at_exit(self.storage.series_count(), "series whose last windows")
        exporters = list(self._exporters.values())
        for exporter in exporters:
            exporter.final_send()  # the calls left unused while idle may go at once
            exporter.stop_by(deadline)  # a send under way on the reporter thread stops by then too
        delivered = self._send_all(deadline)
        if self.journal is not None:
            with self._cycle_lock:  # no merge of the (stopped, not joined) reporter thread is under way
                self.journal.resign()  # after its send: the next closer's more complete windows go out later
        for exporter in exporters:
            exporter.abandon()
            if exporter.spool is not None:
                exporter.spool.close()  # what it left on disk is adopted by the next process
        return delivered

    def _close_hand_off(self, deadline: float) -> None:
        """The last windows, within the deadline: every file step looks at it between chunks of windows.
        With a spool, the snapshot of all of them goes first (one file: a later process adopts it, so what
        the steps after it leave undone is kept, never counted twice); without one, or if even that is
        late, the windows not handed on by the deadline are counted as dropped and named in one line."""
        with gc_paused():  # the process ends: no collector passes over 100,000 series' objects
            self._close_windows(deadline)

    def _close_windows(self, deadline: float) -> None:
        sealed = self.storage.collect(force=True)
        kept = bool(sealed) and self.host.snapshot(sealed, deadline)
        late = self._encode(self.host.export(sealed, deadline), deadline)
        if self.journal is not None:
            self.journal.leave()  # its last windows are in the journal: it adds to none any more
        # the last process of the host to close sends everything: it waits its turn as the sender
        self.host.send(force=True, wait=max(deadline - time.monotonic(), 0.0) * 0.6, deadline=deadline)
        self._flush_events(force=True)
        if late and kept:
            return  # the snapshot with the late windows stays: the next process on this spool adopts it
        if late:
            self._lost_at_exit(len(late), "windows")
        self.host.snapshot(deadline=deadline)

    def _lost_at_exit(self, count: int, what: str) -> None:
        self.storage.stats["dropped:exit_deadline"] += count
        advice = "raise LANGFLOW_CMS_EXIT_TIMEOUT"
        if not self.config.spool_dir:
            advice += " or set LANGFLOW_CMS_SPOOL_DIR"
        log.warning(
            "langflow-cms: %d %s could not be encoded or kept before the exit deadline "
            "(LANGFLOW_CMS_EXIT_TIMEOUT=%gs): dropped; %s",
            count,
            what,
            self.config.exit_timeout,
            advice,
        )

    def exit_timeout(self) -> float:
        """How long interpreter exit waits for delivery (``LANGFLOW_CMS_EXIT_TIMEOUT``)."""
        return self.config.exit_timeout

    def health(self) -> dict[str, Any]:
        """Counters for status displays and `doctor`: what was sent, dropped, retried or is waiting."""
        parts = [exporter.health() for exporter in list(self._exporters.values())]
        successes = [p["last_success"] for p in parts if p["last_success"] is not None]
        totals = self._counters()
        stats = self.storage.stats
        return {
            "enabled": True,
            "mode": self.config.mode,
            "endpoint": self.config.endpoint,
            "instance": self.config.instance,
            "series": self.storage.series_count(),
            "scopes": len(self._exporters) - 1,
            "queued": sum(p["queued"] for p in parts),
            "sent": sum(p["sent"] for p in parts),
            "events_sent": sum(p["events_sent"] for p in parts),
            "calls": sum(p["calls"] for p in parts),
            "retries": totals["retries"],
            "failed": totals["failed"],
            "dropped": sum(v for k, v in totals.items() if k.startswith("dropped:")),
            "spooled": sum(p["spooled"] for p in parts),
            "spool_errors": sum(v for k, v in totals.items() if k.startswith("spool_errors:")),
            "invalid": sum(v for k, v in list(stats.items()) if k == "invalid" or k.startswith("invalid:")),
            "folded": stats["folded"],
            "clock_steps": stats["clock_steps"],
            "last_success_age_s": round(time.time() - max(successes), 1) if successes else None,
            "last_error": next((p["last_error"] for p in parts if p["last_error"]), ""),
        }

    # ------------------------------------------------------------------ fork
    def _after_fork_in_child(self) -> None:
        """A forked child starts empty, with its own instance, locks, spool ownership and thread."""
        for exporter in self._exporters.values():
            if exporter.spool is not None:
                exporter.spool.release()
        if self.journal is not None:
            self.journal.forget()  # the sender lock stays the parent's
        if self._closed:
            self._close_done.set()  # a close under way at the fork goes on in the parent only
            return
        if not os.environ.get("LANGFLOW_CMS_INSTANCE") and not self.config.merges_per_host:
            self.config = dataclasses.replace(self.config, instance=default_instance())
        self._setup()
        self._reader.start()


class Reader:
    """Owns the reporter's daemon thread (OpenTelemetry's ``PeriodicExportingMetricReader`` is the model):
    drains once a second and runs the minute's cycle, scheduled on the monotonic clock."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="langflow-cms-reporter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    @staticmethod
    def until_boundary(wall: float | None = None) -> float:
        """Seconds to the next minute of the wall clock (+50 ms), bounded to [1, 61] s. The cycle itself is
        scheduled on the monotonic clock, so a wall-clock step can neither stall it nor make it spin."""
        wall = clock.wall() if wall is None else wall
        return min(max(60.0 - wall % 60.0 + 0.05, 1.0), 61.0)

    def _run(self) -> None:
        reporter = self._reporter
        try:  # delivery does not wait for traffic: what an earlier process left goes out now
            if reporter.journal is not None:
                reporter.journal.elect()  # merging per host: the sender replays; none yet? this one
            if reporter.config.spool_dir is not None:
                reporter._send_soon()
        except Exception:
            log.exception("langflow-cms: replaying the spool failed")
        next_cycle = time.monotonic() + self.until_boundary()
        boundary = clock.wall() // 60 * 60 + 60  # the wall-clock minute end the next cycle is for
        next_merge: float | None = None  # merging per host: the sender's merge, GRACE_S after the cycle
        while not self._stopped:
            self._wake.wait(min(DRAIN_INTERVAL, max(next_cycle - time.monotonic(), 0.0)))
            self._wake.clear()
            if self._stopped:
                return
            try:
                reporter.storage.drain()
                # a forward step of the wall clock past the boundary brings the cycle forward; a backward
                # one never delays it (the monotonic schedule)
                if time.monotonic() >= next_cycle or clock.wall() >= boundary:
                    next_cycle = time.monotonic() + self.until_boundary()
                    boundary = clock.wall() // 60 * 60 + 60
                    next_merge = time.monotonic() + GRACE_S + 1.0
                    reporter.cycle()
                elif next_merge is not None and time.monotonic() >= next_merge:
                    next_merge = None
                    reporter.host_tick()
            except Exception:  # the thread must survive anything, or monitoring silently stops
                log.exception("langflow-cms: reporter cycle failed")


DISABLED_REASON = "monitoring is switched off by LANGFLOW_CMS_ENABLED=false: nothing is recorded or sent"
"""The status of a NullReporter when ``LANGFLOW_CMS_ENABLED`` is false."""


class NullReporter:
    """What ``get_reporter()`` returns when reporting is off (``LANGFLOW_CMS_ENABLED=false``) or the
    configuration is invalid (``reason`` says which setting): the same API, doing nothing."""

    config = None

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason

    def record(self, name: str, value: float, dimensions: Mapping[str, str] | None = None) -> None:
        return None

    def series(self, name: str, dimensions: Mapping[str, str] | None = None) -> None:
        return None

    def observe(self, series: Series, value: float) -> None:
        return None

    def scope_for(self, credential: Credential) -> None:
        return None

    def flush(self, timeout: float = 30.0) -> bool:
        return True

    def close(self, timeout: float = 30.0) -> bool:
        return True

    def exit_timeout(self) -> float:
        return 0.0

    def health(self) -> dict[str, Any]:
        return {"enabled": False, "reason": self.reason or DISABLED_REASON}


_live: weakref.WeakSet[Reporter] = weakref.WeakSet()
