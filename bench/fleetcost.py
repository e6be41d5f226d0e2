"""12. Fleet stream cost: raw points and PutCustomMetric calls per minute, per process, at three run rates.

The real ``FleetStream`` (the default budget, ``LANGFLOW_CMS_FLEET_BUDGET``) is offered every run of three
simulated minutes on its own clock, spread evenly over each minute; the third minute is the steady state
(each minute's sample waits in a reservoir until the minute ends). Its sink is the real encoder, and the
points it hands over are split into calls by the real ``batches`` (21 raw entries a call at most), as the
exporter sends them.
Raw points are billed; aggregated entries are not (docs/metrics.md, "The cost").
"""

from __future__ import annotations

from bench.common import Row, Section

RATES = (1_000, 100_000, 1_000_000)
"""Flow runs per minute in one process."""
QPS_CAP = 50
"""CMS's smallest regional PutCustomMetric cap, per account (200 in the largest regions)."""
MINUTES = 3


def points_for(runs_per_minute: int) -> tuple[int, int, float]:
    """(raw points sent, calls, effective sample rate) in the steady-state minute."""
    from langflow_cms import contract
    from langflow_cms.config import Config
    from langflow_cms.delivery.serializer import batches, raw_entries
    from langflow_cms.pipeline.fleet import FleetStream

    budget = Config.from_env({}).fleet_budget
    now = [0.0]
    sent: list[list[dict[str, str]]] = []
    stream = FleetStream(
        budget_per_minute=budget,
        group_id="0",
        common={},
        sink=lambda points: sent.append(raw_entries(points)),
        clock=lambda: now[0],
    )
    step = 60.0 / runs_per_minute
    dims = {"flow": "poem", "status": "ok"}
    run = [(contract.FLEET_FLOW_METRIC, dims, 812.0), (contract.FLEET_ERROR_METRIC, {"flow": "poem"}, 0.0)]
    for minute in range(MINUTES):
        if minute == MINUTES - 1:
            now[0] = minute * 60.0  # the earlier minutes are over: their samples leave now
            stream.flush()
            sent.clear()
        for i in range(runs_per_minute):
            now[0] = minute * 60.0 + i * step
            stream.offer(run)
    now[0] = MINUTES * 60.0  # the last minute is over: its sample leaves, its rate is known
    stream.flush()
    entries = [entry for group in sent for entry in group]
    return len(entries), len(list(batches(entries))), stream.effective_rate


def run(scale: float = 1.0) -> Section:
    from langflow_cms.config import Config

    budget = Config.from_env({}).fleet_budget
    rows = []
    details = []
    for rate in (max(int(r * scale), 10) for r in RATES):
        points, calls, effective = points_for(rate)
        qps = calls / 60
        rows.append(
            Row(
                f"12. Fleet raw points per minute, {rate:,} runs/min in one process",
                f"{points} points, {calls} calls ({qps:.2f} QPS)",
                f"every run: {2 * rate:,} points",
                f"sample rate {effective:.3g}",
                f"≤ {budget} points (the budget), ≤ 1 QPS (cap {QPS_CAP})",
                points <= budget and qps <= 1.0,
            )
        )
    details.append(
        f"**Fleet stream cost.** The real `FleetStream` with the default budget of {budget} raw points per "
        f"minute per process, offered every run of {MINUTES} simulated minutes (two points a run: duration "
        "and error), counted in the steady third minute; calls are the real `batches` split (21 entries a "
        f"call). Above {budget // 2} runs a minute the process lowers its rate for the minute (a uniform "
        "sample of it), so the points, the calls and the bill stop growing with traffic; the rate applied is "
        "reported as `langflow_cms_fleet_sample_rate` and exact counts come from the aggregates. Several "
        "processes: measurement 13."
    )
    return Section(rows, details)
