"""The storage behind ``record()``: series, the inbox, and one locked ``collect()``.

Modelled on the OpenTelemetry SDK's ``MetricReaderStorage`` and prometheus_client's labelled children:

* ``Scope.record()`` (the hot path, any thread) finds the series in a dict keyed by exactly what the caller
  passed, checks the value and appends ``(series, value, wall time)`` to a deque. No lock, no I/O, nothing
  that can raise. Past ``INBOX_LIMIT`` values are dropped and counted: the caller never aggregates a backlog.
* ``Storage.collect()`` (the reader thread, ``flush()``, ``close()``) is the only code that aggregates, and
  it runs under one lock: two collectors can never interleave, so no window is sealed twice or half.
  It drains the inbox (each value into the 60 s window of the moment it was recorded), seals the windows
  that have ended, merges them into their 300 s windows, evicts series idle for two windows, and returns the
  sealed windows.

Windows are keyed by the wall-clock minute each value was recorded in (``clock.wall()``). A value for a
minute older than its series' open window (drained after that minute's cycle, or recorded after the wall
clock stepped back) goes into a window of its own for that minute, sealed by the next collection: the
delivery path sends it with what was sealed for that key before (``pipeline.window.Ledger``, or the host
journal's merge), so CMS's last write for a key carries everything. A backward step seals every open window
at once (see ``collect``); a forward step seals them at the next collection.

Cardinality recovers: the cap counts series that are registered now, and a series with no value in the
current and previous window is evicted once its last window is sealed. Past the cap a new series keeps
``flow`` and ``status`` and folds its other dimensions into ``cms_overflow=true``; past the cap on metric
names a new name is dropped. Every fold and drop is counted.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from langflow_cms import clock as _clock
from langflow_cms import contract
from langflow_cms.naming import as_number, check_metric_name, clean_dimensions
from langflow_cms.pipeline.window import BASE_PERIOD, Rollup, Window, combine

log = logging.getLogger("langflow_cms")


_pause_lock = threading.Lock()
_pauses = 0
_we_disabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a collection runs. A collection of 100,000 series creates
    hundreds of thousands of short-lived objects (sealed windows and their sketches); each few hundred of
    them would start a collector pass, and their survivors would soon start a full pass over every object of
    the process (each pass stops every thread, a ``record()`` on the flow's path included). They hold no
    cycles; whatever the process allocated meanwhile is collected by the next pass after it.

    Pauses may overlap (a collection on the reporter thread, a close on another): a counter under a lock
    makes the first one switch the collector off, only if it was on, and the last one to end switch it back
    on, only if it is still off (an application that switched it on meanwhile keeps its choice). An
    application that switches it off itself while a pause runs cannot be told apart (``gc.disable()`` on a
    stopped collector leaves no trace), so a pause is as short as one collection."""
    global _pauses, _we_disabled
    with _pause_lock:
        if _pauses == 0:
            _we_disabled = gc.isenabled()
            if _we_disabled:
                gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _we_disabled:
                _we_disabled = False
                if not gc.isenabled():
                    gc.enable()


INBOX_LIMIT = 100_000
"""Observations waiting for the reporter thread (~10 MB); past this new ones are dropped and counted."""
CACHE_LIMIT = 100_000
"""Entries of each scope's lookup cache; past it new keys are resolved on every call (still correct)."""
IDLE_WINDOWS = 2
"""A series with no value for this many collected windows is evicted after its last window is sealed."""
EVICT_BATCH = 256
"""Idle series removed per hold of the registry lock (``record()`` of a new series waits at most this)."""
CLOCK_STEP_S = 2.0
"""A wall clock that goes back by more than this between two collections is a step, not jitter."""


_QUOTED_OR_NUMBER = re.compile(r"'[^']*'?|\"[^\"]*\"?|\d+")


def _describe(thing: object, limit: int = 80) -> str:
    """``str(thing)``, at most ``limit`` characters, or its type's name when even that raises."""
    try:
        return str(thing)[:limit]
    except Exception:
        return f"<{type(thing).__name__} that cannot be shown>"


class Series:
    """One (scope, metric name, dimensions) and its open 60 s window. Only ``collect`` touches the window."""

    __slots__ = (
        "cache_keys",
        "dimensions",
        "end",
        "evicted",
        "folded",
        "last_active",
        "name",
        "scope",
        "window",
    )

    def __init__(
        self, scope: Scope, name: str, dimensions: tuple[tuple[str, str], ...], folded: bool
    ) -> None:
        self.scope = scope
        self.name = name
        self.dimensions = dimensions
        self.folded = folded
        self.window: Window | None = None
        self.end = 0.0
        self.last_active = 0
        self.evicted = False
        self.cache_keys: list[Any] = []


class Scope:
    """One delivery path's view of the storage: ``record``/``series``/``observe`` for its series.

    The process's own scope has id ``""``; a CMS Metric node with its own AccessKey gets a scope of its own,
    so its flow's metrics are stored, counted and delivered apart and can never reach another account.
    """

    def __init__(self, storage: Storage, scope_id: str, common: Mapping[str, str]) -> None:
        self.id = scope_id
        self.storage = storage
        self.common = dict(common)
        self._cache: dict[Any, Series] = {}
        self.fleet: Any = None
        """The scope's fleet stream (``pipeline.fleet.FleetStream``), or None when it is off."""
        self.events: Any = None
        """The scope's failure events (``events.EventStream``), or None when they are off."""
        self.streaks: Any = None
        """The scope's slow-run streaks (``pipeline.fleet.SlowStreaks``), with the fleet stream."""

    # ------------------------------------------------------------------ hot path
    def record(self, name: str, value: float, dimensions: Mapping[str, str] | None = None) -> None:
        """Add one observation. Never raises, never blocks; a bad value is dropped and counted."""
        try:
            series = self._cache[(name, *dimensions.items()) if dimensions else name]
        except Exception:
            series = self._resolve(name, dimensions)
            if series is None:
                return
        if type(value) is not float:
            value = as_number(value)  # type: ignore[assignment]
            if value is None:
                self.storage.reject(name, "value is not a finite number")
                return
        elif value - value != 0.0:
            self.storage.reject(name, "value is NaN or infinite")
            return
        inbox = self.storage.inbox
        if len(inbox) >= self.storage.inbox_items:
            self.storage.refuse()
            return
        inbox.extend((series, value, _clock.wall()))  # flat: see Storage.inbox

    def series(self, name: str, dimensions: Mapping[str, str] | None = None) -> Series | None:
        """A bound series, like prometheus_client's ``labels()`` child: validated once, then each
        ``observe(series, value)`` is a single append. None (counted, logged once) if invalid."""
        return self._resolve(name, dimensions)

    def observe(self, series: Series, value: float) -> None:
        """``record()`` for a series from ``series()``: the same checks, never raises."""
        try:
            if series.scope is not self:  # bound by another reporter or before a fork: re-resolve
                self.record(series.name, value, dict(series.dimensions))
                return
        except Exception:
            self.storage.reject(_describe(series), "not a series from series()")
            return
        if type(value) is not float:
            value = as_number(value)  # type: ignore[assignment]
            if value is None:
                self.storage.reject(series.name, "value is not a finite number")
                return
        elif value - value != 0.0:
            self.storage.reject(series.name, "value is NaN or infinite")
            return
        inbox = self.storage.inbox
        if len(inbox) >= self.storage.inbox_items:
            self.storage.refuse()
            return
        inbox.extend((series, value, _clock.wall()))  # flat: see Storage.inbox

    # ------------------------------------------------------------------ slow path
    def _resolve(self, name: str, dimensions: Mapping[str, str] | None) -> Series | None:
        try:
            check_metric_name(name)
            dims = clean_dimensions(dimensions, self.common)
        except Exception as exc:  # any hostile object (a __str__ or items() that raises) is a bad input
            self.storage.reject(name, _describe(exc, 300))
            return None
        series = self.storage.register(self, name, dims)
        if series is None or series.folded:
            return series  # folded lookups are not cached, so they recover when the cap frees up
        try:
            # Only str values are cached: 1, 1.0 and True are equal dict keys but clean to different values.
            if len(self._cache) < CACHE_LIMIT and (
                not dimensions or all(type(v) is str for v in dimensions.values())
            ):
                key = (name, *dimensions.items()) if dimensions else name
                if self._cache.get(key) is not series:  # series() again and again must not grow anything
                    self._cache[key] = series
                    series.cache_keys.append(key)
        except Exception:
            pass  # an unhashable (or hostile) dimension value: correct, just not cached
        return series

    def forget(self, series: Series) -> None:
        for key in series.cache_keys:
            self._cache.pop(key, None)
        series.cache_keys.clear()


class Storage:
    """Every series of one reporter, the shared inbox, and the locked ``collect``."""

    def __init__(
        self,
        *,
        max_series_per_metric: int,
        max_metrics: int,
        periods: tuple[int, ...] = contract.PERIODS,
        inbox_limit: int = INBOX_LIMIT,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.max_series = max_series_per_metric
        self.max_metrics = max_metrics
        self.inbox: deque[Series | float] = deque()
        """Observations waiting for the collector, flat: series, value, time, series, value, time, … One
        ``extend`` of a 3-tuple appends a triple at once (C code under the GIL), and the tuple is freed at
        once, so a waiting observation keeps no object the garbage collector tracks and ``record()`` adds
        nothing to its count (a tuple per observation made every 700th call start a collection, now and then
        a full one)."""
        self.inbox_limit = inbox_limit
        self.closed = False
        self.clock = clock or _clock.now
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._warned: set[str] = set()
        self._lock = threading.Lock()  # the registry (any thread)
        self._collect_lock = threading.Lock()  # aggregation (one collector at a time)
        self._series: dict[tuple, Series] = {}
        self._per_metric: Counter[tuple[str, str]] = Counter()
        self._rollup = Rollup(periods)
        self._collections = 0
        self._pending: list[Window] = []
        """Windows a value rolled over between two collections (``drain``), returned by the next one."""
        self._late: dict[tuple, Window] = {}
        """Values for a minute older than their series' open window, sealed by the next collection."""
        self._last_now = 0.0

    @property
    def inbox_limit(self) -> int:
        """Observations the inbox holds at most; past it they are dropped and counted."""
        return self.inbox_items // 3

    @inbox_limit.setter
    def inbox_limit(self, limit: int) -> None:
        self.inbox_items = 3 * limit

    def waiting(self) -> int:
        """Observations in the inbox."""
        return len(self.inbox) // 3

    # ------------------------------------------------------------------ counting
    def count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def reject(self, name: object, why: str, reason: str = "") -> None:
        """An observation dropped as invalid; ``reason`` (a short snake_case word) becomes the ``reason``
        dimension of ``langflow_cms_invalid``. One log line per cause, bounded in length."""
        self.count(f"invalid:{reason}" if reason else "invalid")
        shown = name[:80] if type(name) is str else _describe(name)
        cause = _QUOTED_OR_NUMBER.sub("…", why)[:120]  # one line per cause, not per name or value
        message = f"dropped an observation of {shown!r}: {why[:300]} (further ones like it: counted only)"
        self.warn_once(f"invalid:{cause}", message)

    def refuse(self) -> None:
        """An observation arrived that the inbox cannot take: after close, or while it is full."""
        reason = "after_close" if self.closed else "inbox_full"
        self.count(f"dropped:{reason}")
        self.warn_once(
            f"refused:{reason}",
            "record() after close(): the observation was dropped"
            if self.closed
            else f"more than {self.inbox_limit} observations waiting: new ones are dropped (and counted)",
        )

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned and len(self._warned) < 1000:
            self._warned.add(key)
            log.warning("langflow-cms: %s", message)

    # ------------------------------------------------------------------ registry
    def register(self, scope: Scope, name: str, dims: tuple[tuple[str, str], ...]) -> Series | None:
        """The series for (scope, name, dims), created under the caps; None if the name cap refuses it."""
        with self._lock:
            return self._register(scope, name, dims)

    def _register(self, scope: Scope, name: str, dims: tuple[tuple[str, str], ...]) -> Series | None:
        key = (scope.id, name, dims)
        series = self._series.get(key)
        if series is not None:
            return series
        metric = (scope.id, name)
        if (
            not self._per_metric[metric]
            and len(self._per_metric) >= self.max_metrics
            and not name.startswith(contract.HEALTH_PREFIX)
        ):
            self.count("dropped:metric_cap")
            self.warn_once(  # one line for the cause, not one per name
                "metric_cap",
                f"more than {self.max_metrics} metric names: {name} and every further new name are dropped "
                "and counted (LANGFLOW_CMS_MAX_METRICS)",
            )
            return None
        folded = False
        if self._per_metric[metric] >= self.max_series:
            folded = True
            kept = dict(scope.common)
            kept.update((k, v) for k, v in dims if k in contract.KEPT_ON_OVERFLOW)
            kept[contract.OVERFLOW] = "true"
            dims = tuple(sorted(kept.items()))
            key = (scope.id, name, dims)
            series = self._series.get(key)
            self.warn_once(
                f"overflow:{name}",
                f"metric {name} has more than {self.max_series} dimension sets: further ones keep flow and "
                "status and fold the rest into cms_overflow=true (LANGFLOW_CMS_MAX_SERIES)",
            )
            if series is not None:
                return series
        series = self._series[key] = Series(scope, name, dims, folded)
        series.last_active = self._collections
        self._per_metric[metric] += 1
        return series

    def _revive(self, series: Series) -> Series | None:
        """A value for an evicted series (a bound handle): register it again, under the caps."""
        with self._lock:
            key = (series.scope.id, series.name, series.dimensions)
            current = self._series.get(key)
            if current is not None:
                return current
            metric = (series.scope.id, series.name)
            if self._per_metric[metric] < self.max_series and (
                self._per_metric[metric] or len(self._per_metric) < self.max_metrics
            ):
                self._series[key] = series
                series.evicted = False
                self._per_metric[metric] += 1
                return series
            return self._register(series.scope, series.name, series.dimensions)

    def _evict_idle(self, candidates: list[Series]) -> None:
        """Forget series that saw no value for IDLE_WINDOWS collections and have no open window.

        ``candidates`` were found by ``collect``'s own pass over the series, without the registry lock;
        they are removed in small batches, each under the lock and checked again, so a ``record()`` of a
        new series never waits for a scan of every series (200,000 of them took 313 ms)."""
        horizon = self._collections - IDLE_WINDOWS
        while candidates:  # taken off the list batch by batch: freeing 200,000 at once holds the GIL
            batch = candidates[-EVICT_BATCH:]
            del candidates[-EVICT_BATCH:]
            with self._lock:
                for series in batch:
                    if series.evicted or series.window is not None or series.last_active > horizon:
                        continue
                    key = (series.scope.id, series.name, series.dimensions)
                    if self._series.get(key) is not series:
                        continue
                    del self._series[key]
                    series.evicted = True
                    series.scope.forget(series)
                    metric = (key[0], key[1])
                    self._per_metric[metric] -= 1
                    if self._per_metric[metric] <= 0:
                        del self._per_metric[metric]
            del batch
            time.sleep(0)  # a record() waiting for the lock gets it now (locks are not fair)

    def series_count(self) -> int:
        return len(self._series)

    # ------------------------------------------------------------------ collection
    def collect(self, now: float | None = None, *, force: bool = False) -> list[Window]:
        """Aggregate what is queued, seal the windows that have ended (all with ``force``), roll them up,
        evict idle series, and return the sealed 60 s windows and the released 300 s ones.

        The only code that aggregates; one collector at a time. A failure in one series is counted and
        never costs the others.
        """
        with self._collect_lock, gc_paused():
            now = self.clock() if now is None else now
            stepped = now < self._last_now - CLOCK_STEP_S
            if stepped:
                self.count("clock_steps")
                log.warning(
                    "langflow-cms: the wall clock went back %.0f s; open windows are sealed now, values of "
                    "the repeated minutes are sent together with what those minutes already had",
                    self._last_now - now,
                )
            self._last_now = now
            sealed: list[Window] = []
            self._drain(sealed)
            self._collections += 1
            idle: list[Series] = []
            horizon = self._collections - IDLE_WINDOWS
            for series in list(self._series.values()):
                window = series.window
                if window is not None and (force or stepped or now >= series.end):
                    sealed.append(window)
                    series.window, series.end = None, 0.0
                elif window is None and series.last_active <= horizon:
                    idle.append(series)
            sealed += self._late.values()
            self._late = {}
            sealed = combine(sealed)  # one window per key: two writes of a key in one call would race
            released = self._release(sealed, now, force or stepped)
            self._evict_idle(idle)
            return sealed + released

    def drain(self) -> None:
        """Aggregate what is queued now (the reader thread, once a second)."""
        with self._collect_lock:
            self._drain(self._pending)

    def _drain(self, sealed: list[Window]) -> None:
        if self._pending and sealed is not self._pending:
            sealed.extend(self._pending)
            self._pending = []
        inbox = self.inbox
        late = self._late
        active = self._collections
        folded = 0
        take = inbox.popleft
        left = len(inbox)  # items, not triples: what appends add meanwhile waits for the next drain
        while left >= 3:
            try:
                series = take()
                left -= 1
                if not isinstance(series, Series):
                    continue  # a drain interrupted between two pops left a part: realign on the next series
                value, when = take(), take()
                left -= 2
            except IndexError:
                break
            try:
                if series.evicted:
                    revived = self._revive(series)
                    if revived is None:
                        continue
                    series = revived
                window = series.window
                if when >= series.end:
                    if window is not None:
                        sealed.append(window)
                    start = int(when // BASE_PERIOD) * BASE_PERIOD
                    window = series.window = Window(
                        series.name, series.dimensions, start, BASE_PERIOD, series.scope.id
                    )
                    series.end = start + BASE_PERIOD
                elif when < series.end - BASE_PERIOD:  # an older minute: never into the open window
                    start = int(when // BASE_PERIOD) * BASE_PERIOD
                    key = (series, start)
                    window = late.get(key)
                    if window is None:
                        window = late[key] = Window(
                            series.name, series.dimensions, start, BASE_PERIOD, series.scope.id
                        )
                window.add(value)  # type: ignore[union-attr]
                series.last_active = active
                if series.folded:
                    folded += 1
            except Exception as exc:  # one broken series must never cost the others
                self.reject(getattr(series, "name", "?"), f"could not be aggregated: {exc!r}")
        if folded:
            self.count("folded", folded)

    def _release(self, sealed: list[Window], now: float, force: bool) -> list[Window]:
        for window in sealed:
            try:
                self._rollup.add(window)
            except Exception as exc:
                self.reject(window.name, f"could not be rolled up: {exc!r}")
        return self._rollup.due(now, force)

    def open_rollups(self) -> list[Window]:
        """The 300 s windows still open (merged from sealed 60 s ones), for the spool's snapshot."""
        with self._collect_lock:
            return self._rollup.open_windows()

    def close(self) -> None:
        """No more observations: later ``record()`` calls are dropped and counted."""
        self.closed = True
        self.inbox_limit = 0
