"""The guard's decision rule on simulated fleet windows: equal versions are never rolled back, a version
that is slower or fails more is, and nothing is decided on too little data.

Each period draws fresh runs for both versions and turns them into the points CloudMonitor's fleet stream
would return (one 300 s cell per version: SampleCount, Minimum, P10..P99, Maximum over the successful
runs; SampleCount and Sum of the 0/1 error points), then evaluates them with the guard's rule."""

from __future__ import annotations

import random

import pytest

from langflow_cms.ops.guard import rule
from langflow_cms.ops.guard.evidence import side_from_points

LADDER = (10, 20, 30, 40, 50, 60, 70, 75, 80, 90, 95, 98, 99)


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def window(rng: random.Random, version: str, runs: int, median_ms: float, error_rate: float):
    """The fleet points of one version's runs in one window, as CMS pools the per-version duration copy:
    one series per status."""
    failed = sum(rng.random() < error_rate for _ in range(runs))
    ok = [rng.lognormvariate(0, 0.35) * median_ms for _ in range(runs - failed)]
    values = {"SampleCount": len(ok), "Minimum": min(ok), "Maximum": max(ok)}
    values |= {f"P{q}": nearest_rank(ok, q / 100) for q in LADDER}
    dims = {"flow": "poem", "version": version}
    points = [{"dimensions": {**dims, "status": "ok"}, "time": 300_000, "values": values}]
    if failed:
        errors = {"SampleCount": failed, "Minimum": 1.0, "Maximum": 1.0}
        points.append({"dimensions": {**dims, "status": "error"}, "time": 300_000, "values": errors})
    return points


def trial(rng, policy, old=(1000.0, 0.05), new=(1000.0, 0.05), runs=200, max_periods=6):
    """Evaluate period after period until the rule acts (or ``max_periods`` pass): (action, verdicts)."""
    streak, verdicts = 0, []
    for _ in range(max_periods):
        a = side_from_points("v1", window(rng, "v1", runs, *old))
        b = side_from_points("v2", window(rng, "v2", runs, *new))
        verdict = rule.evaluate(a, b, policy, active_minutes=60)
        verdicts.append(verdict)
        action, streak = rule.next_action(verdict, streak, policy)
        if action != rule.WAIT:
            return action, verdicts
    return rule.WAIT, verdicts


POLICY = rule.Policy(p95_margin=0.20, error_margin=0.02, periods=3, min_runs=50, min_minutes=10)


def test_twenty_trials_of_equal_versions_roll_nothing_back():
    rng = random.Random(29)
    actions = [trial(rng, POLICY)[0] for _ in range(20)]
    assert rule.ROLL_BACK not in actions
    assert actions.count(rule.PROMOTE) == 20  # and each equal version is promoted as good


def test_equal_versions_are_not_rolled_back_even_with_one_period_and_no_margin():
    """The noise test alone (no margin, one period) still holds equal versions apart rarely: at most 1 in
    20 single evaluations, whatever the seed (the intervals are ~95 % each, so overlap is the rule)."""
    rng = random.Random(7)
    bare = rule.Policy(p95_margin=0.0, error_margin=0.0, periods=1, min_runs=50, min_minutes=0)
    actions = [trial(rng, bare, max_periods=1)[0] for _ in range(20)]
    assert actions.count(rule.ROLL_BACK) <= 1


def test_a_version_that_fails_more_but_is_not_slower_is_rolled_back_on_its_error_rate():
    rng = random.Random(3)
    action, verdicts = trial(rng, POLICY, old=(1000.0, 0.02), new=(1000.0, 0.15))
    assert action == rule.ROLL_BACK
    assert len(verdicts) == POLICY.periods  # after exactly N periods in a row
    assert all(v.fails_more and not v.slower for v in verdicts)


def test_a_slower_version_is_rolled_back_on_its_p95():
    rng = random.Random(4)
    action, verdicts = trial(rng, POLICY, new=(2000.0, 0.05))
    assert action == rule.ROLL_BACK
    assert all(v.slower for v in verdicts)


def test_slower_but_within_the_margin_is_not_rolled_back():
    """10 % slower is real (many runs) but below a 20 % margin."""
    rng = random.Random(5)
    action, verdicts = trial(rng, POLICY, new=(1100.0, 0.05), runs=2000)
    assert action == rule.PROMOTE
    assert not any(v.slower for v in verdicts)


@pytest.mark.parametrize(
    ("runs", "minutes", "missing"),
    [(20, 60, "v2 has 20 of 50 runs"), (200, 4, "v2 active 4.0 of 10 min")],
)
def test_too_few_runs_or_minutes_decide_nothing_and_keep_the_streak(runs, minutes, missing):
    rng = random.Random(6)
    a = side_from_points("v1", window(rng, "v1", 200, 1000.0, 0.0))
    b = side_from_points("v2", window(rng, "v2", runs, 5000.0, 0.5))  # far worse, but too early to say
    verdict = rule.evaluate(a, b, POLICY, active_minutes=minutes)
    assert verdict.outcome == rule.TOO_FEW
    assert missing in verdict.reasons
    assert rule.next_action(verdict, 2, POLICY) == (rule.WAIT, 2)


def test_one_good_period_resets_a_worse_streak():
    worse = rule.Verdict(rule.WORSE, slower=True)
    fine = rule.Verdict(rule.NOT_WORSE)
    streak = 0
    actions = []
    for verdict in (worse, worse, fine, worse, worse, worse):
        action, streak = rule.next_action(verdict, streak, POLICY)
        actions.append(action)
    assert actions == [rule.WAIT] * 5 + [rule.ROLL_BACK]


def test_looks_at_the_same_data_neither_advance_nor_reset_the_streak():
    worse, fine = rule.Verdict(rule.WORSE, slower=True), rule.Verdict(rule.NOT_WORSE)
    for verdict in (worse, worse, fine):
        assert rule.next_action(verdict, POLICY.periods - 1, POLICY, new_data=False) == (
            rule.WAIT,
            POLICY.periods - 1,
        )
    assert rule.next_action(worse, POLICY.periods - 1, POLICY, new_data=True)[0] == rule.ROLL_BACK


def test_wilson_interval_holds_the_rate_and_widens_with_fewer_runs():
    low, high = rule.wilson(5, 100)
    assert low < 0.05 < high
    narrow = rule.wilson(50, 1000)
    assert narrow[1] - narrow[0] < high - low
    assert rule.wilson(0, 0) is None
    assert rule.wilson(0, 50)[0] == 0.0
