"""``langflow-cms compare``: two variants of a flow side by side (``version=v1`` against ``version=v2``).

Per flow and per node: runs, error rate, P50/P95/P99, the change in percent, and whether the change is
larger than what the run count and the sketch error can explain. Numbers are read and combined like
``top`` does (exact counts from the per-host aggregates, percentiles from the fleet stream; see
:mod:`langflow_cms.ops.readback`).

**When is a difference real?** (no bootstrap: the fleet stream gives percentiles, not the runs). A
percentile ``q`` estimated from ``n`` runs is the run at rank ``q·n``; that rank is uncertain by the
binomial standard error ``sqrt(n·q·(1-q))``. So with ``z = 1.96`` (about 95 %) the true ``q`` lies in
``q ± z·sqrt(q·(1-q)/n)``. That rank interval is turned into milliseconds with the same window's own
percentile ladder (Minimum, P10, P20, ... P99, Maximum, linearly interpolated), then widened by the
relative error of the percentile computation (``RELATIVE_ACCURACY`` = 0.75 %, the sketch's guarantee). A
difference is **significant** when the two sides' intervals do not overlap. The interval is reported as
``low``/``high`` next to each value. When a side's percentile is itself only bounded (several fleet windows
or series) its bounds are used; per-instance upper bounds (no fleet stream) are never called significant.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langflow_cms import clock, contract
from langflow_cms.ops.readback import (
    PERCENTILES,
    SHOWN_PERCENTILES,
    Percentile,
    Point,
    count,
    fleet_range,
    group_by,
    narrowest,
    no_runs_note,
    percentiles,
    read,
)
from langflow_cms.ops.top import COUNT_PERIOD

Z = 1.96
"""Two-sided ~95 % normal quantile used for the rank interval."""
INSTALL_DEMO = "pip install --force-reinstall langflow-cms (it depends on matplotlib)"


def sketch_accuracy() -> float:
    """The percentile computation's relative error (the sketch's ``RELATIVE_ACCURACY``, 0.75 %)."""
    from langflow_cms.pipeline.sketch import RELATIVE_ACCURACY

    return float(RELATIVE_ACCURACY)


class MissingExtra(RuntimeError):
    """A dependency the charts need (matplotlib) is missing from a broken installation."""


def quantile_from_ladder(values: Mapping[str, Any], q: float) -> float | None:
    """The value at quantile ``q`` (0..1) of one window, interpolated from its CMS statistics: Minimum,
    P10..P99 and Maximum (whichever are present)."""
    ladder: list[tuple[float, float]] = []
    if "Minimum" in values:
        ladder.append((0.0, float(values["Minimum"])))
    ladder += [(int(s[1:]) / 100, float(values[s])) for s in PERCENTILES if s in values]
    if "Maximum" in values:
        ladder.append((1.0, float(values["Maximum"])))
    if not ladder:
        return None
    ladder.sort()
    q = min(max(q, 0.0), 1.0)
    if q <= ladder[0][0]:
        return ladder[0][1]
    for (q0, v0), (q1, v1) in itertools.pairwise(ladder):
        if q <= q1:
            return v0 if q1 == q0 else v0 + (v1 - v0) * (q - q0) / (q1 - q0)
    return ladder[-1][1]


def interval(
    cells: Sequence[Point], statistic: str, accuracy: float | None = None
) -> tuple[float, float] | None:
    """The ``[low, high]`` interval a percentile's true value lies in, by the rule in the module doc.

    Several cells: the union of their intervals (the true value of the combination lies between the
    cells' values)."""
    accuracy = sketch_accuracy() if accuracy is None else accuracy
    q = int(statistic[1:]) / 100
    lows, highs = [], []
    for cell in cells:
        values = cell["values"]
        n = float(values.get("SampleCount", 0) or 0)
        if statistic not in values or n <= 0:
            continue
        spread = Z * math.sqrt(q * (1 - q) / n)
        low = quantile_from_ladder(values, q - spread)
        high = quantile_from_ladder(values, q + spread)
        value = float(values[statistic])
        low = min(value, low if low is not None else value)
        high = max(value, high if high is not None else value)
        lows.append(low * (1 - accuracy))
        highs.append(high * (1 + accuracy))
    if not lows:
        return None
    return min(lows), max(highs)


def _side(points: list[Point], fleet: list[Point], accuracy: float) -> dict[str, Any]:
    runs = count(points)
    errors = count(p for p in points if p["dimensions"].get(contract.STATUS) == contract.ERROR)
    ok = [p for p in points if p["dimensions"].get(contract.STATUS) != contract.ERROR]
    found = percentiles(fleet, ok)
    out: dict[str, Any] = {"runs": runs, "errors": errors, "error_rate": errors / runs if runs else None}
    for statistic in SHOWN_PERCENTILES:
        pct = found[statistic]
        data = pct.as_dict()
        data["interval"] = interval(fleet, statistic, accuracy) if pct.kind in ("exact", "bounds") else None
        out[statistic.lower()] = data
    return out


def _difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Change from a to b for one percentile, and whether it is significant."""
    pa, pb = (
        Percentile(**{k: v for k, v in a.items() if k != "interval"}),
        Percentile(**{k: v for k, v in b.items() if k != "interval"}),
    )
    change = None
    if pa.kind == pb.kind == "exact" and pa.value and pb.value is not None:
        change = 100.0 * (pb.value - pa.value) / pa.value
    ia, ib = a.get("interval"), b.get("interval")
    significant = bool(ia and ib and (ib[0] > ia[1] or ib[1] < ia[0]))
    if significant:
        verdict = "slower" if ib[0] > ia[1] else "faster"
    elif ia and ib:
        verdict = "within noise"
    else:
        verdict = "unknown"
    return {"change_pct": change, "significant": significant, "verdict": verdict}


def collect(
    reader: Any,
    *,
    flow: str,
    a: Mapping[str, str],
    b: Mapping[str, str],
    minutes: float = 5,
    end_ms: int | None = None,
) -> dict[str, Any]:
    """The comparison as plain data (what ``compare --json`` prints)."""
    end_ms = int(clock.wall() * 1000) if end_ms is None else end_ms  # "now" of a test clock too
    start_ms = end_ms - int(minutes * 60_000)
    accuracy = sketch_accuracy()
    window = {"period": COUNT_PERIOD, "start_ms": start_ms, "end_ms": end_ms}
    fleet_window = fleet_range(start_ms, end_ms)
    base = {contract.FLOW: flow}

    def ok(points: list[Point]) -> list[Point]:
        return [p for p in points if p["dimensions"].get(contract.STATUS, contract.OK) == contract.OK]

    sides = {}
    for label, dims in (("a", a), ("b", b)):
        wanted = {**base, **dims}
        flow_points = read(reader, contract.FLOW_METRIC, wanted, **window)
        fleet = ok(narrowest(read(reader, contract.FLEET_FLOW_METRIC, wanted, **fleet_window), wanted))
        nodes = read(reader, contract.NODE_METRIC, wanted, **window)
        fleet_nodes = ok(narrowest(read(reader, contract.FLEET_NODE_METRIC, wanted, **fleet_window), wanted))
        node_fleet = group_by(fleet_nodes, lambda d: d.get(contract.NODE))
        sides[label] = {
            "flow": _side(flow_points, fleet, accuracy),
            "nodes": {
                node: _side(points, node_fleet.get(node, []), accuracy)
                for node, points in group_by(nodes, lambda d: d.get(contract.NODE)).items()
            },
        }

    def pair(sa: Mapping[str, Any] | None, sb: Mapping[str, Any] | None) -> dict[str, Any]:
        row: dict[str, Any] = {"a": sa, "b": sb}
        if sa and sb:
            row["change"] = {s.lower(): _difference(sa[s.lower()], sb[s.lower()]) for s in SHOWN_PERCENTILES}
            ra, rb = sa["error_rate"], sb["error_rate"]
            row["change"]["error_rate_points"] = None if ra is None or rb is None else 100.0 * (rb - ra)
        return row

    node_names = sorted(set(sides["a"]["nodes"]) | set(sides["b"]["nodes"]))
    no_runs = not any(sides[label]["flow"]["runs"] for label in sides)
    if no_runs and not read(reader, contract.FLOW_METRIC, base, **window):
        notes = [no_runs_note(reader, flow, **window)]
    else:
        notes = [
            f"no runs of {flow} with {_label(dims)} in this range"
            for label, dims in (("a", a), ("b", b))
            if not sides[label]["flow"]["runs"]
        ]
    return {
        "flow": flow,
        "a": dict(a),
        "b": dict(b),
        "range": {"start_ms": start_ms, "end_ms": end_ms, "minutes": minutes},
        "percentile_range": fleet_window,
        "namespace": contract.CUSTOM_NAMESPACE_PREFIX + reader.user_id,
        "rule": {
            "z": Z,
            "relative_accuracy": accuracy,
            "text": "significant = the intervals [low, high] of the two sides do not overlap; interval = "
            "rank q +- z*sqrt(q(1-q)/n) through the window's percentile ladder, widened by the relative "
            "accuracy",
        },
        "whole_flow": pair(sides["a"]["flow"], sides["b"]["flow"]),
        "nodes": {
            node: pair(sides["a"]["nodes"].get(node), sides["b"]["nodes"].get(node)) for node in node_names
        },
        "notes": notes,
    }


def _label(side: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in side.items())


def render(
    report: Mapping[str, Any], console: Any, *, ok: str = "✓", fail: str = "✗", box: Any = None
) -> None:
    """Print the comparison as a rich table: one line per (flow or node, statistic)."""
    from rich.table import Table
    from rich.text import Text

    a, b = _label(report["a"]), _label(report["b"])
    table = Table(
        title=f"{report['flow']}: {a} -> {b}, last {report['range']['minutes']:g} min",
        title_justify="left",
        **({"box": box} if box else {}),
    )
    for column in ("node", "stat", a, b, "change", "significant"):
        table.add_column(column, justify="left" if column in ("node", "stat") else "right")
    rows = [("(whole flow)", report["whole_flow"]), *report["nodes"].items()]
    for name, row in rows:
        sa, sb = row["a"], row["b"]
        if not (sa and sb):
            table.add_row(
                name, "runs", str(sa["runs"]) if sa else "-", str(sb["runs"]) if sb else "-", "", ""
            )
            continue
        table.add_row(name, "runs", str(sa["runs"]), str(sb["runs"]), "", "")
        ra, rb = sa["error_rate"], sb["error_rate"]
        table.add_row(
            "",
            "error rate",
            "-" if ra is None else f"{100 * ra:.1f}%",
            "-" if rb is None else f"{100 * rb:.1f}%",
            ""
            if row["change"]["error_rate_points"] is None
            else f"{row['change']['error_rate_points']:+.1f} pt",
            "",
        )
        for statistic in SHOWN_PERCENTILES:
            key = statistic.lower()
            change = row["change"][key]
            pct = "-" if change["change_pct"] is None else f"{change['change_pct']:+.1f}%"
            mark = {"slower": f"{fail} slower", "faster": f"{ok} faster", "within noise": "no"}.get(
                change["verdict"], "n/a"
            )
            style = {"slower": "bold red", "faster": "green"}.get(change["verdict"])  # only on a terminal
            if style:
                mark = Text(mark, style=style)
            table.add_row(
                "",
                f"{statistic} ms",
                Percentile(**_plain(sa[key])).label(),
                Percentile(**_plain(sb[key])).label(),
                pct,
                mark,
            )
        table.add_section()
    console.print(table)
    console.print(
        f"significant: the sides' intervals do not overlap (rank +- {Z} binomial standard errors at the run "
        f"count, plus {100 * report['rule']['relative_accuracy']:.2f} % percentile error); <=x: per-instance "
        "upper bound, never significant",
        style="dim",
    )
    for note in report.get("notes", []):
        console.print(f"note: {note}")


def _plain(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "interval"}


def slowest_run_only(side: Mapping[str, Any], statistic: str) -> bool:
    """True when a side's percentile is, at its run count, just its slowest run or two (``n·(1-q) < 2``) and
    well above its median: one slow run, often a cold start, then sets the whole bar."""
    runs = (side.get("runs") or 0) - (side.get("errors") or 0)
    q = int(statistic[1:]) / 100
    value = Percentile(**_plain(side[statistic.lower()])).shown
    median = Percentile(**_plain(side["p50"])).shown
    return bool(runs and value and median and runs * (1 - q) < 2 and value > 2 * median)


def chart(report: Mapping[str, Any]) -> Any:
    """The comparison as a matplotlib figure: per statistic, grouped bars of both sides per node and for the
    whole flow, with their significance intervals as whiskers, each side's run count, the verdict of every
    significant difference, and a note on bars that are one slow run (a cold start?)."""
    try:
        import matplotlib
    except ImportError:
        raise MissingExtra(f"--png needs matplotlib: {INSTALL_DEMO}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("whole flow", report["whole_flow"])] + [
        (name, row) for name, row in report["nodes"].items() if row["a"] and row["b"]
    ]
    whole = report["whole_flow"]
    labels = {
        side: f"{_label(report[side])} ({whole[side]['runs'] if whole[side] else 0} runs)" for side in "ab"
    }
    fig, axes = plt.subplots(
        1, len(SHOWN_PERCENTILES), figsize=(4.6 * len(SHOWN_PERCENTILES), 0.6 * len(rows) + 2.6)
    )
    notes: list[str] = []
    for ax, statistic in zip(axes, SHOWN_PERCENTILES, strict=True):
        notes += _draw(ax, statistic, rows, report, labels)
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.suptitle(
        f"{report['flow']}: {labels['a']} vs {labels['b']}\n"
        "whiskers: significance interval; *: significant difference; hatched: per-instance upper bound"
    )
    footer = ["† " + note for note in dict.fromkeys(notes)]
    if footer:
        fig.text(0.01, 0.01, "\n".join(footer), fontsize="small", va="bottom")
    fig.tight_layout(rect=(0, 0.035 * len(footer), 1, 1))
    return fig


def _draw(
    ax: Any, statistic: str, rows: list[tuple[str, Any]], report: Mapping[str, Any], labels: dict[str, str]
) -> list[str]:
    """One statistic's panel: both sides' bars per row, whiskers, marks and verdicts; returns the notes."""
    colours = {"a": "#4c9be8", "b": "#e4572e"}
    height = 0.38
    notes: list[str] = []
    key = statistic.lower()
    ends = [0.0] * len(rows)
    for i, side in enumerate(("a", "b")):
        values, errors, bounded, lone = [], [[], []], [], []
        for r, (name, row) in enumerate(rows):
            data = row[side][key] if row[side] else None
            bounded.append(bool(data) and data["kind"] == "upper_bound")
            shown = Percentile(**_plain(data)).shown if data else None
            values.append(shown or 0.0)
            span = data.get("interval") if data else None
            errors[0].append(max((shown or 0.0) - span[0], 0.0) if span else 0.0)
            errors[1].append(max(span[1] - (shown or 0.0), 0.0) if span else 0.0)
            ends[r] = max(ends[r], (shown or 0.0) + errors[1][-1])
            single = bool(row[side]) and slowest_run_only(row[side], statistic)
            lone.append(single)
            if single:
                notes.append(
                    f"{name}, {_label(report[side])}: {statistic} of {row[side]['runs']} runs is its "
                    "slowest run alone (a cold start?)"
                )
        ys = [y + (i - 0.5) * height for y in range(len(rows))]
        bars = ax.barh(ys, values, height, xerr=errors, label=labels[side], color=colours[side], capsize=2)
        tips = [value + above for value, above in zip(values, errors[1], strict=True)]
        for bar, upper, single, y, tip in zip(bars, bounded, lone, ys, tips, strict=True):
            if upper:  # a per-instance upper bound, not a fleet value
                bar.set_hatch("//")
                bar.set_alpha(0.5)
            if single:
                ax.text(tip, y, " †", va="center", fontsize="small")
    for r, (_, row) in enumerate(rows):
        verdict = row.get("change", {}).get(key, {}).get("verdict")
        if verdict in ("slower", "faster"):
            colour = "#b00020" if verdict == "slower" else "#1b7f3b"
            ax.text(ends[r] * 1.02, r, f"{verdict}*", va="center", color=colour, fontweight="bold")
    ax.set_xlim(0, max([*ends, 1.0]) * 1.3)
    ax.set_yticks(
        range(len(rows)),
        [
            f"{name}\n{row['a']['runs'] if row['a'] else 0} vs {row['b']['runs'] if row['b'] else 0} runs"
            for name, row in rows
        ]
        if statistic == SHOWN_PERCENTILES[0]
        else [""] * len(rows),
    )
    ax.invert_yaxis()
    ax.set_title(f"{statistic} (ms)")
    return notes


def write_png(report: Mapping[str, Any], path: Path) -> Path:
    """:func:`chart` saved as a PNG."""
    fig = chart(report)
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
