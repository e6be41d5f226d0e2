"""``langflow-cms export``: a flow JSON as a standalone Python script that reports the same metrics."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from langflow_cms.cli.output import EXIT_USAGE, VersionOption, examples, fail

app = typer.Typer()


@app.command(
    epilog=examples(
        "langflow-cms export poem.json -o poem.py",
        "langflow-cms export poem.json -o build/poem.py --flow-name poem-prod",
        "langflow-cms export poem.json > poem.py",
    )
)
def export(
    flow: Annotated[Path, typer.Argument(help="Flow JSON file (as saved or exported by Langflow).")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Script to write (default: print it).")
    ] = None,
    flow_name: Annotated[
        str | None, typer.Option(help="`flow` dimension of the metrics (default: the file's stem).")
    ] = None,
    version: VersionOption = False,
) -> None:
    """Export a flow JSON to a standalone Python script that reports the same metrics."""
    from langflow_cms.ops.export import ExportError, export_flow

    if not flow.is_file():
        fail(f"{flow}: no such file", EXIT_USAGE, "export")
    try:
        script = export_flow(flow, flow_name=flow_name, script_name=output.name if output else None)
    except ExportError as exc:
        fail(str(exc), EXIT_USAGE, "export")
    except (OSError, ValueError) as exc:  # unreadable or not JSON
        fail(f"{flow}: {exc}", EXIT_USAGE, "export")
    if output is None:
        sys.stdout.write(script)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(script, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}", EXIT_USAGE, "export")
    typer.echo(f"wrote {output}", err=True)
