"""The fleet stream: raw points without an ``instance`` dimension, so CloudMonitor itself computes the
fleet-wide P50…P99, error rate and run count per flow, across every worker, pod and restart.

Each flow run becomes two raw (``Type=0``) points: its duration on ``langflow_fleet_flow_duration_ms``
(dimensions ``flow``, ``status``, the flow's own dimensions, ``env``) and 0/1 on ``langflow_fleet_flow_error``
(whose CMS ``Average`` is the error rate). Raw points are billed, so each process keeps to a budget of
points per minute (``LANGFLOW_CMS_FLEET_BUDGET``): below it every run is sent; above it runs are sampled at
the rate that fits the budget, estimated from the previous minute, and never more than the budget is sent.
The effective rate is reported as ``langflow_cms_fleet_sample_rate``; exact counts come from the per-host
aggregates. Percentiles and the error rate of a uniform sample are unbiased.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from langflow_cms import contract
from langflow_cms.delivery.serializer import raw_entry
from langflow_cms.naming import check_metric_name, clean_dimensions

Point = tuple[str, Mapping[str, str], float]


class FleetStream:
    """Samples and encodes fleet points for one delivery path (``sink`` = its exporter's ``enqueue``)."""

    def __init__(
        self,
        *,
        budget_per_minute: int,
        group_id: str,
        common: Mapping[str, str],
        sink: Callable[[list[dict[str, str]]], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budget = budget_per_minute
        self.group_id = group_id
        self.common = dict(common)
        self.sink = sink
        self.clock = clock
        self.rate = 1.0
        """Probability of sending a run this minute."""
        self.effective_rate = 1.0
        """Points sent / points offered in the last finished minute (``langflow_cms_fleet_sample_rate``)."""
        self._minute = -1
        self._offered = self._sent = 0
        self._lock = threading.Lock()
        self._pending: deque[tuple[list[Point], float]] = deque()
        """Sampled runs waiting to be encoded by the reporter thread (off the flow's path)."""
        self.invalid = 0

    def offer(self, points: list[Point]) -> bool:
        """One run's points: sent whole or not at all, within the budget. True when sent. Never raises."""
        now = self.clock()
        with self._lock:
            self._roll(int(now // 60))
            self._offered += len(points)
            if self._sent + len(points) > self.budget or random.random() >= self.rate:
                return False
            self._sent += len(points)
        self._pending.append((points, now))
        return True

    def flush(self, force: bool = False) -> None:
        """Encode the sampled runs and hand them to the sink (the reporter thread, ``flush``, ``close``)."""
        pending = self._pending
        for _ in range(len(pending)):
            try:
                points, at = pending.popleft()
            except IndexError:
                return
            self.send(points, at)

    def send(self, points: list[Point], at: float) -> bool:
        """Encode and hand over raw points stamped ``at`` (no budget: streak points). Never raises."""
        try:
            stamp = int(at * 1000)
            entries = [
                raw_entry(
                    check_metric_name(name),
                    dict(clean_dimensions(dims, self.common)),
                    value,
                    stamp,
                    self.group_id,
                )
                for name, dims, value in points
            ]
            self.sink(entries)
            return True
        except (ValueError, TypeError, OverflowError):
            self.invalid += 1
            return False

    def _roll(self, minute: int) -> None:
        if minute == self._minute:
            return
        if self._minute >= 0:
            self.effective_rate = self._sent / self._offered if self._offered else 1.0
            fresh = minute == self._minute + 1
            # the next minute's rate: what fits the budget if it is as busy as the last one
            self.rate = min(1.0, self.budget / self._offered) if fresh and self._offered else 1.0
        self._minute, self._offered, self._sent = minute, 0, 0


class SlowStreaks:
    """Per flow and minute, the longest run of consecutive runs slower than the flow's threshold reached
    in this process (streaks carry over minute boundaries), sent as one raw point per flow and minute on
    ``langflow_fleet_slow_streak`` {flow, threshold_ms, flow dimensions}. CMS's ``Maximum`` at 60 s is then
    the longest streak of any one process: "N runs in a row over T" is ``Maximum >= N`` for one period.
    The counting rule is ``alarms.longest_streak``, applied one run at a time.
    """

    def __init__(self, fleet: FleetStream, clock: Callable[[], float] = time.time) -> None:
        self.fleet = fleet
        self.clock = clock
        self._minute = -1
        self._carry: dict[tuple, int] = {}
        self._longest: dict[tuple, int] = {}
        self._lock = threading.Lock()

    def observe(self, flow_dims: Mapping[str, str], threshold_ms: float, duration_ms: float) -> None:
        from langflow_cms.alarms import longest_streak

        key = (tuple(sorted(flow_dims.items())), threshold_ms)
        with self._lock:
            due = self._roll(int(self.clock() // 60))
            longest, self._carry[key] = longest_streak([duration_ms], threshold_ms, self._carry.get(key, 0))
            self._longest[key] = max(self._longest.get(key, 0), longest)
        self._send(due)

    def flush(self, force: bool = False) -> None:
        """Send the points of minutes that have ended (the current one too with ``force``, at close)."""
        with self._lock:
            due = self._roll(int(self.clock() // 60), force=force)
        self._send(due)

    def _roll(self, minute: int, force: bool = False) -> list[tuple[float, list[Point]]]:
        if minute == self._minute and not force:
            return []
        at = self._minute * 60 + 30.0
        points: list[Point] = []
        for (dims, threshold), longest in self._longest.items():
            tags = {**dict(dims), "threshold_ms": f"{threshold:g}"}
            points.append((contract.SLOW_STREAK_METRIC, tags, float(longest)))
        self._minute, self._longest = minute, {}
        return [(at, points)] if points else []

    def _send(self, due: list[tuple[float, list[Point]]]) -> None:
        for at, points in due:
            self.fleet.send(points, at)
