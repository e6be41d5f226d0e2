"""The slow-run streak behind ``SLOW_STREAK_METRIC`` ("N runs in a row slower than T"): a pure rule over
one process's runs of one flow, carried across windows. The fleet aggregation computes it; the alarms
tools (ops/alarms, ``runs_in_a_row``) name the metric it feeds."""

from __future__ import annotations

from collections.abc import Iterable


def longest_streak(durations_ms: Iterable[float], threshold_ms: float, carried: int = 0) -> tuple[int, int]:
    """The longest run of consecutive runs slower than ``threshold_ms`` reached in this batch, and the
    streak still open at its end.

    ``durations_ms`` are one process's runs of one flow in completion order (one window, e.g. a minute);
    ``carried`` is the streak open at the end of the previous window, so streaks continue across window
    boundaries. A run is slow when its duration is strictly greater than the threshold. Returns
    ``(longest, carry)``: ``longest`` counts the carried runs when the streak continues into this batch
    and is 0 when no run of this batch was slow; ``carry`` is what to pass as ``carried`` next time.
    """
    if carried < 0:
        raise ValueError("carried must be >= 0")
    streak, longest = carried, 0
    for duration in durations_ms:
        if duration > threshold_ms:
            streak += 1
            longest = max(longest, streak)
        else:
            streak = 0
    return longest, streak
