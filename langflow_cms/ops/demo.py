"""`make demo`: run the example poem flow many times with lfx, then show what CloudMonitor received.

Everything goes through the real path: lfx runs the flow, our tracing service (found through the
``lfx.services`` entry point) times the flow and every node, ``get_reporter()`` aggregates, the reporter
signs and sends PutCustomMetric with the real SDK over HTTP, the local emulator verifies the signature
and stores the entries, and the table is read back with DescribeCustomMetricList + DescribeMetricList,
exactly as from real CMS, and combined by the one read-back rule (``langflow_cms.ops.readback``: counts
summed, percentiles from the fleet stream or, without it, shown as a per-instance upper bound). With
``--chart FILE`` it also draws P50/P95/P99 per node (``make demo`` writes build/latency.png; ``make
docs-images`` refreshes docs/images/latency.png).

The demo talks only to its own emulator, with the emulator's own key pair, whatever ``ALIBABA_CLOUD_*``,
``ALIYUN_*`` or ``LANGFLOW_CMS_*`` the shell holds, and it exits 1 when the emulator received nothing.
The example flows ship inside the package, so it runs from an installed wheel in any folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from langflow_cms import contract
from langflow_cms.dev import emulator_client
from langflow_cms.emulator import DEFAULT_USER_ID, Emulator
from langflow_cms.ops.query import Reader
from langflow_cms.ops.readback import FLEET_PERIOD, Row, format_table, rows

FLOWS = Path(__file__).resolve().parents[1] / "examples" / "flows"
"""The example flows ship inside the package (``examples/flows`` in the repository links here)."""
SHOWN_FAILURES = 5
"""Rows of the failed-runs table."""
FOREIGN_SETTINGS = ("ALIBABA_CLOUD_", "ALIYUN_", "LANGFLOW_CMS_")
"""Variables the demo drops from its own process: it reports to its emulator with the emulator's key."""
FLOW_METRIC = contract.FLOW_METRIC
NODE_METRIC = contract.NODE_METRIC
FLOW_COLUMNS = [contract.FLOW]
NODE_COLUMNS = [contract.FLOW, contract.NODE, contract.COMPONENT]
TOPICS = ("the sea", "autumn leaves", "a city at night", "mountains", "coffee", "robots", "rain", "the moon")


async def run_flows(runs: int, concurrency: int) -> tuple[int, int]:
    """Run the poem flow ``runs`` times over several topics, ``concurrency`` at a time, plus a few runs of
    the failing example, so the table has errors too. Returns (ok, failed)."""
    from lfx.load import arun_flow_from_json

    jobs = [(FLOWS / "poem.json", TOPICS[i % len(TOPICS)]) for i in range(runs)]
    jobs += [(FLOWS / "poem_failing.json", "boom")] * max(runs // 20, 1)
    limit = asyncio.Semaphore(concurrency)
    outcome = {"ok": 0, "failed": 0}
    with progress_bar() as bar:
        task = bar.add_task("runs", total=len(jobs))

        async def one(path: Path, topic: str) -> None:
            async with limit:
                try:
                    await arun_flow_from_json(path, topic, disable_logs=True)
                    outcome["ok"] += 1
                except Exception:
                    outcome["failed"] += 1
                bar.advance(task)

        await asyncio.gather(*(one(path, topic) for path, topic in jobs))
    return outcome["ok"], outcome["failed"]


def progress_bar():
    """A rich progress bar on stderr (plain, without colour, when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def read_back(emulator: Emulator, since_ms: int) -> tuple[list[Row], list[Row]]:
    """(per-flow rows, per-node rows) from the emulator, combined by the read-back rule."""
    client = emulator_client()
    reader = Reader(client, emulator.endpoint, DEFAULT_USER_ID)
    end_ms = int(time.time() * 1000) + 60_000

    def read(metric: str, period: int) -> list:
        # the fleet stream's 300 s windows start on 5-minute boundaries: ask from the one holding since_ms
        start_ms = since_ms - since_ms % (period * 1000) - 1
        series = [s["dimensions"] for s in reader.series(metric)]
        return (
            reader.points(metric, series, period=period, start_ms=start_ms, end_ms=end_ms) if series else []
        )

    fleet_flows = read(contract.FLEET_FLOW_METRIC, FLEET_PERIOD)
    fleet_nodes = read(contract.FLEET_NODE_METRIC, FLEET_PERIOD)
    flow_rows = rows(read(FLOW_METRIC, 60), FLOW_COLUMNS, fleet_flows, FLOW_METRIC)
    node_rows = rows(read(NODE_METRIC, 60), NODE_COLUMNS, fleet_nodes, NODE_METRIC)
    return flow_rows, node_rows


def print_failures(emulator: Emulator, since_ms: int) -> None:
    """The failing runs' events, read back with DescribeCustomEventAttribute as an operator would."""
    from langflow_cms.ops.query import describe_custom_events

    client = emulator_client()
    found = describe_custom_events(
        client, name=contract.EVENT_FLOW_FAILED, endpoint=emulator.endpoint, start_ms=since_ms
    )
    shown_note = f", the first {SHOWN_FAILURES} shown" if len(found) > SHOWN_FAILURES else ""
    print(
        f"\nFailed runs ({contract.EVENT_FLOW_FAILED} events, DescribeCustomEventAttribute): "
        f"{len(found)}{shown_note}"
    )
    header = ("flow", "node", "error", "run id")
    shown = [
        (
            e["content"].get("flow", ""),
            e["content"].get("node", ""),
            e["content"].get("error_type", ""),
            e["content"].get("run_id", ""),
        )
        for e in found[:SHOWN_FAILURES]
    ]
    widths = [max(len(str(row[i])) for row in [header, *shown]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *shown]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def write_chart(flow_rows: list[Row], node_rows: list[Row], path: Path) -> None:
    """Horizontal bars of P50/P95/P99 per node and per flow, as a CMS dashboard would show them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lfx.load import load_flow_from_json

    from langflow_cms.langflow.flow_settings import node_labels

    labels = node_labels(load_flow_from_json(FLOWS / "poem.json", disable_logs=True))
    order = [labels[node["id"]] for node in json.loads((FLOWS / "poem.json").read_text())["data"]["nodes"]]
    nodes = [r for r in node_rows if r.dimensions.get("flow") == "poem" and r.dimensions.get("node") in order]
    nodes.sort(key=lambda r: order.index(r.dimensions["node"]))
    rows = nodes + [r for r in flow_rows if r.dimensions.get("flow") == "poem"]
    labels = [r.dimensions.get("node", "whole flow") for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(rows) + 1.6))
    height = 0.27
    for i, (key, colour) in enumerate((("p50", "#4c9be8"), ("p95", "#f2a541"), ("p99", "#e4572e"))):
        ax.barh(
            [y + (i - 1) * height for y in range(len(rows))],
            [getattr(r, key).shown or 0.0 for r in rows],
            height,
            label=key.upper(),
            color=colour,
        )
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds (log scale)")
    runs = rows[-1].count if rows else 0
    ax.set_title(f"poem flow: latency per node over {runs} runs (read back from the CMS emulator)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=120, help="poem flow runs (default 120)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--chart", type=Path, help="write the P50/P95/P99 chart (PNG) to this file")
    args = parser.parse_args(argv)
    if not (FLOWS / "poem.json").is_file():  # a broken install: the flows are package data
        print(
            f"langflow-cms demo: the example flows are missing from {FLOWS}; reinstall langflow-cms",
            file=sys.stderr,
        )
        return 2

    since_ms = int(time.time() // 60 * 60 * 1000) - 60_000
    ignored = sorted(name for name in os.environ if name.startswith(FOREIGN_SETTINGS))
    for name in ignored:
        del os.environ[name]
    with Emulator(port=0) as emulator:
        os.environ.update({"LANGFLOW_CMS_DEV": "1", "LANGFLOW_CMS_ENDPOINT": emulator.endpoint})
        print(f"CMS emulator listening on {emulator.endpoint}")
        if ignored:
            print(f"(the demo uses its emulator's own key and settings; ignoring {', '.join(ignored)})")
        print(f"running the example poem flow {args.runs} times with lfx ({args.concurrency} at a time)")
        ok, failed = asyncio.run(run_flows(args.runs, args.concurrency))
        from langflow_cms import get_reporter

        reporter = get_reporter()
        reporter.close(timeout=30)
        stats = emulator.stats()
        print(
            f"{ok} runs ok, {failed} failed; emulator received {stats['requests']} PutCustomMetric calls "
            f"with {stats['entries']} entries, {stats['rejected']} rejected"
        )

        flow_rows, node_rows = read_back(emulator, since_ms)
        print(f"\nPer flow ({FLOW_METRIC})")
        print(format_table(flow_rows, FLOW_COLUMNS))
        print(f"\nPer node ({NODE_METRIC})")
        print(format_table(node_rows, NODE_COLUMNS))
        print_failures(emulator, since_ms)
        if not stats["entries"] or not flow_rows:
            print(
                f"langflow-cms demo: the emulator received nothing ({stats['rejected']} calls rejected, "
                f"{ok} runs ok): the reporter did not reach it",
                file=sys.stderr,
            )
            return 1
        if args.chart is not None:
            write_chart(flow_rows, node_rows, args.chart)
            print(f"\nchart written to {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
