"""13. Fleet sample bias: does the P95 and error rate CMS computes from the fleet stream match the truth?

Several simulated processes (pods) each feed their own real ``FleetStream`` (the default budget of
``LANGFLOW_CMS_FLEET_BUDGET``, the fleet rate given per row, ``LANGFLOW_CMS_FLEET_RATE``) on their own
clock, every run with a random run id, as the tracing service offers them. The points each stream hands
to its sink are pooled with equal weight, as CloudMonitor pools raw points of one series whoever sent them,
into its 300 s windows (the example's error-rate alarm period) and 60 s windows; percentiles are the
nearest rank (numpy ``inverted_cdf``). The truth is the same statistics over every run. Raw points per
process per minute are counted from the sink, calls by the real ``batches`` split (21 entries a call).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.common import Row, Section

MINUTES = 10
P95_GOAL = 0.05
ERROR_GOAL_POINTS = 0.5


@dataclass
class Pod:
    name: str
    runs: Callable[[int], int]
    """Runs in minute m."""
    draw: Callable[[random.Random, int, float], tuple[float, bool]]
    """(duration ms, failed) of a run at fraction f of minute m."""


def _healthy(ms: float) -> Callable[[random.Random, int, float], tuple[float, bool]]:
    return lambda rng, _m, _f: (rng.lognormvariate(math.log(ms), 0.1), False)


def _sick(rng: random.Random, _m: int, _f: float) -> tuple[float, bool]:
    return rng.lognormvariate(math.log(5000.0), 0.1), rng.random() < 0.5


def _quiet(rng: random.Random, _m: int, _f: float) -> tuple[float, bool]:
    return rng.lognormvariate(math.log(300.0), 0.3), rng.random() < 0.05


def _burst(rng: random.Random, m: int, f: float) -> tuple[float, bool]:
    if m == 0:
        return rng.lognormvariate(math.log(100.0), 0.1), False
    return 100.0 + 2000.0 * f + rng.uniform(-20, 20), False  # latency climbs 100 -> 2,100 ms in the minute


def simulate(pods: list[Pod], minutes: int, rate: float, seed: int = 7) -> dict:
    """Runs the pods; returns the truth and the sent points, per window."""
    from langflow_cms import contract
    from langflow_cms.config import Config
    from langflow_cms.delivery.serializer import batches, raw_entries
    from langflow_cms.pipeline.fleet import FleetStream

    budget = Config.from_env({}).fleet_budget
    rng = random.Random(seed)
    clocks = [0.0] * len(pods)
    sent: list[list[dict[str, str]]] = [[] for _ in pods]
    streams = [
        FleetStream(
            budget_per_minute=budget,
            group_id="0",
            common={},
            sink=lambda points, i=i: sent[i].extend(raw_entries(points)),
            clock=lambda i=i: clocks[i],
            rate=rate,
        )
        for i in range(len(pods))
    ]
    truth: list[tuple[float, float, bool]] = []  # (time s, ms, failed)
    for minute in range(minutes):
        for i, pod in enumerate(pods):
            n = pod.runs(minute)
            for k in range(n):
                frac = (k + 0.5) / n
                clocks[i] = minute * 60.0 + 60.0 * frac
                ms, failed = pod.draw(rng, minute, frac)
                status = contract.ERROR if failed else contract.OK
                streams[i].offer(
                    [
                        (contract.FLEET_FLOW_METRIC, {"flow": "poem", "status": status}, ms),
                        (contract.FLEET_ERROR_METRIC, {"flow": "poem"}, float(failed)),
                    ],
                    f"{rng.getrandbits(128):032x}",
                )
                truth.append((clocks[i], ms, failed))
            streams[i].flush()
    for i, stream in enumerate(streams):
        clocks[i] = minutes * 60.0
        stream.flush(force=True)
    per_minute_points = 0
    per_minute_calls = 0
    pooled: list[tuple[float, str, str, float]] = []  # (time s, metric, status, value)
    import json

    for entries in sent:
        by_minute: dict[int, list[dict[str, str]]] = defaultdict(list)
        for entry in entries:
            at = int(entry["Time"]) / 1000
            by_minute[int(at // 60)].append(entry)
            dims = json.loads(entry["Dimensions"])
            pooled.append(
                (at, entry["MetricName"], dims.get("status", ""), json.loads(entry["Values"])["value"])
            )
        for group in by_minute.values():
            per_minute_points = max(per_minute_points, len(group))
            per_minute_calls = max(per_minute_calls, len(list(batches(group))))
    return {
        "truth": truth,
        "pooled": pooled,
        "budget": budget,
        "points": per_minute_points,
        "calls": per_minute_calls,
        "rates": [s.effective_rate for s in streams],
    }


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95, method="inverted_cdf"))


def figures(result: dict, period: int, minutes: range | None = None) -> list[dict[str, float]]:
    """Per window of ``period`` s: true and CMS-computed P95 (status ok) and error rate."""
    from langflow_cms import contract

    out = []
    starts = sorted({int(t // period) for t, _, _ in result["truth"]})
    for w in starts:
        if minutes is not None and w not in minutes:
            continue
        true_ok = [ms for t, ms, failed in result["truth"] if int(t // period) == w and not failed]
        true_all = [failed for t, _, failed in result["truth"] if int(t // period) == w]
        in_w = [p for p in result["pooled"] if int(p[0] // period) == w]
        cms_ok = [v for _, m, s, v in in_w if m == contract.FLEET_FLOW_METRIC and s == contract.OK]
        cms_err = [v for _, m, _, v in in_w if m == contract.FLEET_ERROR_METRIC]
        out.append(
            {
                "true_p95": _p95(true_ok),
                "cms_p95": _p95(cms_ok),
                "true_error": sum(true_all) / len(true_all),
                "cms_error": sum(cms_err) / len(cms_err),
                "samples": len(cms_err),
            }
        )
    return out


def _worst(windows: list[dict[str, float]]) -> tuple[float, float, dict[str, float]]:
    p95 = max(abs(w["cms_p95"] - w["true_p95"]) / w["true_p95"] for w in windows)
    err = max(abs(w["cms_error"] - w["true_error"]) * 100 for w in windows)
    worst = max(windows, key=lambda w: abs(w["cms_p95"] - w["true_p95"]) / w["true_p95"])
    return p95, err, worst


def run(scale: float = 1.0) -> Section:
    minutes = MINUTES if scale >= 1 else 5
    rows: list[Row] = []
    details: list[str] = []
    skewed = [
        (
            "two pods: busy 3,000 runs/min ~100 ms, sick 100 runs/min ~5 s half failing",
            [Pod("busy", lambda m: 3000, _healthy(100.0)), Pod("sick", lambda m: 100, _sick)],
        ),
        (
            "1 busy pod (3,000 runs/min ~100 ms) + 9 quiet pods (100 runs/min ~300 ms, 5 % failing)",
            [Pod("busy", lambda m: 3000, _healthy(100.0))]
            + [Pod(f"q{i}", lambda m: 100, _quiet) for i in range(9)],
        ),
    ]
    rate = 0.1
    for label, pods in skewed:
        result = simulate(pods, minutes, rate)
        windows = figures(result, 300)
        p95_err, err_points, worst = _worst(windows)
        met = p95_err <= P95_GOAL and err_points <= ERROR_GOAL_POINTS
        budget_ok = result["points"] <= result["budget"]
        rows.append(
            Row(
                f"13. Fleet sample, {label}, LANGFLOW_CMS_FLEET_RATE={rate:g}: CMS vs true (300 s windows)",
                f"P95 {worst['cms_p95']:.0f} ms vs {worst['true_p95']:.0f} ms; error rate off by "
                f"{err_points:.2f} pt",
                "true P95 and error rate of every run",
                f"P95 off by {100 * p95_err:.1f} % (worst window)",
                f"P95 ≤ {100 * P95_GOAL:.0f} %, error rate ≤ {ERROR_GOAL_POINTS} pt",
                met,
            )
        )
        rows.append(
            Row(
                f"13. Fleet sample, {label}: raw points and calls per process per minute",
                f"{result['points']} points, {result['calls']} calls (most of any process and minute)",
                f"budget {result['budget']} points",
                f"rates applied {min(result['rates']):.3g}–{max(result['rates']):.3g}",
                f"≤ {result['budget']} points, ≤ {math.ceil(result['budget'] / 21)} calls (as before)",
                budget_ok and result["calls"] <= math.ceil(result["budget"] / 21),
            )
        )
        details.append(
            f"- {label}, rate {rate:g}, {minutes} minutes: "
            + "; ".join(
                f"window {i}: P95 CMS {w['cms_p95']:.1f} / true {w['true_p95']:.1f} ms, error rate CMS "
                f"{w['cms_error']:.4f} / true {w['true_error']:.4f} ({w['samples']} runs sent)"
                for i, w in enumerate(windows)
            )
        )
    shed = simulate(skewed[0][1], minutes, 1.0)
    p95_err, err_points, worst = _worst(figures(shed, 300))
    rows.append(
        Row(
            f"13. Fleet sample, {skewed[0][0]}, the default rate 1: the busy pod sheds (informational)",
            f"P95 {worst['cms_p95']:.0f} ms vs {worst['true_p95']:.0f} ms; "
            f"error rate off by {err_points:.1f} pt",
            "true P95 and error rate of every run",
            f"P95 off by {100 * p95_err:.0f} %; "
            f"rates applied {min(shed['rates']):.3g}–{max(shed['rates']):.3g}",
            "— (what a shedding process does to the figures; set the fleet rate)",
            None,
        )
    )
    burst = simulate([Pod("burst", lambda m: 100 if m == 0 else 3000, _burst)], 2, 1.0)
    (window,) = figures(burst, 60, range(1, 2))
    off = abs(window["cms_p95"] - window["true_p95"]) / window["true_p95"]
    rows.append(
        Row(
            "13. Fleet sample, burst minute (100 → 3,000 runs/min, latency 100 → 2,100 ms in the minute), "
            "default rate 1 and budget",
            f"P95 {window['cms_p95']:.0f} ms vs {window['true_p95']:.0f} ms "
            f"({burst['points']} points, {burst['calls']} calls in the minute)",
            "true P95 of every run",
            f"P95 off by {100 * off:.1f} %",
            f"≤ {100 * P95_GOAL:.0f} %, ≤ {burst['budget']} points",
            off <= P95_GOAL and burst["points"] <= burst["budget"],
        )
    )
    details.insert(
        0,
        "**Fleet sample bias.** "
        + __doc__.split("\n\n", 1)[1].replace("\n", " ").replace("``", "`")
        + " Per window:",
    )
    return Section(rows, ["\n".join(details)])
