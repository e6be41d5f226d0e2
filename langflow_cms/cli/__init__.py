"""``langflow-cms``: the command line (typer + rich).

Commands: ``emulator``, ``demo``, ``init``, ``doctor``, ``export``, ``top``, ``compare`` and the sub-app
``dashboard`` (``dashboard grafana``). Every command has ``--help`` with examples and the exit codes
(:mod:`langflow_cms.cli.output`); commands that print data take ``--json``. Heavy modules are imported
inside the commands, so ``langflow-cms --help`` stays fast and one broken optional piece cannot take the
others down. Nothing here uses paths relative to the repository: every command works from an installed
wheel.

**Adding a command group** (e.g. ``alarms`` with ``plan``/``apply``/``list``/``check``): write a module
``langflow_cms/cli/alarms.py`` that defines ``app = typer.Typer(help=...)`` with its commands, and add
``("alarms", "langflow_cms.cli.alarms")`` to :data:`SUB_APPS` (``add_groups`` registers them); the
model to copy is ``langflow_cms/cli/dashboard.py``. Shared options and helpers: :mod:`langflow_cms.cli.output`
(``VersionOption``, ``JsonOption``, ``fail``, ``print_json``); ``parse_pairs`` is here.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from langflow_cms.cli.output import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    JsonOption,
    VersionOption,
    ascii_text,
    console,
    fail,
    marks,
    package_version,
    print_json,
)

__all__ = ["SUB_APPS", "JsonOption", "VersionOption", "app", "main", "package_version", "parse_pairs"]

SUB_APPS: tuple[tuple[str, str], ...] = (
    ("dashboard", "langflow_cms.cli.dashboard"),
    ("alarms", "langflow_cms.cli.alarms"),
    ("guard", "langflow_cms.cli.guard"),
)
"""(name, module) of command groups; each module defines ``app = typer.Typer(...)``."""


def parse_pairs(texts: list[str] | None, what: str) -> dict[str, str]:
    """``["version=v1", "env=prod,region=x"]`` → a dict; a malformed pair exits with the usage code."""
    pairs: dict[str, str] = {}
    for text in texts or []:
        for part in filter(None, text.split(",")):
            key, sep, value = part.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise typer.BadParameter(f"{part!r} is not key=value", param_hint=what)
            pairs[key.strip()] = value.strip()
    return pairs


def _examples(*lines: str) -> str:
    """An epilog: examples (one per line) and the exit codes."""
    body = "\n\n".join(f"  {line}" for line in lines)
    return f"Examples:\n\n{body}\n\n{EXIT_CODES_HELP}"


app = typer.Typer(
    name="langflow-cms",
    help="Report Langflow flow metrics to Alibaba Cloud CloudMonitor (CMS), and read them back.",
    epilog=_examples(
        "langflow-cms emulator --port 8765",
        "langflow-cms init",
        "langflow-cms doctor",
        "langflow-cms top --minutes 5",
        "langflow-cms compare --flow poem version=v1 version=v2",
        "langflow-cms dashboard grafana -o dashboard.json",
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(version: VersionOption = False) -> None:
    """Report Langflow flow metrics to Alibaba Cloud CloudMonitor (CMS), and read them back."""


# --- emulator -------------------------------------------------------------------------------------------


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
        epilog=_examples(
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


# --- demo -----------------------------------------------------------------------------------------------


@app.command(
    epilog=_examples(
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


# --- doctor ---------------------------------------------------------------------------------------------


@app.command(
    epilog=_examples(
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


# --- init -----------------------------------------------------------------------------------------------


@app.command(
    epilog=_examples(
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
    from langflow_cms.starter import InitError, write_examples

    try:
        written = write_examples(folder, force=force)
    except InitError as exc:
        fail(str(exc), EXIT_USAGE, "init")
    for path in written:
        typer.echo(f"wrote {path}")


# --- components-path ------------------------------------------------------------------------------------


@app.command(
    "components-path",
    epilog=_examples(
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


# --- export ---------------------------------------------------------------------------------------------


@app.command(
    epilog=_examples(
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


# --- reading back: top and compare ---------------------------------------------------------------------


def _reader(qps: float) -> Any:
    """A Reader from the environment; bad setups exit 2, an unreachable STS/CMS exits 1."""
    from langflow_cms.config import ConfigError
    from langflow_cms.credentials import CredentialError
    from langflow_cms.ops.query import open_reader

    # the SDK logs failed calls (redacted) at ERROR before raising; the error is reported once, by us
    logging.getLogger("aliyunsdkcore").addHandler(logging.NullHandler())
    logging.getLogger("aliyunsdkcore").propagate = False
    try:
        return open_reader(qps=qps)
    except (ConfigError, CredentialError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)
    except Exception as exc:
        fail(f"cannot find the account id (set LANGFLOW_CMS_USER_ID): {_error_text(exc)}", EXIT_FAILED)


def _error_text(exc: BaseException) -> str:
    from langflow_cms.redact import redact

    return redact(str(exc))


def _read_errors() -> tuple[type[BaseException], ...]:
    from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException

    from langflow_cms.ops.query import CmsQueryError

    return (CmsQueryError, ServerException, ClientException)


def _pause(seconds: float) -> None:
    """The wait between ``--watch`` refreshes (a seam for tests)."""
    time.sleep(seconds)


QpsOption = Annotated[
    float,
    typer.Option(
        min=0.1,
        max=50,
        help="Describe* calls per second (the account shares 50/s with dashboards and tools).",
    ),
]
EndOption = Annotated[
    str | None,
    typer.Option(
        "--end",
        help="End of the range: epoch milliseconds or ISO 8601 (2026-11-25T10:30:00Z); default now.",
        show_default=False,
    ),
]


def parse_end(text: str | None) -> int | None:
    """``--end``: epoch ms, or an ISO 8601 time (UTC unless it names an offset) -> epoch ms."""
    if text is None:
        return None
    text = text.strip()
    if text.isdigit():
        return int(text)
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither epoch milliseconds nor ISO 8601", param_hint="--end"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


MinutesOption = Annotated[
    float, typer.Option("--minutes", "-m", min=1, max=31 * 24 * 60, help="How far back to read.")
]


@app.command(
    epilog=_examples(
        "langflow-cms top",
        "langflow-cms top --flow poem",
        "langflow-cms top --minutes 60 --where env=prod --by version",
        "langflow-cms top --json | jq '.flows[] | {flow, runs, errors}'",
        "langflow-cms top --watch --interval 30",
        "langflow-cms top --minutes 5 --end 2026-11-25T10:30:00Z",
    )
)
def top(
    minutes: MinutesOption = 5,
    end: EndOption = None,
    flow: Annotated[str | None, typer.Option(help="Show this flow's nodes instead of all flows.")] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="Only series with this dimension, key=value (repeatable).")
    ] = None,
    by: Annotated[
        list[str] | None, typer.Option(help="Split rows by this flow dimension (repeatable).")
    ] = None,
    json_output: JsonOption = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(min=1, help="Seconds between refreshes with --watch.")] = 10,
    qps: QpsOption = 10,
    version: VersionOption = False,
) -> None:
    """The last N minutes per flow (or per node with --flow), read back from CloudMonitor or the emulator.

    Runs and errors are exact (per-host counts summed over instances); P50/P95/P99 come from the fleet
    stream (one 300 s window for ranges up to 5 minutes; longer ranges show bounds low..high; <=x is a
    per-instance upper bound where there is no fleet stream); tokens per model and direction. The account
    id comes from LANGFLOW_CMS_USER_ID or STS GetCallerIdentity; endpoint, region and credentials are the
    reporter's (LANGFLOW_CMS_* and ALIBABA_CLOUD_*).
    """
    from langflow_cms.cli.output import table_box
    from langflow_cms.ops import top as top_module

    wanted = parse_pairs(where, "--where")
    split = list(by or [])
    end_ms = parse_end(end)
    reader = _reader(qps)
    out = console()
    errors = _read_errors()
    try:
        while True:
            try:
                report = top_module.collect(
                    reader, minutes=minutes, flow=flow, where=wanted, by=split, end_ms=end_ms
                )
            except errors as exc:
                fail(f"reading CloudMonitor failed: {_error_text(exc)}", EXIT_FAILED)
            if json_output:
                if watch:
                    sys.stdout.write(json.dumps(report) + "\n")
                    sys.stdout.flush()
                else:
                    print_json(report)
            else:
                if watch and out.is_terminal:
                    out.clear()
                top_module.render(report, out, by=split, box=table_box())
            if not watch:
                return
            _pause(interval)
    except KeyboardInterrupt:
        raise typer.Exit(0 if watch else EXIT_INTERRUPTED) from None


@app.command(
    epilog=_examples(
        "langflow-cms compare --flow poem version=v1 version=v2",
        "langflow-cms compare --flow poem env=staging env=prod --minutes 5 --json",
        "langflow-cms compare --flow poem version=v1 version=v2 --png compare.png",
    )
)
def compare(
    a: Annotated[
        str, typer.Argument(metavar="A", help="The baseline: flow dimension(s) key=value[,key=value].")
    ],
    b: Annotated[str, typer.Argument(metavar="B", help="The candidate, like A.")],
    flow: Annotated[str, typer.Option(help="The flow to compare.")],
    minutes: MinutesOption = 5,
    end: EndOption = None,
    png: Annotated[
        Path | None,
        typer.Option(
            help="Also draw the comparison to this PNG (run counts, significant differences marked)."
        ),
    ] = None,
    json_output: JsonOption = False,
    qps: QpsOption = 10,
    version: VersionOption = False,
) -> None:
    """Two variants of a flow side by side: runs, error rate, P50/P95/P99 per flow and per node.

    The change is called significant when it is larger than the run count and the percentile error can
    explain: each side's percentile gets an interval (its rank +- 1.96 binomial standard errors at the run
    count, read off the same window's P10..P99 ladder, widened by the 0.75 % sketch error); the
    difference is significant when the intervals do not overlap. Per-instance upper bounds (<=x) are never
    called significant.
    """
    from langflow_cms.cli.output import table_box
    from langflow_cms.ops import compare as compare_module

    side_a, side_b = parse_pairs([a], "A"), parse_pairs([b], "B")
    end_ms = parse_end(end)
    if not side_a or not side_b:
        raise typer.BadParameter("A and B must each be key=value")
    reader = _reader(qps)
    try:
        report = compare_module.collect(reader, flow=flow, a=side_a, b=side_b, minutes=minutes, end_ms=end_ms)
    except _read_errors() as exc:
        fail(f"reading CloudMonitor failed: {_error_text(exc)}", EXIT_FAILED)
    if png is not None:
        try:
            written = compare_module.write_png(report, png)
        except compare_module.MissingExtra as exc:
            fail(str(exc), EXIT_FAILED)
        report["png"] = str(written)
    if json_output:
        print_json(report)
    else:
        ok, bad = marks()
        compare_module.render(report, console(), ok=ok, fail=bad, box=table_box())
        if png is not None:
            typer.echo(f"chart written to {png}", err=True)


# --- command groups -------------------------------------------------------------------------------------


def add_groups(target: typer.Typer, groups: tuple[tuple[str, str], ...] = SUB_APPS) -> None:
    """Add each (name, module) command group to ``target``. A group whose module cannot be imported
    becomes one command that says why, so the rest of the command line keeps working."""
    for name, module in groups:
        try:
            target.add_typer(importlib.import_module(module).app, name=name)
        except ImportError as error:
            _unavailable(target, name, error)


def _unavailable(target: typer.Typer, name: str, error: ImportError) -> None:
    @target.command(
        name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        help=f"(unavailable: {error})",
    )
    def broken(ctx: typer.Context) -> None:
        fail(f"not available in this installation: {error}", EXIT_FAILED, name)


add_groups(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``langflow-cms`` console script; returns the exit code."""
    try:
        app(args=argv, prog_name="langflow-cms", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
