"""All runtime configuration, read once from `LANGFLOW_CMS_*` environment variables.

One table (`VARIABLES`) maps each variable to its parser, default and documentation, so
`docs/configuration.md`, the `doctor` command and the tests can enumerate them. A bad value raises
`ConfigError` naming the variable, the value and what is accepted: a metrics plugin that silently falls back
to a default is how data goes missing.

Credentials are not configured here (see `langflow_cms.credentials`), so no variable in this module is secret.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from langflow_cms import config_values as parse
from langflow_cms import dev, limits
from langflow_cms.config_values import is_loopback_host

__all__ = [
    "VARIABLES",
    "Config",
    "ConfigError",
    "Variable",
    "default_instance",
    "host_instance",
    "is_loopback_host",
]


class ConfigError(ValueError):
    """A configuration value is invalid. The message names the variable and the accepted values."""


# --- the table ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """One environment variable: how to parse it, its default, and what the docs say about it."""

    name: str
    field: str
    parse: Callable[[str], Any]
    default: str | None
    """Raw text fed to `parse` when unset; None = computed in `Config.from_env` (see `default_doc`)."""
    accepted: str
    why: str
    default_doc: str = ""
    secret: bool = False
    """Never echo the value in an error (no variable here is secret; kept so the table can grow safely)."""

    @property
    def documented_default(self) -> str:
        return self.default_doc or ("unset" if self.default is None else self.default)


_BOOL = "1/0, true/false, yes/no, on/off (case-insensitive)"

VARIABLES: tuple[Variable, ...] = (
    Variable(
        "LANGFLOW_CMS_ENABLED",
        "enabled",
        parse.boolean,
        "true",
        _BOOL,
        "Global kill switch: when false nothing is recorded or sent, whatever the flows say.",
    ),
    Variable(
        "LANGFLOW_CMS_DEV",
        "dev",
        parse.boolean,
        "false",
        _BOOL,
        "Development mode: talk to the local emulator with its built-in key pair; a non-loopback endpoint "
        "is refused so development data can never reach production CloudMonitor.",
    ),
    Variable(
        "LANGFLOW_CMS_REGION",
        "region",
        parse.region,
        "cn-hangzhou",
        "a region id such as cn-hangzhou, cn-shanghai, ap-southeast-1",
        "Region of the CMS endpoint and of the signed request (RegionId).",
    ),
    Variable(
        "LANGFLOW_CMS_ENDPOINT",
        "endpoint",
        parse.endpoint,
        None,
        "host[:port] or http(s)://host[:port]; plain http only for loopback hosts",
        "Where PutCustomMetric is sent. The old SDK resolves every region to metrics.cn-hangzhou, so we "
        "always set the endpoint explicitly.",
        default_doc="https://metrics.<region>.aliyuncs.com (dev mode: http://127.0.0.1:8765)",
    ),
    Variable(
        "LANGFLOW_CMS_GROUP_ID",
        "group_id",
        parse.group_id,
        "0",
        "digits (an application group id, 0 = none)",
        "CMS application group the custom metrics belong to.",
    ),
    Variable(
        "LANGFLOW_CMS_MODE",
        "mode",
        parse.choice("aggregated", "raw"),
        "aggregated",
        "aggregated or raw",
        "aggregated: in-process 60 s/300 s statistics (Type=1, free of charge, a few calls per minute). "
        "raw: every sample as Type=0 (billed, one entry per sample).",
    ),
    Variable(
        "LANGFLOW_CMS_SAMPLE_RATE",
        "sample_rate",
        parse.number(float, 0.0, 1.0, low_open=True),
        "1.0",
        "a number in (0, 1]",
        "Fraction of samples sent in raw mode, to bound cost and QPS.",
    ),
    Variable(
        "LANGFLOW_CMS_ENV",
        "env",
        parse.dimension_value,
        None,
        f"1-{limits.MAX_DIMENSION_BYTES} characters: letters, digits, . - _ / \\",
        "Value of the `env` dimension (prod, staging, ...), so environments sharing an account stay apart.",
        default_doc='unset (no `env` dimension); "dev" in development mode',
    ),
    Variable(
        "LANGFLOW_CMS_INSTANCE",
        "instance",
        parse.dimension_value,
        None,
        f"1-{limits.MAX_DIMENSION_BYTES} characters: letters, digits, . - _ / \\; unique per sending process",
        "Value of the `instance` dimension. Two pre-aggregated (Type=1) writes for the same series and time "
        "overwrite each other, so it must differ between processes that send their own aggregates; "
        "processes merged per host (LANGFLOW_CMS_HOST_MERGE) share it by design.",
        default_doc="<hostname>-<journal id> when processes merge per host (LANGFLOW_CMS_HOST_MERGE with a "
        "spool directory); else <hostname>-<pid>-<start id>, unique per process start (a forked child gets "
        "its own)",
    ),
    Variable(
        "LANGFLOW_CMS_FLEET",
        "fleet",
        parse.boolean,
        "true",
        _BOOL,
        "The fleet stream: each flow run also as raw points without an instance dimension "
        "(langflow_fleet_flow_duration_ms, langflow_fleet_flow_error), so CMS computes fleet-wide P95 and "
        "error rate per flow for alarms and dashboards. Raw points are billed; see docs/metrics.md.",
    ),
    Variable(
        "LANGFLOW_CMS_FLEET_NODES",
        "fleet_nodes",
        parse.boolean,
        "false",
        _BOOL,
        "Also send each node build to the fleet stream (langflow_fleet_node_duration_ms), within the same "
        "budget.",
    ),
    Variable(
        "LANGFLOW_CMS_FLEET_BUDGET",
        "fleet_budget",
        parse.number(int, 2, 1_000_000),
        "600",
        "an integer from 2 to 1000000 (raw points per minute per process)",
        "Raw points a process sends per minute at most (2 per flow run). Above it the process lowers its "
        "own rate for the minute (a uniform sample of the minute, but its runs then weigh less in the "
        "fleet's figures: logged once, and langflow_cms_fleet_sample_rate shows the rate applied). 600 a "
        "minute is under one call a second (21 points a call), far below the 50-200 calls a second an "
        "account may make.",
    ),
    Variable(
        "LANGFLOW_CMS_FLEET_RATE",
        "fleet_rate",
        parse.number(float, 0.0, 1.0, low_open=True),
        "1.0",
        "a number in (0, 1]",
        "Fraction of flow runs in the fleet stream, the same on every process (chosen by a hash of the run "
        "id, so every process agrees and the sample stays uniform across the fleet). Set it so the busiest "
        "process stays under LANGFLOW_CMS_FLEET_BUDGET: rate <= budget / (2 x its runs per minute).",
    ),
    Variable(
        "LANGFLOW_CMS_EVENTS",
        "events",
        parse.boolean,
        "true",
        _BOOL,
        "A CloudMonitor custom event (langflow_flow_failed) and one JSON log line (logger "
        "langflow_cms.events) per failed run, with the run id, the failing node and a redacted message.",
    ),
    Variable(
        "LANGFLOW_CMS_EVENTS_PER_MINUTE",
        "events_per_minute",
        parse.number(int, 1, 10_000),
        "10",
        "an integer from 1 to 10000",
        "Events per flow and minute at most; the rest are counted and summarised in one "
        "langflow_events_suppressed event per flow and minute (their log lines are all written).",
    ),
    Variable(
        "LANGFLOW_CMS_SLOW_RUN_MS",
        "slow_run_ms",
        parse.number(float, 0.0, 86_400_000.0, low_open=True),
        None,
        "milliseconds, a number in (0, 86400000]",
        "A run slower than this is slow: with LANGFLOW_CMS_SLOW_EVENTS it raises a langflow_flow_slow event. "
        "A CMS Metric node's own threshold wins for its flow.",
        default_doc="unset (no run is slow)",
    ),
    Variable(
        "LANGFLOW_CMS_SLOW_EVENTS",
        "slow_events",
        parse.boolean,
        "false",
        _BOOL,
        "Also an event (and log line) per run slower than LANGFLOW_CMS_SLOW_RUN_MS.",
    ),
    Variable(
        "LANGFLOW_CMS_SLS_PROJECT",
        "sls_project",
        parse.sls_project,
        None,
        "an SLS project name: 3-63 lower-case letters, digits and -",
        "With LANGFLOW_CMS_SLS_LOGSTORE: every event carries a link to the SLS console search for its run.",
    ),
    Variable(
        "LANGFLOW_CMS_SLS_LOGSTORE",
        "sls_logstore",
        parse.sls_logstore,
        None,
        "an SLS logstore name: 2-63 lower-case letters, digits, - and _",
        "The logstore Logtail/LoongCollector ships the langflow_cms.events lines to.",
    ),
    Variable(
        "LANGFLOW_CMS_MAX_SERIES",
        "max_series_per_metric",
        parse.number(int, 1, 1_000_000),
        "1000",
        "an integer from 1 to 1000000",
        "Cardinality cap per metric; further dimension combinations fold into one overflow series, so a "
        "runaway dimension cannot exhaust memory or the CMS quota.",
    ),
    Variable(
        "LANGFLOW_CMS_MAX_METRICS",
        "max_metrics",
        parse.number(int, 1, 100_000),
        "200",
        "an integer from 1 to 100000",
        "Cap on distinct metric names per process (the reporter's own health metrics do not count); a new "
        "name past it is dropped and counted, so a name built from data cannot exhaust memory.",
    ),
    Variable(
        "LANGFLOW_CMS_QUEUE_SIZE",
        "queue_size",
        parse.number(int, 1, 10_000_000),
        "10000",
        "an integer from 1 to 10000000",
        "Entries waiting to be sent; beyond it the oldest are dropped and counted, never blocking a flow.",
    ),
    Variable(
        "LANGFLOW_CMS_MAX_QPS",
        "max_qps",
        parse.number(float, 0.0, parse.MAX_ACCOUNT_QPS, low_open=True),
        "10",
        f"a number in (0, {parse.MAX_ACCOUNT_QPS:g}]",
        "PutCustomMetric calls per second from this process. The account-wide cap is 50-200 per region and "
        "is shared by every process and tool using the account.",
    ),
    Variable(
        "LANGFLOW_CMS_CONNECT_TIMEOUT",
        "connect_timeout",
        parse.number(float, 0.0, parse.WINDOW_S, low_open=True),
        "5",
        "seconds, in (0, 60]",
        "TCP/TLS connect timeout per call (the SDK default).",
    ),
    Variable(
        "LANGFLOW_CMS_READ_TIMEOUT",
        "read_timeout",
        parse.number(float, 0.0, parse.WINDOW_S, low_open=True),
        "10",
        "seconds, in (0, 60]",
        "Response timeout per call (the SDK default).",
    ),
    Variable(
        "LANGFLOW_CMS_RETRY_DEADLINE",
        "retry_deadline",
        parse.number(float, 0.0, parse.WINDOW_S, low_open=True, high_open=True),
        "50",
        "seconds, in (0, 60)",
        "Give up retrying a batch after this long, before the next 60 s window's batch is due.",
    ),
    Variable(
        "LANGFLOW_CMS_EXIT_TIMEOUT",
        "exit_timeout",
        parse.number(float, 0.0, parse.WINDOW_S, high_open=True),
        "0.8",
        "seconds, in [0, 60)",
        "How long interpreter exit (and a server's shutdown) waits to deliver the last windows. A one-shot "
        "`lfx run` with CMS down or stalled takes at most this much longer; what is left goes to the spool, "
        "or is dropped and counted.",
    ),
    Variable(
        "LANGFLOW_CMS_SPOOL_DIR",
        "spool_dir",
        parse.path,
        None,
        "a directory path (~ is expanded)",
        "Where unsent batches are kept across restarts; unset = memory only. Processes of one host that "
        "share it also merge their windows (LANGFLOW_CMS_HOST_MERGE).",
    ),
    Variable(
        "LANGFLOW_CMS_HOST_MERGE",
        "host_merge",
        parse.boolean,
        "true",
        _BOOL,
        "With LANGFLOW_CMS_SPOOL_DIR: the processes of one host sharing that directory (workers of "
        "`langflow run --workers N`, gunicorn, multiprocessing) hand their sealed windows to one elected "
        "sender, which sends one aggregate per series for the host; `instance` is then "
        "<hostname>-<journal id>. Without a spool directory, or false: each process sends its own, with "
        "a per-process `instance`.",
    ),
    Variable(
        "LANGFLOW_CMS_SPOOL_MAX_MB",
        "spool_max_mb",
        parse.number(float, 0, 100_000, low_open=True),
        "64",
        "a number of megabytes in (0, 100000]",
        "Bound on the spool directory; past it the oldest batches are dropped (and counted).",
    ),
    Variable(
        "LANGFLOW_CMS_MONITOR",
        "monitor",
        parse.choice("annotated", "all", "off"),
        "annotated",
        "annotated, all or off",
        "Which flows are measured: those with a CMS component (annotated), every flow (all), or none (off).",
    ),
    Variable(
        "LANGFLOW_CMS_TEST_CLOCK",
        "test_clock",
        parse.path,
        None,
        "a file path; only with LANGFLOW_CMS_DEV on",
        "Tests and development only: the wall clock is shifted by the seconds this file holds, read again "
        "while the process runs (langflow_cms/clock.py), so a test steps the clock or brings a minute "
        "boundary near instead of waiting for it. Timestamps stay minute-aligned.",
    ),
)


def _error(var: Variable, raw: str, reason: str = "") -> ConfigError:
    shown = "<hidden>" if var.secret else repr(raw)
    detail = f"{reason}; " if reason else ""
    return ConfigError(f"{var.name}={shown} is invalid: {detail}accepted: {var.accepted}")


def default_instance() -> str:
    """`<hostname>-<pid>-<start id>`, cleaned to a valid dimension value: unique per process start even
    where a restarted container reuses its hostname and PID 1. Called again in a forked child."""
    suffix = f"-{os.getpid()}-{secrets.token_hex(3)}"
    return host_instance()[: limits.MAX_DIMENSION_BYTES - len(suffix)] + suffix


def host_instance() -> str:
    """The host name (a pod's name), cleaned to a valid dimension value: stable while the host lives."""
    host = re.sub(r"[^A-Za-z0-9._\-]", "_", socket.gethostname()) or "host"
    return host[: limits.MAX_DIMENSION_BYTES]


@dataclass(frozen=True)
class Config:
    """The plugin's configuration. Build it with `Config.from_env()`; see `VARIABLES` for each field's
    meaning."""

    enabled: bool = True
    endpoint: str = "https://metrics.cn-hangzhou.aliyuncs.com"
    region: str = "cn-hangzhou"
    group_id: str = "0"
    mode: str = "aggregated"
    sample_rate: float = 1.0
    dev: bool = False
    env: str | None = None
    instance: str = ""
    max_series_per_metric: int = 1000
    events: bool = True
    events_per_minute: int = 10
    slow_run_ms: float | None = None
    slow_events: bool = False
    sls_project: str | None = None
    sls_logstore: str | None = None
    fleet: bool = True
    fleet_nodes: bool = False
    fleet_budget: int = 600
    fleet_rate: float = 1.0
    max_metrics: int = 200
    queue_size: int = 10000
    max_qps: float = 10.0
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    retry_deadline: float = 50.0
    exit_timeout: float = 0.8
    spool_dir: Path | None = None
    host_merge: bool = True
    spool_max_mb: float = 64.0
    monitor: str = "annotated"
    test_clock: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read every `LANGFLOW_CMS_*` variable (empty counts as unset). Raises ConfigError on the first bad
        one."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        raw_values: dict[str, str] = {}
        for var in VARIABLES:
            raw = environ.get(var.name, "").strip()
            text = raw or var.default
            if text is None:
                values[var.field] = None
                continue
            raw_values[var.field] = raw
            try:
                values[var.field] = var.parse(text)
            except (ValueError, OverflowError) as exc:
                raise _error(var, raw, str(exc) if isinstance(exc, parse.Rejected) else "") from None

        if values["endpoint"] is None:
            values["endpoint"] = (
                dev.DEFAULT_EMULATOR_ENDPOINT
                if values["dev"]
                else f"https://metrics.{values['region']}.aliyuncs.com"
            )
        elif values["dev"] and not is_loopback_host(urlsplit(values["endpoint"]).hostname or ""):
            raise ConfigError(
                f"LANGFLOW_CMS_ENDPOINT={raw_values['endpoint']!r} is refused because LANGFLOW_CMS_DEV "
                "is on: development mode only sends to a loopback endpoint (127.0.0.1, ::1, localhost: the "
                "emulator), so development data can never reach production CloudMonitor; point "
                "LANGFLOW_CMS_ENDPOINT at the emulator or unset LANGFLOW_CMS_DEV"
            )
        if values["test_clock"] is not None and not values["dev"]:
            clock_var = next(v for v in VARIABLES if v.field == "test_clock")
            raise _error(
                clock_var,
                raw_values["test_clock"],
                "refused because LANGFLOW_CMS_DEV is off: it shifts the timestamps of what is sent, so it "
                "only works against the local emulator",
            )
        if values["env"] is None and values["dev"]:
            values["env"] = "dev"
        if values["instance"] is None:
            merged = values["host_merge"] and values["spool_dir"] and values["mode"] == "aggregated"
            values["instance"] = host_instance() if merged else default_instance()
        return cls(**values)

    @property
    def merges_per_host(self) -> bool:
        """Processes of this host merge their windows and one of them sends (needs a spool directory)."""
        return self.host_merge and self.spool_dir is not None and self.mode == "aggregated"

    @property
    def is_loopback(self) -> bool:
        """True when the endpoint is on this machine (the emulator)."""
        return is_loopback_host(urlsplit(self.endpoint).hostname or "")
