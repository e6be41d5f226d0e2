"""``langflow-cms init`` and ``components-path``: the example files, and where the node bundle lives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from langflow_cms.cli.output import EXIT_USAGE, VersionOption, examples, fail

app = typer.Typer()


@app.command(
    epilog=examples(
        "langflow-cms init",
        "langflow-cms init monitoring/ --force",
        "langflow-cms alarms plan monitoring.toml",
        'LANGFLOW_CMS_DEV=1 lfx run poem.json "the sea"',
    )
)
def init(
    folder: Annotated[Path, typer.Argument(help="Where to write the files (created when missing).")] = Path(),
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
    version: VersionOption = False,
) -> None:
    """Write the examples into a folder: monitoring.toml (alarm rules as code, for `langflow-cms alarms
    plan|apply|check`) and poem.json (a flow with CMS Metric and Timer nodes: Langflow's Import, or lfx run).
    """
    from langflow_cms.ops.starter import InitError, write_examples

    try:
        written = write_examples(folder, force=force)
    except InitError as exc:
        fail(str(exc), EXIT_USAGE, "init")
    for path in written:
        typer.echo(f"wrote {path}")


@app.command(
    "components-path",
    epilog=examples(
        "langflow-cms components-path",
        'LANGFLOW_COMPONENTS_PATH="$(langflow-cms components-path)" langflow run',
    ),
)
def components_path(version: VersionOption = False) -> None:
    """Print the installed folder that holds the cms_monitor bundle (for LANGFLOW_COMPONENTS_PATH).

    Installed with pip, the nodes are found without it (the package is a Langflow extension); this is
    for setups that load components from a path.
    """
    from langflow_cms import COMPONENTS_DIR

    typer.echo(str(COMPONENTS_DIR))
