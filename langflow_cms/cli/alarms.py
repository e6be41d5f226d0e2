"""``langflow-cms alarms``: alarms as code (``plan``, ``apply``, ``list``, ``check``).

A typer sub-app registered through ``langflow_cms.cli.SUB_APPS``. Endpoint, region, application group and
credentials are the reporter's (``LANGFLOW_CMS_*``, ``ALIBABA_CLOUD_*``); the calls go through the
reporter's Transport (retries, deadlines, body-``Code`` check). See docs/alarms.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from langflow_cms import REPOSITORY_URL
from langflow_cms.cli.output import (
    EXIT_FAILED,
    EXIT_USAGE,
    JsonOption,
    VersionOption,
    ascii_text,
    epilog,
    fail,
    print_json,
)

EXIT_CHANGES = 2
"""``plan``: the file and CloudMonitor differ (as ``terraform plan -detailed-exitcode``)."""
EXIT_HELP = (
    "Exit codes: 0 success (plan: no changes; check: no rule in ALARM); 1 failed (CloudMonitor answered "
    "with an error or could not be reached; check: a rule is in ALARM); 2 bad usage, configuration or "
    "spec file, or plan found changes; 130 interrupted."
)


def _epilog(*examples: str) -> str:
    return epilog(EXIT_HELP, *examples)


app = typer.Typer(
    help="Alarms as code: plan, apply, list and check CloudMonitor alarm rules from a TOML file.",
    no_args_is_help=True,
    epilog=_epilog(
        "langflow-cms alarms plan monitoring.toml",
        "langflow-cms alarms apply monitoring.toml --prune",
        "langflow-cms alarms check monitoring.toml",
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
)

SpecArgument = Annotated[
    Path,
    typer.Argument(
        help="The monitoring spec (TOML; `langflow-cms init` writes an example; "
        f"{REPOSITORY_URL}/docs/alarms.md)."
    ),
]
PruneOption = Annotated[
    bool,
    typer.Option("--prune", help="Also delete rules this tool created (langflow-cms-*) that the file lacks."),
]


@app.callback()
def _group(version: VersionOption = False) -> None:
    """Alarms as code: plan, apply, list and check CloudMonitor alarm rules from a TOML file."""


def _spec(path: Path, command: str, *, secrets: bool = True) -> Any:
    from langflow_cms.ops.alarms import SpecError, load_spec

    try:
        return load_spec(path, secrets=secrets)
    except SpecError as exc:
        fail(str(exc), EXIT_USAGE, f"alarms {command}")


def _client(command: str) -> Any:
    from langflow_cms.config import ConfigError
    from langflow_cms.credentials import CredentialError
    from langflow_cms.delivery.transport import quiet_sdk_logs
    from langflow_cms.ops.alarms import AlarmClient

    quiet_sdk_logs()  # the SDK logs failed calls at ERROR before raising; we report each once
    try:
        return AlarmClient.from_env()
    except (ConfigError, CredentialError) as exc:
        fail(str(exc), EXIT_USAGE, f"alarms {command}")


def _sls() -> Any:
    """The SLS settings of the environment (for the logs links), None when unset or invalid."""
    from langflow_cms.config import Config, ConfigError
    from langflow_cms.ops.alarms import SlsSettings

    try:
        return SlsSettings.from_config(Config.from_env())
    except ConfigError:
        return None


def _failed(exc: BaseException, command: str) -> NoReturn:
    from langflow_cms.redact import redact

    fail(redact(str(exc)), EXIT_FAILED, f"alarms {command}")


def _echo(text: str) -> None:
    typer.echo(ascii_text(text))


@app.command(
    epilog=_epilog(
        "langflow-cms alarms plan monitoring.toml",
        "langflow-cms alarms plan monitoring.toml --prune --json",
    )
)
def plan(
    spec_file: SpecArgument,
    prune: PruneOption = False,
    json_output: JsonOption = False,
    version: VersionOption = False,
) -> None:
    """Show what apply would create, change or delete, as a diff. Exit code 2 when there are changes."""
    from langflow_cms.ops import alarms

    spec = _spec(spec_file, "plan")
    client = _client("plan")
    try:
        found = alarms.plan(spec, client, prune=prune)
    except alarms.AlarmError as exc:
        _failed(exc, "plan")
    if json_output:
        print_json(found.as_dict())
    else:
        _echo(found.render())
    if found.has_changes:
        raise typer.Exit(EXIT_CHANGES)


@app.command(
    epilog=_epilog(
        "DINGTALK_WEBHOOK='https://oapi.dingtalk.com/robot/send?access_token=...' "
        "langflow-cms alarms apply monitoring.toml",
        "langflow-cms alarms apply monitoring.toml --prune",
    )
)
def apply(
    spec_file: SpecArgument,
    prune: PruneOption = False,
    json_output: JsonOption = False,
    version: VersionOption = False,
) -> None:
    """Create or update the contacts, contact groups, rules and event rules of the file (PutContact,
    PutContactGroup, PutCustomMetricRule with RuleId langflow-cms-<alarm name>, PutEventRule and
    PutEventRuleTargets with RuleName langflow-cms-<event alarm name>). Idempotent: a second apply changes
    nothing. With --prune, rules and event rules this tool created that the file no longer has are
    deleted."""
    from langflow_cms.ops import alarms

    spec = _spec(spec_file, "apply")
    client = _client("apply")
    try:
        done = alarms.apply(spec, client, prune=prune)
    except alarms.AlarmError as exc:
        _failed(exc, "apply")
    if json_output:
        print_json({"applied": True, **done.as_dict()})
        return
    if not done.has_changes:
        _echo(done.render())
        return
    _echo(done.render().replace("Plan: ", "Applied: ", 1))


@app.command(name="list", epilog=_epilog("langflow-cms alarms list", "langflow-cms alarms list --json"))
def list_rules(json_output: JsonOption = False, version: VersionOption = False) -> None:
    """The alarm rules and event rules in the account that this tool manages (langflow-cms-*)."""
    from langflow_cms.cli.output import console, table_box
    from langflow_cms.ops import alarms

    client = _client("list")
    try:
        rows = alarms.managed_rules(client)
        event_rows = alarms.managed_event_rules(client)
    except alarms.AlarmError as exc:
        _failed(exc, "list")
    if json_output:
        print_json({"rules": rows, "event_rules": event_rows})
        return
    if not rows and not event_rows:
        _echo("No rules managed by langflow-cms in this account.")
        return
    from rich.table import Table

    if event_rows:
        events = Table(box=table_box(), title="event rules")
        events.add_column("event rule", no_wrap=True, min_width=max(len(r["rule_name"]) for r in event_rows))
        for column in ("events", "filter", "level", "contact groups"):
            events.add_column(column, overflow="fold")
        for row in event_rows:
            shown = row["events"] + ("" if row["enabled"] else " (disabled)")
            events.add_row(row["rule_name"], shown, row["filter"], row["level"], row["contact_groups"])
    if not rows:
        console().print(events)
        return

    table = Table(box=table_box())
    table.add_column("rule", no_wrap=True, min_width=max(len(r["rule_id"]) for r in rows))
    table.add_column("metric", no_wrap=True)
    for column in ("resources", "condition", "level", "contact groups"):
        table.add_column(column, overflow="fold")
    for row in rows:
        resources = row["resources"]
        shown = ", ".join(resources) if isinstance(resources, list) else str(resources)
        condition = f"{row['condition']}, {row['periods']}" + ("" if row["enabled"] else " (disabled)")
        table.add_row(row["rule_id"], row["metric"], shown, condition, row["level"], row["contact_groups"])
    console().print(table)
    if event_rows:
        console().print(events)


@app.command(
    epilog=_epilog(
        "langflow-cms alarms check monitoring.toml",
        "langflow-cms alarms check monitoring.toml --end 2026-11-25T10:30:00Z --json",
    )
)
def check(
    spec_file: SpecArgument,
    end: Annotated[
        str | None,
        typer.Option(
            help="Evaluate as of this time: epoch ms or ISO 8601 (default now).", show_default=False
        ),
    ] = None,
    json_output: JsonOption = False,
    version: VersionOption = False,
) -> None:
    """Read the last periods of every alarm's series back (DescribeMetricList) and evaluate each rule the
    way CloudMonitor does: OK, ALARM or INSUFFICIENT_DATA, with the numbers behind it. Event alarms: the
    matching events of the last hour (DescribeCustomEventAttribute), ALARM when there is one. Exit code 1
    when a rule is in ALARM."""
    from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException

    from langflow_cms.cli.query import open_reader_or_exit as _reader
    from langflow_cms.cli.query import parse_end
    from langflow_cms.delivery.transport import CmsError, quiet_sdk_logs
    from langflow_cms.ops import alarms

    spec = _spec(spec_file, "check", secrets=False)  # check writes no contact: no webhook needed
    end_ms = parse_end(end)
    quiet_sdk_logs()  # the SDK logs failed calls at ERROR before raising; we report each once
    reader = alarms.PermissionNamingReader(_reader(10))
    sls = _sls()
    try:
        results = alarms.check(spec, reader, end_ms=end_ms, sls=sls)
    except (alarms.AlarmError, CmsError, ServerException, ClientException) as exc:
        _failed(exc, "check")
    if json_output:
        print_json({"alarms": [r.as_dict() for r in results]})
    else:
        _echo(alarms.render_check(results))
    if any(r.state == alarms.ALARM for r in results):
        raise typer.Exit(EXIT_FAILED)
