"""``langflow-cms doctor``: check the setup end to end and say what to fix."""

from __future__ import annotations

import typer

from langflow_cms.cli.output import JsonOption, VersionOption, ascii_text, examples

app = typer.Typer()


@app.command(
    epilog=examples(
        "langflow-cms doctor", "LANGFLOW_CMS_DEV=1 langflow-cms doctor", "langflow-cms doctor --json"
    )
)
def doctor(json_output: JsonOption = False, version: VersionOption = False) -> None:
    """Check the configuration, the region, the monitor mode, that Langflow loads the plugin and finds its
    nodes, the credentials and the endpoint (one signed call); say what to fix.

    Exit code 0 when everything works, 1 when something must be fixed, 2 for bad configuration (the same
    with --json, which prints {"ok", "exit_code", "checks": [{name, ok, level, detail, advice}]}).
    """
    from langflow_cms.ops.doctor import run_doctor

    def out(line: str) -> None:
        typer.echo(ascii_text(line))

    raise typer.Exit(int(run_doctor(out=out, as_json=json_output) or 0))
