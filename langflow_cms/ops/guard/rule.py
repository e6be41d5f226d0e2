"""The guard's decision rule: is a new flow version worse than the previous one, beyond noise and margin?

Evidence per version (a :class:`Side`): runs and failed runs of the fleet stream, and the interval its
fleet P95 lies in (``compare``'s noise-aware interval: rank ``q ± z·sqrt(q(1-q)/n)`` through the window's
percentile ladder, widened by the sketch's error). The rule:

* **enough data first**: the new version must have run for ``min_minutes`` *and* have ``min_runs`` runs,
  and the previous one ``min_runs`` too. At high traffic ``min_minutes`` holds the decision back, so the
  window holds more runs the more traffic there is; at low traffic the window waits for ``min_runs``
  (up to ``max_minutes``, then "could not decide: too few runs").
* **slower**: the new P95's *lowest* plausible value exceeds the old P95's *highest* plausible value by
  more than ``p95_margin`` (e.g. 0.20 = +20 %): ``new.low > old.high · (1 + margin)``.
* **fails more**: the same for the error rate, with Wilson score intervals at the same ``z``:
  ``new.low − old.high > error_margin`` (e.g. 0.02 = +2 points).
* **for N periods**: the verdict "worse" must hold in ``periods`` consecutive evaluations before a rollback;
  "not worse" in ``periods`` consecutive evaluations (with enough data) promotes the version as good. An
  evaluation counts only when a fleet window has completed since the last counted one: looking again at
  the same data (alarm callbacks in a burst, a loop faster than the window) adds nothing.

Everything here is a pure function of numbers: the service keeps the streak and the state.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from langflow_cms.ops.compare import Z

WATCHING, TOO_FEW, WORSE, NOT_WORSE = "watching", "too_few_runs", "worse", "not_worse"
ROLL_BACK, PROMOTE, WAIT = "roll_back", "promote", "wait"


@dataclass(frozen=True)
class Policy:
    """The guard's thresholds (the ``[guard]`` section of the monitoring TOML, docs/guard.md)."""

    p95_margin: float = 0.20
    """The new P95 must be at least this fraction above the old one's upper bound (0.20 = +20 %)."""
    error_margin: float = 0.02
    """The new error rate's lower bound must exceed the old upper bound by this much (0.02 = 2 points)."""
    periods: int = 3
    """Consecutive evaluations that must agree before a rollback (or a promotion)."""
    min_runs: int = 50
    """Runs each version needs in the window before anything is decided."""
    min_minutes: float = 10.0
    """Minutes the new version must have been active before anything is decided."""
    max_minutes: float = 120.0
    """After this long without ``min_runs`` runs the guard says so (once) and keeps waiting."""
    cooldown_minutes: float = 30.0
    """After a rollback of a flow, no other rollback of that flow for this long."""
    interval_s: float = 60.0
    """How often ``guard run`` evaluates (one period)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Side:
    """One version's evidence from the fleet stream."""

    version: str
    runs: int
    errors: int
    p95: float | None = None
    """The P95 as shown (exact, or the upper end of bounds); for the record only."""
    p95_interval: tuple[float, float] | None = None
    """Where the true P95 lies (compare.interval); None without successful runs."""

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.runs if self.runs else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["error_rate"] = self.error_rate
        data["error_rate_interval"] = wilson(self.errors, self.runs)
        return data


@dataclass(frozen=True)
class Verdict:
    """The outcome of one evaluation: ``WORSE``, ``NOT_WORSE`` or ``TOO_FEW``, and why."""

    outcome: str
    slower: bool = False
    fails_more: bool = False
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reasons": list(self.reasons)}


def wilson(errors: int, runs: int, z: float = Z) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (errors of runs) at ``z``; None without runs."""
    if runs <= 0:
        return None
    p = errors / runs
    denominator = 1 + z * z / runs
    centre = (p + z * z / (2 * runs)) / denominator
    half = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def evaluate(old: Side, new: Side, policy: Policy, active_minutes: float) -> Verdict:
    """Compare ``new`` with ``old`` once, by the rule in the module doc."""
    missing = []
    if active_minutes < policy.min_minutes:
        missing.append(f"{new.version} active {active_minutes:.1f} of {policy.min_minutes:g} min")
    for side in (old, new):
        if side.runs < policy.min_runs:
            missing.append(f"{side.version} has {side.runs} of {policy.min_runs} runs")
    if missing:
        return Verdict(TOO_FEW, reasons=tuple(missing))
    reasons = []
    slower = False
    if old.p95_interval and new.p95_interval:
        limit = old.p95_interval[1] * (1 + policy.p95_margin)
        slower = new.p95_interval[0] > limit
        reasons.append(
            f"P95 {new.version} >= {new.p95_interval[0]:.1f} ms "
            f"{'>' if slower else '<='} {limit:.1f} ms ({old.version} <= {old.p95_interval[1]:.1f} ms "
            f"+{100 * policy.p95_margin:g} %)"
        )
    old_rate, new_rate = wilson(old.errors, old.runs), wilson(new.errors, new.runs)
    fails_more = False
    if old_rate and new_rate:
        fails_more = new_rate[0] - old_rate[1] > policy.error_margin
        reasons.append(
            f"error rate {new.version} >= {100 * new_rate[0]:.1f} % "
            f"{'>' if fails_more else '<='} {100 * (old_rate[1] + policy.error_margin):.1f} % "
            f"({old.version} <= {100 * old_rate[1]:.1f} % +{100 * policy.error_margin:g} pt)"
        )
    outcome = WORSE if slower or fails_more else NOT_WORSE
    return Verdict(outcome, slower=slower, fails_more=fails_more, reasons=tuple(reasons))


def next_action(verdict: Verdict, streak: int, policy: Policy, *, new_data: bool = True) -> tuple[str, int]:
    """(action, new streak) after one evaluation. The streak counts consecutive agreeing verdicts: positive
    for "worse", negative for "not worse"; "too few runs" leaves it as it is (no data is no evidence), and
    so does a look at the same data again (``new_data`` False: no window completed since the last counted
    evaluation)."""
    if verdict.outcome == TOO_FEW or not new_data:
        return WAIT, streak
    if verdict.outcome == WORSE:
        streak = streak + 1 if streak > 0 else 1
        return (ROLL_BACK if streak >= policy.periods else WAIT), streak
    streak = streak - 1 if streak < 0 else -1
    return (PROMOTE if -streak >= policy.periods else WAIT), streak
