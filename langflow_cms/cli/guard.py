"""``langflow-cms guard``: roll back a flow version that is slower or fails more (``plan``, ``once``,
``run``, ``status``).

A typer sub-app registered through ``langflow_cms.cli.SUB_APPS``. The ``[guard]`` section of the monitoring
TOML says which Langflow server, which flows and which thresholds (docs/guard.md); CloudMonitor endpoint,
region and credentials are the reporter's (``LANGFLOW_CMS_*``, ``ALIBABA_CLOUD_*``); the Langflow API key
is read from the variable the section names (``LANGFLOW_API_KEY`` by default).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from langflow_cms import REPOSITORY_URL
from langflow_cms.cli.output import (
    EXIT_USAGE,
    JsonOption,
    VersionOption,
    ascii_text,
    epilog,
    fail,
    print_json,
)

EXIT_HELP = (
    "Exit codes: 0 success (once: nothing rolled back or failing); 1 a rollback failed or Langflow/CMS "
    "could not be reached (once, status); 2 bad usage or spec file; 3 once: a version was rolled back "
    "(or would be, with --dry-run); 130 interrupted."
)
EXIT_ROLLED_BACK = 3


def _epilog(*examples: str) -> str:
    return epilog(EXIT_HELP, *examples)


app = typer.Typer(
    help="Roll back a new flow version that is slower or fails more than the one before "
    f"({REPOSITORY_URL}/docs/guard.md; `langflow-cms init` writes a monitoring.toml to add [guard] to).",
    no_args_is_help=True,
    epilog=_epilog(
        "langflow-cms guard plan monitoring.toml",
        "langflow-cms guard once monitoring.toml --dry-run",
        "langflow-cms guard run monitoring.toml",
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
)

SpecArgument = Annotated[Path, typer.Argument(help="The monitoring spec with a [guard] section (TOML).")]
IterationsOption = Annotated[
    int, typer.Option(min=0, help="Stop after this many evaluations (0: run until stopped).")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Say what would be done: no rollback, no event, no state saved.")
]


@app.callback()
def _group(version: VersionOption = False) -> None:
    """Roll back a new flow version that is slower or fails more than the one before."""


def _spec(path: Path, command: str) -> Any:
    from langflow_cms.ops.guard.spec import GuardSpecError, load_guard

    try:
        return load_guard(path)
    except GuardSpecError as exc:
        fail(str(exc), EXIT_USAGE, f"guard {command}")


def _sender() -> Any:
    """PutCustomEvent through the reporter's Transport (retries, deadline, body Code checked); None when
    the CMS settings are invalid (the guard still decides and logs)."""
    from langflow_cms.config import Config, ConfigError
    from langflow_cms.credentials import CredentialError, credential_provider
    from langflow_cms.delivery.transport import Transport
    from langflow_cms.events import event_entry

    try:
        config = Config.from_env()
        transport = Transport(config, credential_provider(dev=config.dev))
    except (ConfigError, CredentialError):
        return None

    def send(name: str, content: dict[str, Any]) -> None:
        entry = event_entry(name, content, int(time.time() * 1000), config.group_id)
        transport.put_with_retry([entry], time.monotonic() + 30.0)

    return send


def _reader_factory() -> Any:
    from langflow_cms.delivery.transport import quiet_sdk_logs
    from langflow_cms.ops.query import open_reader

    quiet_sdk_logs()  # the SDK logs failed calls at ERROR before raising; the guard logs each once
    return open_reader


def make_guard(spec: Any, *, dry_run: bool) -> Any:
    from langflow_cms.ops.guard.langflow import LangflowClient
    from langflow_cms.ops.guard.service import Guard

    client = LangflowClient(spec.langflow_url, os.environ.get(spec.api_key_env) or None)
    return Guard(spec, client, _reader_factory(), _sender(), dry_run=dry_run)


def _show(decisions: list[dict[str, Any]], json_output: bool) -> None:
    if json_output:
        print_json({"decisions": decisions})
        return
    from rich.table import Table

    from langflow_cms.cli.output import console, table_box

    table = Table(box=table_box())
    for column in ("flow", "decision", "baseline", "candidate", "evidence"):
        table.add_column(column, overflow="fold")
    for d in decisions:
        verdict = (d.get("evidence") or {}).get("verdict") or {}
        why = "; ".join(verdict.get("reasons") or []) or d.get("reason") or d.get("state") or ""
        table.add_row(
            d.get("flow", ""),
            d["decision"],
            str(d.get("baseline") or "-"),
            str(d.get("candidate") or d.get("active") or "-"),
            ascii_text(why),
        )
    console().print(table)


def _exit_code(decisions: list[dict[str, Any]]) -> int:
    from langflow_cms.ops.guard import service

    kinds = {d["decision"] for d in decisions}
    if kinds & {service.ROLLBACK_FAILED, service.UNAVAILABLE}:
        return 1
    if kinds & {service.ROLLED_BACK, service.WOULD_ROLL_BACK}:
        return EXIT_ROLLED_BACK
    return 0


@app.command(epilog=_epilog("langflow-cms guard plan monitoring.toml"))
def plan(spec_file: SpecArgument, json_output: JsonOption = False, version: VersionOption = False) -> None:
    """Show the guard's configuration as it will be applied: server, flows, thresholds, state file."""
    spec = _spec(spec_file, "plan")
    if json_output:
        print_json(spec.as_dict())
        return
    p = spec.policy
    lines = [
        f"Langflow: {spec.langflow_url} (API key from ${spec.api_key_env})",
        f"Flows: {', '.join(spec.flows)}"
        + (" (every flow with a CMS Metric node)" if "*" in spec.flows else ""),
        f"Roll back when, for {p.periods} evaluations in a row ({p.interval_s:g} s apart), beyond noise:",
        f"  P95 > previous version's P95 +{100 * p.p95_margin:g} %, or error rate > previous "
        f"+{100 * p.error_margin:g} points",
        f"Decide only after {p.min_minutes:g} min and {p.min_runs} runs per version "
        f"(say 'too few runs' after {p.max_minutes:g} min); cool-down {p.cooldown_minutes:g} min",
        f"Previous version read from {spec.lookback_minutes:g} min before the switch",
        f"State: {spec.state_file}",
    ]
    typer.echo(ascii_text("\n".join(lines)))


@app.command(
    epilog=_epilog(
        "langflow-cms guard once monitoring.toml --dry-run",
        "langflow-cms guard once monitoring.toml --json",
    )
)
def once(
    spec_file: SpecArgument,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
    version: VersionOption = False,
) -> None:
    """Evaluate every watched flow once (for cron) and act: exit 3 when a version was rolled back."""
    guard = make_guard(_spec(spec_file, "once"), dry_run=dry_run)
    decisions = guard.period()
    _show(decisions, json_output)
    raise typer.Exit(_exit_code(decisions))


@app.command(epilog=_epilog("langflow-cms guard status monitoring.toml"))
def status(spec_file: SpecArgument, json_output: JsonOption = False, version: VersionOption = False) -> None:
    """Each watched flow's verdict now (an evaluation that changes nothing: --dry-run)."""
    decisions = make_guard(_spec(spec_file, "status"), dry_run=True).period()
    _show(decisions, json_output)
    raise typer.Exit(1 if any(d["decision"] == "unavailable" for d in decisions) else 0)


@app.command(
    epilog=_epilog(
        "LANGFLOW_CMS_GUARD_TOKEN=... langflow-cms guard serve monitoring.toml --port 8790",
    )
)
def serve(
    spec_file: SpecArgument,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port of the alarm callback.")] = 8790,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    dry_run: DryRunOption = False,
    iterations: IterationsOption = 0,
    version: VersionOption = False,
) -> None:
    """``run``, plus a CMS alarm callback: POST /evaluate?token=... evaluates at once."""
    from langflow_cms.ops.guard.webhook import TOKEN_VARIABLE, Trigger

    spec = _spec(spec_file, "serve")
    token = os.environ.get(TOKEN_VARIABLE, "")
    try:
        trigger = Trigger(token, host, port)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE, "guard serve")
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 1, "guard serve")
    typer.echo(f"guard: alarm callback on http://{host}:{trigger.port}/evaluate", err=True)
    try:
        _loop(make_guard(spec, dry_run=dry_run), spec.policy.interval_s, iterations, trigger.wake)
    finally:
        trigger.close()


def _loop(guard: Any, interval_s: float, iterations: int, wake: Any = None) -> None:
    done = 0
    while True:
        guard.period()  # every decision is a JSON log line on stderr; a failed period is one too
        done += 1
        if iterations and done >= iterations:
            return
        if wake is None:
            time.sleep(interval_s)
        else:
            wake.wait(interval_s)
            wake.clear()


@app.command(epilog=_epilog("langflow-cms guard run monitoring.toml"))
def run(
    spec_file: SpecArgument,
    dry_run: DryRunOption = False,
    iterations: IterationsOption = 0,
    version: VersionOption = False,
) -> None:
    """Evaluate every interval_s seconds until stopped (a service; the docs' deploy.md has a container)."""
    spec = _spec(spec_file, "run")
    _loop(make_guard(spec, dry_run=dry_run), spec.policy.interval_s, iterations)
