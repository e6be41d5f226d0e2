"""Raw (``Type=0``) points: one entry per observation, aggregated by CloudMonitor itself (and billed).

``RawScope`` is the strategy behind ``LANGFLOW_CMS_MODE=raw``: the same ``record``/``series``/``observe``
API as the aggregating ``Scope``, but each (sampled) observation becomes a :class:`RawPoint` handed to the
scope's sink (the exporter, whose serializer encodes it: the pipeline never builds wire entries). The
validation, cleaning and caps are the aggregating scope's (one path from ``record()`` to the wire); only
the last step differs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from langflow_cms import clock as wallclock
from langflow_cms.naming import as_number
from langflow_cms.pipeline.storage import Scope, Series, Storage


@dataclass(frozen=True, slots=True)
class RawPoint:
    """One observation for CloudMonitor to aggregate itself (delivery encodes it as a ``Type=0`` entry)."""

    name: str
    dimensions: Mapping[str, str]
    value: float
    time_ms: int
    group_id: str


class RawScope(Scope):
    """Sends every sampled observation as a raw entry instead of aggregating it."""

    def __init__(
        self,
        storage: Storage,
        scope_id: str,
        common: Mapping[str, str],
        *,
        sample_rate: float,
        group_id: str,
        sink: Callable[[list[RawPoint]], None],
    ) -> None:
        super().__init__(storage, scope_id, common)
        self.sample_rate = sample_rate
        self.group_id = group_id
        self.sink = sink

    def record(self, name: str, value: float, dimensions: Mapping[str, str] | None = None) -> None:
        series = self.series(name, dimensions)
        if series is not None:
            self.observe(series, value)

    def observe(self, series: Series, value: float) -> None:
        if self.storage.closed:
            self.storage.refuse()
            return
        number = as_number(value)
        if number is None:
            self.storage.reject(getattr(series, "name", "?"), "value is not a finite number")
            return
        if random.random() >= self.sample_rate:
            return
        try:
            point = RawPoint(
                series.name, dict(series.dimensions), number, int(wallclock.wall() * 1000), self.group_id
            )
            self.sink([point])
        except Exception as exc:
            self.storage.reject(series.name, f"could not be encoded: {exc!r}")
