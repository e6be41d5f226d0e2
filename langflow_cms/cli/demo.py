"""``langflow-cms demo``: the example flow against a fresh local emulator, and what CloudMonitor holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from langflow_cms.cli.output import VersionOption, examples

app = typer.Typer()


@app.command(
    epilog=examples(
        "langflow-cms demo --runs 16", "langflow-cms demo --runs 120 --concurrency 8 --chart latency.png"
    )
)
def demo(
    runs: Annotated[int, typer.Option(min=1, help="Poem flow runs.")] = 120,
    concurrency: Annotated[int, typer.Option(min=1, help="Runs at a time.")] = 8,
    chart: Annotated[
        Path | None, typer.Option(help="Also write the P50/P95/P99 chart (PNG) to this file.")
    ] = None,
    version: VersionOption = False,
) -> None:
    """Run the example flow against a fresh local emulator and print what CloudMonitor holds.

    Works anywhere the package is installed: the example flows ship inside it. The demo reports to its own
    emulator with that emulator's key, whatever ALIBABA_CLOUD_* or LANGFLOW_CMS_* the shell holds, and exits
    1 when the emulator received nothing.
    """
    from langflow_cms.ops.demo import main as demo_main

    argv = ["--runs", str(runs), "--concurrency", str(concurrency)]
    if chart is not None:
        argv += ["--chart", str(chart)]
    raise typer.Exit(int(demo_main(argv) or 0))
