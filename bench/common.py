"""Shared pieces: the result row, interleaved timing, machine info and throwaway reporters.

Why interleave: on a shared 2-core machine background load comes and goes in bursts. Timing contender A
for a minute and then B for a minute lets a burst land on one of them only; alternating them in short
rounds (and rotating who goes first) spreads the noise evenly, and the median of per-round ratios
discards the rounds a burst hit hardest.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from langflow_cms.config import Config
from langflow_cms.reporter import Reporter

PACKAGES = ("langflow-cms", "lfx", "prometheus-client", "opentelemetry-sdk", "numpy")


@dataclass
class Row:
    """One line of the results table."""

    measurement: str
    ours: str
    alternative: str
    figure: str
    goal: str
    met: bool | None
    """None when the row is informational (no goal of its own)."""

    @property
    def met_text(self) -> str:
        return "—" if self.met is None else ("yes" if self.met else "**no**")


def dev_reporter(**env: str) -> Reporter:
    """A reporter with no thread and no network: ``record()`` exactly as in production, nothing sent.

    It is marked closed so the interpreter-exit hook does not try to deliver its windows anywhere.
    """
    reporter = Reporter(Config.from_env({"LANGFLOW_CMS_DEV": "1", **env}), start=False)
    reporter._closed = True  # never started; nothing to deliver (see reporter.close_all)
    return reporter


def interleaved_rounds(contenders: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run every contender once per round, rotating the order; returns each one's per-round results."""
    names = list(contenders)
    results: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(contenders[name]())
    return results


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of the per-round ratios (rounds are paired, so each ratio saw the same background load)."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def ns_per_call(run: Callable[[int], None], calls: int) -> Callable[[], float]:
    """A contender that times ``run(calls)`` and returns nanoseconds per call."""

    def once() -> float:
        start = time.perf_counter_ns()
        run(calls)
        return (time.perf_counter_ns() - start) / calls

    return once


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, str]:
    """What a reader needs to judge the numbers: CPU, cores, Python, package versions, date."""
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    return {
        "CPU": cpu_model(),
        "Cores": str(os.cpu_count()),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": platform.platform(),
        "Packages": ", ".join(versions),
        "Load average at start": load,
        "Date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def fmt_ns(ns: float) -> str:
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


@dataclass
class Section:
    """What one measurement contributes: table rows and the paragraphs that explain them."""

    rows: list[Row]
    details: list[str]
    findings: list[str] = field(default_factory=list)
    """Paragraphs for "Findings for missed goals" (only given when a goal of the section was missed)."""
