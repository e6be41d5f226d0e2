"""The hot path of the storage: ``Scope.record()`` and bound ``Series`` (prometheus_client's labelled
children).

``Scope.record()`` (any thread) finds the handle of the series' row in a dict keyed by exactly what the caller
passed, checks the value and appends ``(handle, value, wall time)`` to the storage's inbox. No lock, no I/O,
nothing that can raise. A new key takes the slow path once (``_resolve``: validated, registered under the
caps by ``Storage.register``, cached). Everything else, aggregation included, is ``pipeline.storage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langflow_cms import clock as _clock
from langflow_cms.naming import as_number, check_metric_name, clean_dimensions
from langflow_cms.pipeline.window import SHARD_MASK, SHARDS

CACHE_LIMIT = 100_000
"""Entries of each scope's lookup cache; past it new keys are resolved on every call (still correct)."""


def _describe(thing: object, limit: int = 80) -> str:
    """``str(thing)``, at most ``limit`` characters, or its type's name when even that raises."""
    try:
        return str(thing)[:limit]
    except Exception:
        return f"<{type(thing).__name__} that cannot be shown>"


ROW_BITS = 32
ROW_MASK = (1 << ROW_BITS) - 1


class Series:
    """A bound series from ``Scope.series()`` (prometheus_client's ``labels()`` child): its identity and the
    handle of its row in the storage. Made only by ``series()``; stored series are rows, not objects."""

    __slots__ = ("dimensions", "handle", "name", "scope")

    def __init__(self, scope: Scope, name: str, dimensions: tuple[tuple[str, str], ...], handle: int) -> None:
        self.scope = scope
        self.name = name
        self.dimensions = dimensions
        self.handle = handle


class Scope:
    """One delivery path's view of the storage: ``record``/``series``/``observe`` for its series.

    The process's own scope has id ``""``; a CMS Metric node with its own AccessKey gets a scope of its own,
    so its flow's metrics are stored, counted and delivered apart and can never reach another account.
    """

    def __init__(self, storage: Any, scope_id: str, common: Mapping[str, str]) -> None:
        self.id = scope_id
        self.storage = storage
        """The ``pipeline.storage.Storage`` whose series this scope records into (not imported here: it
        imports this module)."""
        self.common = dict(common)
        self._cache: list[dict[Any, int]] = [{} for _ in range(SHARDS)]
        """What callers pass -> the handle of its series' row (an int: nothing the collector tracks), in
        SHARDS dicts by the key's hash (see ``window.Shards``; inlined here, the hot path)."""
        self.fleet: Any = None
        """The scope's fleet stream (``pipeline.fleet.FleetStream``), or None when it is off."""
        self.events: Any = None
        """The scope's failure events (``events.EventStream``), or None when they are off."""
        self.streaks: Any = None
        """The scope's slow-run streaks (``pipeline.fleet.SlowStreaks``), with the fleet stream."""
        storage.scopes.setdefault(scope_id, self)

    # ------------------------------------------------------------------ hot path
    def record(self, name: str, value: float, dimensions: Mapping[str, str] | None = None) -> None:
        """Add one observation. Never raises, never blocks; a bad value is dropped and counted."""
        try:
            key = (name, *dimensions.keys(), *dimensions.values()) if dimensions else name
            series = self._cache[hash(key) & SHARD_MASK][key]
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
        handle = self._resolve(name, dimensions)
        return None if handle is None else self.storage.bind(handle, self)

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
    def _resolve(self, name: str, dimensions: Mapping[str, str] | None) -> int | None:
        """The handle of the series' row (registered under the caps), or None if refused (counted)."""
        try:
            check_metric_name(name)
            dims = clean_dimensions(dimensions, self.common)
        except Exception as exc:  # any hostile object (a __str__ or items() that raises) is a bad input
            self.storage.reject(name, _describe(exc, 300))
            return None
        storage = self.storage
        handle = storage.register(self, name, dims)
        if handle is None or storage.folded[handle & ROW_MASK]:
            return handle  # folded lookups are not cached, so they recover when the cap frees up
        try:
            # Only str values are cached: 1, 1.0 and True are equal dict keys but clean to different values.
            if sum(len(part) for part in self._cache) < CACHE_LIMIT and (
                not dimensions or all(type(v) is str for v in dimensions.values())
            ):
                key = (name, *dimensions.keys(), *dimensions.values()) if dimensions else name
                cache = self._cache[hash(key) & SHARD_MASK]
                if cache.get(key) != handle:  # series() again and again must not grow anything
                    cache[key] = handle
                    with storage._lock:
                        row = handle & ROW_MASK
                        if storage.handles[row] != handle:  # evicted meanwhile
                            cache.pop(key, None)
                        else:  # one key (a flat tuple: see window.ident), a list only for a second one
                            keys = storage.cache_keys[row]
                            if keys is None:
                                storage.cache_keys[row] = key
                            elif type(keys) is list:
                                keys.append(key)
                            else:
                                storage.cache_keys[row] = [keys, key]
        except Exception:
            pass  # an unhashable (or hostile) dimension value: correct, just not cached
        return handle

    def forget(self, keys: Any) -> None:
        """Drop a row's lookup keys (``Storage.cache_keys``: one key, a list of them, or None)."""
        for key in keys if type(keys) is list else () if keys is None else (keys,):
            self._cache[hash(key) & SHARD_MASK].pop(key, None)
