"""``langflow-cms top`` and ``compare``: read the metrics back from CloudMonitor (or the emulator).

Also the reading options and helpers other commands share (``alarms check``): :func:`parse_end`,
:func:`open_reader_or_exit`, :func:`parse_pairs`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from langflow_cms.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    JsonOption,
    VersionOption,
    console,
    examples,
    fail,
    marks,
    print_json,
)

app = typer.Typer()


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


def open_reader_or_exit(qps: float) -> Any:
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
    epilog=examples(
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
    reader = open_reader_or_exit(qps)
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
    epilog=examples(
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
    reader = open_reader_or_exit(qps)
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
