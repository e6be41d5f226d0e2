"""2. Flow overhead: the same 10-node lfx flow, monitoring on (``LANGFLOW_CMS_MONITOR=all``) vs off.

Our tracing service (the ``lfx.services`` entry point ``tracing_service``) reads the mode at the start of
every run, so on and off runs can alternate inside one process and one event loop: same graph object, same
caches, same background noise. The graph is loaded once from ``bench/flows/chain10.json`` (as
``lfx run`` loads a flow) and run again and again with ``lfx.processing.process.run_graph``, the call
behind ``run_flow_from_json``. Each run gets a fresh run id, as each request to a Langflow server does:
lfx ends a run's tracers in a detached task, and re-using one id would let run N's late end close run N+1.

The process-wide reporter points at an in-process emulator, so the on runs pay everything production
pays, including the reporter thread's minute-boundary delivery.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from bench.common import Row, Section, median_ratio
from bench.flowgen import FLOW_PATH, write_flow

MONITOR = "LANGFLOW_CMS_MONITOR"
GOAL = 0.01


@contextmanager
def reporter_on_emulator() -> Iterator[object]:
    """Point the process-wide reporter at a local emulator for the duration, then restore everything."""
    from langflow_cms import reset_reporter
    from langflow_cms.emulator import Emulator

    keys = ("LANGFLOW_CMS_DEV", "LANGFLOW_CMS_ENDPOINT", "LANGFLOW_CMS_MAX_QPS", MONITOR)
    saved = {key: os.environ.get(key) for key in keys}
    with Emulator(port=0) as emu:
        os.environ.update(
            {"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": emu.endpoint, "LANGFLOW_CMS_MAX_QPS": "200"}
        )
        reset_reporter()
        try:
            yield emu
        finally:
            reset_reporter()  # closes it: delivers to the emulator while it is still up
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


PROFILED = (
    ("langflow_cms.tracing", "FlowMonitor", "start_run"),
    ("langflow_cms.tracing", "FlowMonitor", "node_context"),
    ("langflow_cms.tracing", "FlowMonitor", "node_finished"),
    ("langflow_cms.tracing", "FlowMonitor", "end_run"),
    ("langflow_cms.reporter", "Reporter", "record"),
)
"""The plugin's per-run entry points, timed one call at a time in the profiling pass."""


@contextmanager
def call_timers() -> Iterator[dict[str, list[int]]]:
    """Wrap PROFILED methods with perf_counter_ns timers (a targeted profiler: cProfile's own overhead
    per call is larger than the µs-scale costs being attributed here); restore them afterwards."""
    import importlib

    timings: dict[str, list[int]] = {}
    originals = []
    for module_name, class_name, method in PROFILED:
        cls = getattr(importlib.import_module(module_name), class_name)
        original = cls.__dict__[method]
        samples = timings.setdefault(f"{class_name}.{method}", [])

        def timed(*args, _f=original, _s=samples, **kwargs):
            t0 = time.perf_counter_ns()
            try:
                return _f(*args, **kwargs)
            finally:
                _s.append(time.perf_counter_ns() - t0)

        setattr(cls, method, timed)
        originals.append((cls, method, original))
    try:
        yield timings
    finally:
        for cls, method, original in originals:
            setattr(cls, method, original)


async def _timed_rounds(rounds: int, runs: int) -> tuple[dict[str, list[float]], dict[str, list[float]], str]:
    """Per-round median run time for on and off, all runs' times, and the tracing service's class name."""
    from lfx.load import aload_flow_from_json
    from lfx.processing.process import run_graph

    graph = await aload_flow_from_json(FLOW_PATH)
    service = type(graph.tracing_service).__name__

    async def one(mode: str) -> float:
        """One run, timed until lfx's detached ``end_all_traces`` task (our flow metric) has finished too."""
        os.environ[MONITOR] = mode
        graph.set_run_id(uuid.uuid4())  # a new run, as each request to a Langflow server is
        start = time.perf_counter()
        await run_graph(graph, input_value="hi", input_type="chat", output_type="chat")
        pending = asyncio.all_tasks() - {asyncio.current_task()}
        if pending:
            await asyncio.gather(*pending)
        return time.perf_counter() - start

    for mode in ("all", "off") * 10:  # warm-up: first runs instantiate components and fill caches
        await one(mode)
    per_round: dict[str, list[float]] = {"on": [], "off": []}
    every: dict[str, list[float]] = {"on": [], "off": []}
    for r in range(rounds):
        times: dict[str, list[float]] = {"on": [], "off": []}
        for i in range(runs):
            # ABBA order, flipped every round: neither mode always runs right after the other.
            first_on = (i % 2 == 0) == (r % 2 == 0)
            for label in ("on", "off") if first_on else ("off", "on"):
                times[label].append(await one("all" if label == "on" else "off"))
        for label in ("on", "off"):
            per_round[label].append(statistics.median(times[label]))
            every[label] += times[label]
    return per_round, every, service, graph, one


async def _profile(one, runs: int) -> dict[str, dict[str, tuple[float, float]]]:
    """mode -> method -> (calls per run, µs per run) from a separate, instrumented pass."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for mode in ("all", "off"):
        with call_timers() as timings:
            for _ in range(runs):
                await one(mode)
        out[mode] = {
            name: (len(samples) / runs, sum(samples) / runs / 1000) for name, samples in timings.items()
        }
    return out


async def _measure(rounds: int, runs: int):
    per_round, every, service, _graph, one = await _timed_rounds(rounds, runs)
    profile = await _profile(one, max(runs * 5, 20))
    return per_round, every, service, profile


def _profile_table(profile: dict[str, dict[str, tuple[float, float]]]) -> str:
    lines = [
        "| per run | calls (on) | µs (on) | calls (off) | µs (off) | extra µs |",
        "|---|---|---|---|---|---|",
    ]
    total = 0.0
    for name, (calls_on, us_on) in profile["all"].items():
        calls_off, us_off = profile["off"].get(name, (0.0, 0.0))
        extra = us_on - us_off
        if name != "Reporter.record":  # node_finished and end_run include it
            total += extra
        lines.append(
            f"| `{name}` | {calls_on:g} | {us_on:.1f} | {calls_off:g} | {us_off:.1f} | {extra:+.1f} |"
        )
    lines.append(f"| **plugin total** (excluding the nested `record`) | | | | | **{total:+.1f}** |")
    return "\n".join(lines)


def run(scale: float = 1.0, rounds: int = 31) -> Section:
    if not FLOW_PATH.exists():
        write_flow()
    runs = max(int(40 * scale), 4)
    with reporter_on_emulator():
        from langflow_cms import get_reporter

        per_round, every, service, profile = asyncio.run(_measure(rounds, runs))
        series = get_reporter().health()["series"]
    ratio = median_ratio(per_round["on"], per_round["off"])
    extra = ratio - 1.0
    round_extras = sorted(a / b - 1 for a, b in zip(per_round["on"], per_round["off"], strict=True))
    q1, _, q3 = statistics.quantiles(round_extras, n=4) if len(round_extras) > 1 else (extra, extra, extra)
    quartiles = f"{q1 * 100:+.2f} % to {q3 * 100:+.2f} %"
    on_ms = statistics.median(every["on"]) * 1000
    off_ms = statistics.median(every["off"]) * 1000
    rows = [
        Row(
            "2. Flow overhead: 10-node lfx flow, monitoring on vs off",
            f"{on_ms:.2f} ms/run",
            f"{off_ms:.2f} ms/run",
            f"{extra * 100:+.2f} % ({(on_ms - off_ms) * 1000:+.0f} µs/run)",
            "≤ 1 %",
            extra <= GOAL,
        )
    ]
    details = [
        f"**Flow overhead.** Tracing service in use: `{service}`. {rounds} rounds × {runs} runs per mode, "
        "on and off alternating run by run (ABBA, flipped each round) in one process and one event "
        "loop; figure = median over rounds of median(on)/median(off) − 1 (interquartile range over "
        f"rounds: {quartiles}; separate runs of this benchmark on this machine have landed on either "
        "side of 1 %, so read the goal as met at the margin). On runs record "
        f"{series} series (10 nodes + the flow). Times are per `run_graph` call of an already-loaded "
        "graph, which makes the flow as cheap as lfx allows; a real flow (an LLM call takes 100 ms–10 s) "
        "makes the same absolute overhead a far smaller share.",
        "Where the on-mode time goes — a separate pass with every plugin entry point wrapped in a "
        "`perf_counter_ns` timer (wall time, so it includes any GIL wait; wrapping adds ~0.2 µs per call):"
        "\n\n" + _profile_table(profile),
    ]
    return Section(rows, details)
