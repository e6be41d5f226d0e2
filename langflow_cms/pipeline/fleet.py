"""The fleet stream: raw points without an ``instance`` dimension, so CloudMonitor itself computes the
fleet-wide P50…P99, error rate and run count per flow, across every worker, pod and restart.

Each flow run becomes two raw (``Type=0``) points: its duration on ``langflow_fleet_flow_duration_ms``
and 0/1 on ``langflow_fleet_flow_error`` (whose CMS ``Average`` is the error rate).

**Sampling** (docs/metrics.md). CMS pools every point it receives with equal weight, so the points must be
a uniform sample of all the fleet's runs whatever each process's traffic. Hence one fleet-wide rate
(``LANGFLOW_CMS_FLEET_RATE``, configured the same on every process): a run is in the sample when the hash
of its run id, a number in [0, 1), is below the rate. The choice depends on the run alone, never on the
process or the moment, so every process samples alike and a run's flow and node points are kept or
dropped together. Raw points are billed, so each process also keeps to a budget of points per minute
(``LANGFLOW_CMS_FLEET_BUDGET``). Within a minute the candidates wait in a reservoir (until the minute
ends); when they pass the budget the process *lowers its rate* for that minute: it drops the candidates
with the largest hashes first, so what it sends is still every run whose hash is below a lower rate, a
uniform sample of the whole minute (not its first runs). That process is then under-represented in the
fleet's figures: it reports the rate it applied (``langflow_cms_fleet_sample_rate``, below the configured
rate only when it shed) and says so in one log line naming the rate that would fit.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Mapping

from langflow_cms import clock as wallclock
from langflow_cms import contract
from langflow_cms.naming import check_metric_name, clean_dimensions
from langflow_cms.pipeline.raw import RawPoint

log = logging.getLogger("langflow_cms")

Point = tuple[str, Mapping[str, str], float]
_SCALE = float(1 << 64)


def run_hash(run_id: str) -> float:
    """The run's place in [0, 1): the same in every process and every Python (not ``hash()``, which is
    seeded per process)."""
    digest = hashlib.blake2b(run_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


class FleetStream:
    """Samples fleet points for one delivery path (``sink`` takes :class:`RawPoint`s; delivery encodes)."""

    def __init__(
        self,
        *,
        budget_per_minute: int,
        group_id: str,
        common: Mapping[str, str],
        sink: Callable[[list[RawPoint]], None],
        clock: Callable[[], float] = wallclock.now,
        rate: float = 1.0,
    ) -> None:
        self.budget = budget_per_minute
        self.group_id = group_id
        self.common = dict(common)
        self.sink = sink
        self.clock = clock
        self.rate = rate
        """The fleet-wide sample rate (``LANGFLOW_CMS_FLEET_RATE``): a run is a candidate when its hash is
        below it."""
        self.effective_rate = rate
        """The rate this process applied in the last finished minute (``langflow_cms_fleet_sample_rate``):
        the fleet rate, or lower when the budget made it shed."""
        self.shed_minutes = 0
        """Minutes in which the budget lowered this process's rate below the fleet rate."""
        self._minute = -1
        self._cut = rate
        """This minute's rate: candidates with a hash at or above it are out."""
        self._kept: list[tuple[float, int, list[Point], float]] = []
        """The minute's reservoir, a heap of (-hash, seq, points, time): the largest hash on top."""
        self._points = 0
        self._offered = 0
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._pending: deque[tuple[list[Point], float]] = deque()
        """Sampled runs of finished minutes waiting to be encoded by the reporter thread."""
        self._warned = False
        self.invalid = 0

    def offer(self, points: list[Point], key: str | None = None) -> bool:
        """One run's points (``key``: its run id), sent whole or not at all. True while the run is in this
        minute's sample (a later, luckier run may still take its place). Never raises."""
        h = run_hash(key) if key else random.random()
        now = self.clock()
        with self._lock:
            self._roll(int(now // 60))
            self._offered += len(points)
            if h >= self._cut or not points:
                return False
            heapq.heappush(self._kept, (-h, next(self._seq), points, now))
            self._points += len(points)
            kept = True
            while self._points > self.budget:  # lower this minute's rate: drop the largest hashes first
                neg, _, dropped, _ = heapq.heappop(self._kept)
                self._points -= len(dropped)
                self._cut = -neg
                kept = kept and dropped is not points
            return kept

    def flush(self, force: bool = False) -> None:
        """Hand the sampled runs of finished minutes (and the current one with ``force``, at close) and
        hand them to the sink (the reporter thread, ``flush``, ``close``)."""
        with self._lock:
            self._roll(int(self.clock() // 60), force=force)
        pending = self._pending
        for _ in range(len(pending)):
            try:
                points, at = pending.popleft()
            except IndexError:
                return
            self.send(points, at)

    def send(self, points: list[Point], at: float) -> bool:
        """Check and hand over raw points stamped ``at`` (no budget: streak points). Never raises."""
        try:
            stamp = int(at * 1000)
            checked = [
                RawPoint(
                    check_metric_name(name),
                    dict(clean_dimensions(dims, self.common)),
                    value,
                    stamp,
                    self.group_id,
                )
                for name, dims, value in points
            ]
            self.sink(checked)
            return True
        except (ValueError, TypeError, OverflowError):
            self.invalid += 1
            return False

    def _roll(self, minute: int, force: bool = False) -> None:
        """Close the minute (under the lock): its reservoir goes to ``_pending`` in time order."""
        if minute == self._minute and not force:
            return
        if self._minute >= 0 and (self._offered or self._kept):
            self.effective_rate = self._cut
            if self._cut < self.rate:
                self.shed_minutes += 1
                self._warn()
            for _, _, points, at in sorted(self._kept, key=lambda item: item[3]):
                self._pending.append((points, at))
        self._minute, self._kept, self._points, self._offered, self._cut = minute, [], 0, 0, self.rate

    def _warn(self) -> None:
        if self._warned:
            return
        self._warned = True
        fits = 0.8 * self.budget / max(self._offered, 1)  # the rate that fits this minute, with headroom
        log.warning(
            "langflow-cms: fleet stream over its budget: %d raw points offered in a minute at "
            "LANGFLOW_CMS_FLEET_RATE=%g, budget %d; this process sent its runs at rate %.3g, so its runs "
            "weigh less than other processes' in the fleet percentiles and error rate "
            "(langflow_cms_fleet_sample_rate shows it). Set LANGFLOW_CMS_FLEET_RATE=%.2g or lower on "
            "every process, or raise LANGFLOW_CMS_FLEET_BUDGET",
            self._offered,
            self.rate,
            self.budget,
            self._cut,
            min(fits, self.rate),
        )


class SlowStreaks:
    """Per flow and minute, the longest run of consecutive runs slower than the flow's threshold reached
    in this process (streaks carry over minute boundaries), sent as one raw point per flow and minute on
    ``langflow_fleet_slow_streak`` {flow, threshold_ms}, exactly what a ``runs_in_a_row`` rule names.
    CMS's ``Maximum`` at 60 s is then the longest streak of any one process: "N runs in a row over T" is
    ``Maximum >= N`` for one period.
    The counting rule is ``alarms.longest_streak``, applied one run at a time.
    """

    def __init__(self, fleet: FleetStream, clock: Callable[[], float] = wallclock.now) -> None:
        self.fleet = fleet
        self.clock = clock
        self._minute = -1
        self._carry: dict[tuple, int] = {}
        self._longest: dict[tuple, int] = {}
        self._lock = threading.Lock()

    def observe(self, flow_dims: Mapping[str, str], threshold_ms: float, duration_ms: float) -> None:
        from langflow_cms.pipeline.streaks import longest_streak

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
