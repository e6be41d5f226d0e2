"""``langflow-cms dashboard``: generate dashboards for the metrics (``dashboard grafana``).

A typer sub-app: ``langflow_cms.cli.SUB_APPS`` adds it; new command groups follow the same pattern.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from langflow_cms.cli.output import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_USAGE,
    JsonOption,
    VersionOption,
    fail,
    print_json,
)

app = typer.Typer(
    help="Generate dashboards for the langflow-cms metrics.",
    no_args_is_help=True,
    epilog=f"Examples:\n\n  langflow-cms dashboard grafana -o dashboard.json\n\n{EXIT_CODES_HELP}",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _group(version: VersionOption = False) -> None:
    """Generate dashboards for the langflow-cms metrics."""


@app.command(
    epilog="Examples:\n\n"
    "  langflow-cms dashboard grafana -o dashboard.json\n\n"
    "  langflow-cms dashboard grafana -o grafana/dashboard.json "
    "--datasource-file grafana/provisioning/datasources/cms.yaml --user-id 1234567890123456\n\n"
    f"{EXIT_CODES_HELP}"
)
def grafana(
    output: Annotated[Path, typer.Option("-o", "--output", help="Dashboard JSON to write.")],
    datasource_file: Annotated[
        Path | None,
        typer.Option(help="Also write a Grafana data source provisioning file (aliyun-cms-grafana)."),
    ] = None,
    user_id: Annotated[
        str | None,
        typer.Option(help="Account id of acs_customMetric_<uid> (default: LANGFLOW_CMS_USER_ID)."),
    ] = None,
    group_id: Annotated[
        str | None,
        typer.Option(help="CMS application group of the metrics (default: LANGFLOW_CMS_GROUP_ID or 0)."),
    ] = None,
    json_output: JsonOption = False,
    version: VersionOption = False,
) -> None:
    """Write a Grafana dashboard (and optionally its data source) for the CloudMonitor data source."""
    try:
        from langflow_cms.ops.dashboard import write_grafana
    except ImportError as exc:
        fail(f"dashboard grafana is not available in this installation: {exc}", EXIT_FAILED)
    options: dict[str, str] = {}
    user_id = user_id or os.environ.get("LANGFLOW_CMS_USER_ID", "").strip() or None
    if user_id is not None:
        if not user_id.isdigit():
            fail(f"--user-id {user_id!r}: an account id is digits", EXIT_USAGE)
        options["user_id"] = user_id
    group_id = group_id or os.environ.get("LANGFLOW_CMS_GROUP_ID", "").strip() or None
    if group_id is not None:
        if not group_id.isdigit():
            fail(f"--group-id {group_id!r}: a group id is digits", EXIT_USAGE)
        options["group_id"] = group_id
    try:
        written = write_grafana(output, datasource_file, **options)
    except OSError as exc:
        fail(f"dashboard grafana: cannot write: {exc}", EXIT_FAILED)
    if json_output:
        print_json({"written": [str(path) for path in written]})
    else:
        for path in written:
            typer.echo(f"wrote {path}")
