"""``langflow-cms emulator``: the local CMS-compatible emulator, with the emulator's own flags."""

from __future__ import annotations

import argparse

import typer

from langflow_cms.cli.output import examples, package_version

app = typer.Typer()


@app.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
    help="Run the local CMS-compatible emulator (all flags: langflow-cms emulator --help).",
)
def emulator(ctx: typer.Context) -> None:
    """Run the local CMS-compatible emulator. Its flags are the emulator's own (``emulator/cli.py``),
    parsed by its ``add_arguments``, so the two can never drift apart."""
    from langflow_cms.emulator import cli as emulator_cli

    parser = argparse.ArgumentParser(
        prog="langflow-cms emulator",
        description="Run a local CloudMonitor-compatible endpoint (signature check, PutCustomMetric, "
        "DescribeCustomMetricList, DescribeMetricList) until Ctrl-C.",
        epilog=examples(
            "langflow-cms emulator --port 8765",
            "langflow-cms emulator --port 0 --db /tmp/cms.sqlite",
            "langflow-cms emulator --throttle-ratio 0.2 --seed 1",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    emulator_cli.add_arguments(parser)
    parser.add_argument("--version", action="version", version=f"langflow-cms {package_version()}")
    args = parser.parse_args(ctx.args)
    raise typer.Exit(int(emulator_cli.run(args) or 0))
