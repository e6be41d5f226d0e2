"""The storage behind ``record()``: series, the inbox, and one locked ``collect()``.

Modelled on the OpenTelemetry SDK's ``MetricReaderStorage`` and prometheus_client's labelled children:

* ``Scope.record()`` (the hot path, any thread, in ``pipeline.scope``) finds the series in a dict keyed by
  exactly what the caller passed, checks the value and appends ``(series, value, wall time)`` to a deque. No
  lock, no I/O, nothing that can raise. Past ``INBOX_LIMIT`` values are dropped and counted: the caller never
  aggregates a backlog.
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

import logging
import math
import re
import threading
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from langflow_cms import clock as _clock
from langflow_cms import contract
from langflow_cms.pipeline.pause import DRAIN_PACE_S, PACE_S, Pacer, gc_paused, pace
from langflow_cms.pipeline.scope import ROW_BITS, ROW_MASK, Scope, Series, _describe
from langflow_cms.pipeline.sketch import _MULTIPLIER, MIN_MAGNITUDE, bin_of
from langflow_cms.pipeline.window import (
    BASE_PERIOD,
    STATE_LIMIT,
    Rollup,
    Shards,
    Window,
    combine,
    fold_state,
    ident,
    new_state,
    pairs,
)

log = logging.getLogger("langflow_cms")


INBOX_LIMIT = 100_000
"""Observations waiting for the reporter thread (~10 MB); past this new ones are dropped and counted."""
IDLE_WINDOWS = 2
"""A series with no value for this many collected windows is evicted after its last window is sealed."""
EVICT_BATCH = 64
"""Idle series removed per hold of the registry lock (``record()`` of a new series waits at most this)."""
CLOCK_STEP_S = 2.0
"""A wall clock that goes back by more than this between two collections is a step, not jitter."""


_QUOTED_OR_NUMBER = re.compile(r"'[^']*'?|\"[^\"]*\"?|\d+")


class Storage:
    """Every series of one reporter, the shared inbox, and the locked ``collect``.

    Series are rows of columns (one list per field, indexed by a row number), so a live series holds no
    object the cyclic garbage collector tracks: its identity is a tuple of strings, its open window an exact
    dict of numbers (``window.new_state``), and everything else ints, floats and bools in lists. A full
    collector pass walks every tracked object of the process; at 200,000 series ten objects each made one
    pass take 1.5–3 s, inside whichever ``record()`` started it. A row's handle is ``generation << 32 | row``;
    an evicted row waits ``IDLE_WINDOWS`` collections before it is reused under a new generation, so a value
    queued with an old handle revives its own series or is dropped (counted), never lands in another one.
    """

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
        self.inbox: deque[int | Series | float] = deque()
        """Observations waiting for the collector, flat: handle, value, time, handle, value, time, … One
        ``extend`` of a 3-tuple appends a triple at once (C code under the GIL), and the tuple is freed at
        once, so a waiting observation keeps no object the garbage collector tracks and ``record()`` adds
        nothing to its count (a tuple per observation made every 700th call start a collection, now and then
        a full one). A handle is a row's int, or a bound ``Series`` from ``observe``."""
        self.inbox_limit = inbox_limit
        self.closed = False
        self.clock = clock or _clock.now
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._warned: set[str] = set()
        self._lock = threading.Lock()  # the registry (any thread)
        self._collect_lock = threading.Lock()  # aggregation (one collector at a time)
        self.scopes: dict[str, Scope] = {}
        self._series = Shards()
        """(scope id, name, dimensions) -> handle of the live series' row."""
        self._per_metric: Counter[tuple[str, str]] = Counter()
        # the columns, one entry per row
        self.handles: list[int] = []
        """The row's handle; minus it while the row is evicted and waits for reuse."""
        self.idents: list[tuple | None] = []
        self.folded: list[bool] = []
        self.cache_keys: list[Any] = []
        """The scope's lookup key of the row (a flat tuple or a name), a list of them if several, or None."""
        self.last_active: list[int] = []
        self.ends: list[float] = []
        """End of the open window (0.0: none)."""
        self.starts: list[int] = []
        self.states: list[dict | None] = []
        """The open window (``window.new_state``), or None."""
        self.previous: list[dict | None] = []
        """A window a value rolled over between two collections (``drain``), sealed by the next one."""
        self.previous_starts: list[int] = []
        self._free: list[int] = []
        self.evicted_at: list[int] = []
        """The collection that evicted the row (its handle is negative until it is reused or revived)."""
        self._evicted: dict[int, list[int]] = {}
        """Collection -> the rows it evicted; they are reused IDLE_WINDOWS collections later."""
        self._bound: dict[int, Series] = {}
        """handle -> the bound ``Series`` that ``series()`` returned (one per handle, only for those)."""
        self._rollup = Rollup(periods)
        self._collections = 0
        self._pending: list[Window] = []
        """Windows a value rolled over twice between two collections, returned by the next one."""
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
    def register(self, scope: Scope, name: str, dims: tuple[tuple[str, str], ...]) -> int | None:
        """The handle of the series (scope, name, dims), created under the caps; None if the name cap
        refuses it."""
        with self._lock:
            return self._register(scope, name, dims)

    def bind(self, handle: int, scope: Scope) -> Series:
        """The bound ``Series`` of a handle (the same object each time, like ``labels()``)."""
        with self._lock:
            series = self._bound.get(handle)
            if series is None:
                key = self.idents[handle & ROW_MASK]
                series = self._bound[handle] = Series(scope, key[1], pairs(key), handle)  # type: ignore[index,arg-type]
            return series

    def _register(self, scope: Scope, name: str, dims: tuple[tuple[str, str], ...]) -> int | None:
        key = ident(scope.id, name, dims)
        handle = self._series.get(key)
        if handle is not None:
            return handle
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
            key = ident(scope.id, name, dims)
            handle = self._series.get(key)
            self.warn_once(
                f"overflow:{name}",
                f"metric {name} has more than {self.max_series} dimension sets: further ones keep flow and "
                "status and fold the rest into cms_overflow=true (LANGFLOW_CMS_MAX_SERIES)",
            )
            if handle is not None:
                return handle
        self.scopes.setdefault(scope.id, scope)
        if self._free:
            row = self._free.pop()
            handle = self.handles[row]
            self.idents[row], self.folded[row], self.cache_keys[row] = key, folded, None
            self.last_active[row], self.ends[row], self.states[row] = self._collections, 0.0, None
            self.previous[row] = None
        else:
            row = handle = len(self.handles)
            if row > ROW_MASK:
                self.count("dropped:series_cap")
                return None
            self.handles.append(handle)
            self.idents.append(key)
            self.folded.append(folded)
            self.cache_keys.append(None)
            self.last_active.append(self._collections)
            self.ends.append(0.0)
            self.starts.append(0)
            self.states.append(None)
            self.previous.append(None)
            self.previous_starts.append(0)
            self.evicted_at.append(-1)
        self._series[key] = handle
        self._per_metric[metric] += 1
        return handle

    def _live(self, handle: int) -> int | None:
        """The live handle for a queued one: itself, its evicted row registered again, or another row of
        the same series; None if the series is refused now, or the row was reused (both counted)."""
        row = handle & ROW_MASK
        current = self.handles[row]
        if current == handle:
            return handle
        if current != -handle:  # the row was reused long after its eviction: the value cannot be placed
            self.count("dropped:stale")
            return None
        with self._lock:
            key = self.idents[row]
            live = self._series.get(key)  # type: ignore[arg-type]
            if live is not None:
                return live
            scope_id, name = key[0], key[1]  # type: ignore[index]
            metric = (scope_id, name)
            if self._per_metric[metric] < self.max_series and (
                self._per_metric[metric] or len(self._per_metric) < self.max_metrics
            ):
                self._series[key] = handle  # type: ignore[index]
                self.handles[row] = handle
                self._per_metric[metric] += 1
                return handle
            return self._register(self.scopes[scope_id], name, pairs(key))  # type: ignore[arg-type]

    def _handle_of(self, series: Series) -> int | None:
        """The live handle of a bound series (registered again if it was evicted)."""
        handle = series.handle
        row = handle & ROW_MASK
        if (
            row < len(self.handles)
            and abs(self.handles[row]) == handle
            and self.idents[row]
            == (
                series.scope.id,
                series.name,
                series.dimensions,
            )
        ):
            live = self._live(handle)
        else:
            live = self.register(series.scope, series.name, series.dimensions)
        if live is not None and live != handle:
            series.handle = live
            with self._lock:
                self._bound.pop(handle, None)
                self._bound.setdefault(live, series)
        return live

    def _evict_idle(self, candidates: list[int]) -> None:
        """Forget series that saw no value for IDLE_WINDOWS collections and have no open window.

        ``candidates`` (rows) were found by ``collect``'s own pass over the series, without the registry
        lock; they are removed in small batches, each under the lock and checked again, so a ``record()``
        of a new series never waits for a scan of every series (200,000 of them took 313 ms)."""
        horizon = self._collections - IDLE_WINDOWS
        handles, idents, states = self.handles, self.idents, self.states
        while candidates:
            batch = candidates[-EVICT_BATCH:]
            del candidates[-EVICT_BATCH:]
            with self._lock:
                for row in batch:
                    handle = handles[row]
                    if handle < 0 or states[row] is not None or self.last_active[row] > horizon:
                        continue
                    key = idents[row]
                    if self._series.get(key) != handle:  # type: ignore[arg-type]
                        continue
                    del self._series[key]  # type: ignore[arg-type]
                    handles[row] = -handle
                    self.evicted_at[row] = self._collections
                    self._evicted.setdefault(self._collections, []).append(row)
                    self._bound.pop(handle, None)
                    keys, self.cache_keys[row] = self.cache_keys[row], None
                    scope = self.scopes.get(key[0])  # type: ignore[index]
                    if scope is not None:
                        scope.forget(keys)
                    metric = (key[0], key[1])  # type: ignore[index]
                    self._per_metric[metric] -= 1
                    if self._per_metric[metric] <= 0:
                        del self._per_metric[metric]
            pace()  # a record() waiting for the lock gets it now (locks are not fair)

    def _reuse_rows(self) -> None:
        """Rows evicted IDLE_WINDOWS collections ago become free, under a new generation."""
        horizon = self._collections - IDLE_WINDOWS
        for at in [at for at in self._evicted if at <= horizon]:
            rows = self._evicted.pop(at)
            while rows:  # taken off batch by batch: freeing a list of 200,000 ints at once takes ms
                batch = rows[-EVICT_BATCH:]
                del rows[-EVICT_BATCH:]
                with self._lock:
                    for row in batch:
                        if self.handles[row] >= 0 or self.evicted_at[row] != at:
                            continue  # revived since (and maybe evicted again: a later list has it)
                        self.handles[row] = -self.handles[row] + (1 << ROW_BITS)
                        self.idents[row] = None
                        self.states[row] = self.previous[row] = None
                        self._free.append(row)
                pace()

    def series_count(self) -> int:
        return len(self._series)

    def open_window(self, scope_id: str, name: str, dims: tuple) -> Window | None:
        """The open 60 s window of a series, as a window (a copy; for tests and diagnostics)."""
        handle = self._series.get(ident(scope_id, name, dims))
        if handle is None:
            return None
        row = handle & ROW_MASK
        state = self.states[row]
        return None if state is None else self._window(row, self.starts[row], state)

    def _window(self, row: int, start: int, state: dict) -> Window:
        key = self.idents[row]
        return Window.from_state(key[1], pairs(key), start, BASE_PERIOD, key[0], state)  # type: ignore[index,arg-type]

    # ------------------------------------------------------------------ collection
    def collect(self, now: float | None = None, *, force: bool = False) -> list[Window]:
        """Aggregate what is queued, seal the windows that have ended (all with ``force``), roll them up,
        evict idle series, and return the sealed 60 s windows and the released 300 s ones.

        The only code that aggregates; one collector at a time. A failure in one series is counted and
        never costs the others. Every PACE_S of work it hands the interpreter lock on (``pace``): a
        thread that computes keeps it for up to 5 ms otherwise, and a ``record()`` on the flow's thread
        would wait that long. Not with ``force`` (``close()``): the process ends, its exit deadline comes
        first (each hand-off costs ~70 µs of the timer's slack even when no thread waits).
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
            self._drain(sealed, paced=not force)
            self._collections += 1
            idle: list[int] = []
            horizon = self._collections - IDLE_WINDOWS
            step = Pacer(not force)
            handles, idents, states, previous = self.handles, self.idents, self.states, self.previous
            ends, starts, last_active = self.ends, self.starts, self.last_active
            add = self._rollup.add_state
            for row in range(len(handles)):
                if not row & 15:
                    step()
                if handles[row] < 0 or idents[row] is None:
                    continue
                try:
                    state = previous[row]
                    if state is not None:
                        previous[row] = None
                        start = self.previous_starts[row]
                        sealed.append(self._window(row, start, state))
                        add(idents[row], start, state)
                    state = states[row]
                    if state is not None and (force or stepped or now >= ends[row]):
                        states[row], ends[row] = None, 0.0
                        sealed.append(self._window(row, starts[row], state))
                        add(idents[row], starts[row], state)
                    elif state is None and last_active[row] <= horizon:
                        idle.append(row)
                except Exception as exc:  # one broken series must never cost the others
                    self.reject(idents[row][1], f"could not be sealed: {exc!r}")  # type: ignore[index]
            other = self._pending + list(self._late.values())
            self._pending, self._late = [], {}
            for window in other:
                try:
                    self._rollup.add(window)
                except Exception as exc:
                    self.reject(window.name, f"could not be rolled up: {exc!r}")
            if other:  # one window per key: two writes of a key in one call would race
                sealed = combine(sealed + other, step)
            self._rollup.due(now, force or stepped, step, out=sealed)
            self._evict_idle(idle)
            self._reuse_rows()
            return sealed

    def drain(self) -> None:
        """Aggregate what is queued now (the reader thread, once a second)."""
        with self._collect_lock:
            self._drain(None)

    def _drain(self, sealed: list[Window] | None, paced: bool = True) -> None:
        """Each queued value into the open window of its series and minute. ``sealed`` (a collection's
        list) gets the windows a value rolls over; without it (``drain``) the rolled-over window waits in
        ``previous`` for the next collection."""
        if self._pending and sealed is not None:
            sealed.extend(self._pending)
            self._pending = []
        inbox = self.inbox
        take = inbox.popleft
        handles, states, ends, starts = self.handles, self.states, self.ends, self.starts
        last_active, folded_rows = self.last_active, self.folded
        active = self._collections
        folded = 0
        multiplier = _MULTIPLIER
        log_, ceil = math.log, math.ceil
        left = len(inbox)  # items, not triples: what appends add meanwhile waits for the next drain
        step = Pacer(paced, PACE_S if sealed is not None else DRAIN_PACE_S)
        done = 0
        last, last_state, low, high, last_folded = -1, None, 0.0, 0.0, False
        while left >= 3:
            try:
                handle = take()
                left -= 1
                if type(handle) is not int:
                    if type(handle) is not Series:
                        continue  # a drain interrupted between two pops left a part: realign
                    handle = self._handle_of(handle)  # type: ignore[arg-type]
                    if handle is None:
                        take(), take()
                        left -= 2
                        continue
                value, when = take(), take()
                left -= 2
            except IndexError:
                break
            done += 1
            if not done & 63:  # the clock is read every 64 values (~40 µs of work)
                step()
            try:
                if handle == last and low <= when < high:  # the same series and window as the last value
                    state = last_state
                else:
                    last = -1
                    row = handle & ROW_MASK
                    if handles[row] != handle:
                        handle = self._live(handle)
                        if handle is None:
                            continue
                        row = handle & ROW_MASK
                    if when >= ends[row]:
                        state = states[row]
                        if state is not None:
                            self._roll_over(row, state, sealed)
                        start = int(when // BASE_PERIOD) * BASE_PERIOD
                        state = states[row] = new_state(
                            ceil(log_(value) * multiplier) - 128 if value > MIN_MAGNITUDE else 0  # type: ignore[arg-type]
                        )
                        starts[row], ends[row] = start, start + BASE_PERIOD
                    elif when < ends[row] - BASE_PERIOD:  # an older minute: never into the open window
                        self._add_late(row, handle, when, value)  # type: ignore[arg-type]
                        last_active[row] = active
                        continue
                    else:
                        state = states[row]
                    last, last_state, high = handle, state, ends[row]
                    low, last_folded = high - BASE_PERIOD, folded_rows[row]
                    last_active[row] = active
                state["n"] += 1  # type: ignore[index]
                state["s"] += value  # type: ignore[index]
                if value < state["lo"]:  # type: ignore[index]
                    state["lo"] = value  # type: ignore[index]
                if value > state["hi"]:  # type: ignore[index]
                    state["hi"] = value  # type: ignore[index]
                # sketch.bin_of, inlined for the usual case: the one call per value
                key = (
                    ceil(log_(value) * multiplier) if value > MIN_MAGNITUDE else bin_of(value)  # type: ignore[arg-type]
                ) - state["o"]  # type: ignore[index]
                n = state.get(key)  # type: ignore[union-attr]
                if n is None:
                    state[key] = 1  # type: ignore[index]
                    if len(state) > STATE_LIMIT:  # type: ignore[arg-type]
                        fold_state(state)  # type: ignore[arg-type]
                else:
                    state[key] = n + 1  # type: ignore[index]
                if last_folded:
                    folded += 1
            except Exception as exc:  # one broken series must never cost the others
                self.reject("?", f"could not be aggregated: {exc!r}")
        if folded:
            self.count("folded", folded)

    def _roll_over(self, row: int, state: dict, sealed: list[Window] | None) -> None:
        """The open window of ``row`` ended (a value of a later minute came): seal it now (a collection)
        or keep it for the next collection (``drain``)."""
        start = self.starts[row]
        if sealed is not None:
            sealed.append(self._window(row, start, state))
            self._rollup.add_state(self.idents[row], start, state)  # type: ignore[arg-type]
            return
        waiting = self.previous[row]
        if waiting is not None:  # two minutes rolled over before a collection: the older as a window
            self._pending.append(self._window(row, self.previous_starts[row], waiting))
        self.previous[row], self.previous_starts[row] = state, start

    def _add_late(self, row: int, handle: int, when: float, value: float) -> None:
        start = int(when // BASE_PERIOD) * BASE_PERIOD
        key = (handle, start)
        window = self._late.get(key)
        if window is None:
            flat = self.idents[row]
            window = self._late[key] = Window(flat[1], pairs(flat), start, BASE_PERIOD, flat[0])  # type: ignore[index,arg-type]
        window.add(value)

    def open_rollups(self) -> list[Window]:
        """The 300 s windows still open (merged from sealed 60 s ones), for the spool's snapshot."""
        with self._collect_lock:
            return self._rollup.open_windows()

    def close(self) -> None:
        """No more observations: later ``record()`` calls are dropped and counted."""
        self.closed = True
        self.inbox_limit = 0
