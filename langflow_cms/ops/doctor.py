"""`langflow-cms doctor`: is this machine set up to report to CloudMonitor, and if not, what to fix.

It checks, in order, what a failing deployment usually gets wrong: the configuration; whether the endpoint
is in the configured region; which flows the monitor mode measures; whether Langflow can load the tracing
service and find the CMS Metric and Timer nodes in this environment (entry points, manifest, bundle files:
cheap checks, not Langflow's component index); where the credentials come from; one signed PutCustomMetric
call to the endpoint; then the spool, if one is configured. Nothing secret is printed.

The endpoint probe writes one ``langflow_cms_doctor`` data point to a **fixed series**
(``instance=langflow-cms-doctor``, plus ``env`` when set), never to this process's per-start instance, so
running doctor again and again does not add a series each time. It stays a write, not a read-only call:
PutCustomMetric is the one call the plugin makes and ``cms:PutCustomMetric`` is all that
``policies/metrics.json`` grants, so a key that passes doctor can report and a key that fails cannot.

Each check is a :class:`Check` (name, ok, detail, advice); ``run_doctor`` prints them as lines or as JSON.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from langflow_cms import REPOSITORY_URL
from langflow_cms.config import Config, ConfigError
from langflow_cms.credentials import CredentialError, CredentialProvider, credential_provider
from langflow_cms.delivery.serializer import aggregate_entry
from langflow_cms.delivery.spool import waiting_entries
from langflow_cms.delivery.transport import CmsError, Transport
from langflow_cms.naming import clean_dimensions
from langflow_cms.pipeline.window import Window
from langflow_cms.redact import cut

PROBE_METRIC = "langflow_cms_doctor"
PROBE_INSTANCE = "langflow-cms-doctor"
"""The probe's fixed ``instance`` value: one series per ``env``, whatever machine or process runs doctor."""
TRACING_GROUP = "lfx.services"
TRACING_NAME = "tracing_service"
TRACING_TARGET = "langflow_cms.langflow.service:CmsTracingService"
EXTENSION_GROUP = "langflow.extensions"
BUNDLE = "cms_monitor"
COMPONENT_FILES = ("cms_metric.py", "timer.py", "timer_start.py", "timer_stop.py")
PACKAGE_DIR = Path(__file__).resolve().parents[1]
_REGION_LABEL = re.compile(r"[a-z]{2,4}(?:-[a-z0-9]+){1,4}")

LEAST_PRIVILEGE = (
    f"attach the least-privilege RAM policy {REPOSITORY_URL}/policies/metrics.json (action "
    f"cms:PutCustomMetric; add {REPOSITORY_URL}/policies/events.json, cms:PutCustomEvent, for failure "
    f"events) to the RAM user or role: see {REPOSITORY_URL}/docs/deploy.md#least-privilege-ram-policies"
)

ADVICE: tuple[tuple[Callable[[str], bool], str], ...] = (
    (
        lambda c: c == "InvalidAccessKeyId.NotFound",
        "the AccessKey id is unknown: check ALIBABA_CLOUD_ACCESS_KEY_ID "
        "(or the CMS Metric node's AccessKey input) and that the key was not deleted or disabled",
    ),
    (
        lambda c: c in ("InvalidAccessKeySecret", "SignatureDoesNotMatch"),
        "the AccessKey secret does not match the id: check ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    ),
    (
        lambda c: "SecurityToken" in c,
        "the STS token is missing, wrong or expired: refresh "
        "ALIBABA_CLOUD_SECURITY_TOKEN, or use a RAM role (RRSA on ACK, ECS RAM role) that refreshes itself",
    ),
    (
        lambda c: (
            c.startswith(("Forbidden", "AccessDenied", "NoPermission")) or c in ("403", "AccessForbidden")
        ),
        f"the key is valid but may not write metrics: {LEAST_PRIVILEGE}",
    ),
    (
        lambda c: c == "InvalidTimeStamp.Expired",
        "this machine's clock is more than 15 minutes off: sync it (NTP)",
    ),
    (
        lambda c: c.startswith("Throttling"),
        "CloudMonitor throttled this account: lower LANGFLOW_CMS_MAX_QPS or "
        "spread processes (the regional cap is 50-200 calls per second per account)",
    ),
    (
        lambda c: c == "SDK.HttpError",
        "the endpoint cannot be reached: check LANGFLOW_CMS_ENDPOINT / "
        "LANGFLOW_CMS_REGION, DNS, firewalls, and HTTPS_PROXY / NO_PROXY",
    ),
    (
        lambda c: c in ("InternalError", "ServiceUnavailable", "UnknownError") or c.startswith("5"),
        "CloudMonitor had a temporary problem: try again (the reporter retries these by itself)",
    ),
    (
        lambda c: c == "Credentials.Unavailable",
        "the credentials service is configured but did not hand out a key: check that it is up and "
        "reachable from here (the ECS metadata service, STS, or the credentials URI); the reporter retries "
        "it by itself and keeps the data meanwhile",
    ),
    (
        lambda c: c == "NoCredentials",
        f"configure credentials: see {REPOSITORY_URL}/docs/configuration.md#credentials",
    ),
)


def advice_for(code: str) -> str:
    """What to do about a CMS error code, in one sentence."""
    for matches, text in ADVICE:
        if matches(code):
            return text
    return "see the error code in the CloudMonitor API error reference"


@dataclass(frozen=True)
class Check:
    """One finding. ``ok`` False means something must be fixed (exit code 1); ``level`` ``warn`` is a
    finding that works as configured but is often not what was meant (it does not change the exit code)."""

    name: str
    ok: bool
    detail: str
    advice: str = ""
    level: str = ""

    def __post_init__(self) -> None:
        if not self.level:
            object.__setattr__(self, "level", "ok" if self.ok else "fail")

    def lines(self) -> list[str]:
        mark = {"ok": "✓", "warn": "!", "fail": "✗"}[self.level]
        shown = [f"{mark} {self.name}: {self.detail}"]
        if self.advice:
            shown.append(f"  {'fix' if self.level == 'fail' else 'note'}: {self.advice}")
        return shown


# --- the checks -----------------------------------------------------------------------------------------


def check_region(config: Config, environ: Mapping[str, str]) -> Check:
    """An explicit LANGFLOW_CMS_ENDPOINT must name the same region as LANGFLOW_CMS_REGION."""
    host = urlsplit(config.endpoint).hostname or ""
    if config.is_loopback:
        return Check("region", True, f"{config.region} (the endpoint is on this machine: no region to match)")
    if not environ.get("LANGFLOW_CMS_ENDPOINT", "").strip():
        return Check("region", True, f"{config.region}: the endpoint {host} follows LANGFLOW_CMS_REGION")
    labels = host.split(".")
    if not host.endswith(".aliyuncs.com"):
        return Check(
            "region",
            True,
            f"{config.region}; the endpoint {host} is not an aliyuncs.com name (a proxy?), so its region "
            "cannot be checked",
            level="warn",
        )
    named = [label for label in labels[1:-2] if _REGION_LABEL.fullmatch(label)]
    if not named or config.region in named:
        return Check("region", True, f"{config.region} matches the endpoint {host}")
    other = named[0]
    return Check(
        "region",
        False,
        f"LANGFLOW_CMS_ENDPOINT {host} is in region {other} but LANGFLOW_CMS_REGION is {config.region}: "
        "requests would be signed for one region and sent to another",
        f"make them agree: set LANGFLOW_CMS_REGION={other}, or unset LANGFLOW_CMS_ENDPOINT so it follows the "
        f"region (https://metrics.{config.region}.aliyuncs.com)",
    )


def check_monitor(config: Config) -> Check:
    """Which flows are measured, said plainly."""
    if not config.enabled:
        return Check(
            "monitor",
            True,
            "LANGFLOW_CMS_ENABLED is false: nothing is recorded or sent, whatever LANGFLOW_CMS_MONITOR says",
            "unset LANGFLOW_CMS_ENABLED (or set it to true) to report",
            level="warn",
        )
    if config.monitor == "all":
        return Check("monitor", True, "all: every flow run is measured, with or without a CMS Metric node")
    if config.monitor == "off":
        return Check(
            "monitor",
            True,
            "off (LANGFLOW_CMS_MONITOR=off): no flow is monitored, not even those with a CMS Metric node",
            "set LANGFLOW_CMS_MONITOR=annotated (flows with a CMS Metric node) or all (every flow)",
            level="warn",
        )
    return Check(
        "monitor",
        True,
        "annotated: only flows that contain a CMS Metric node are measured; "
        "flows without a CMS Metric node are not monitored",
        "add a CMS Metric node to each flow to measure, "
        "or set LANGFLOW_CMS_MONITOR=all to measure every flow",
        level="warn",
    )


def check_tracing() -> Check:
    """The ``lfx.services`` entry point that makes Langflow load our tracing service: present and loadable."""
    found = [ep for ep in entry_points(group=TRACING_GROUP) if ep.name == TRACING_NAME]
    ours = [ep for ep in found if ep.value.replace(" ", "") == TRACING_TARGET]
    if not ours:
        instead = f" (only {', '.join(ep.value for ep in found)})" if found else ""
        return Check(
            "tracing",
            False,
            f"no {TRACING_GROUP} entry point {TRACING_NAME} = {TRACING_TARGET} in this Python environment "
            f"({sys.prefix}){instead}: Langflow will not load the plugin and no flow is measured",
            "pip install langflow-cms into the environment Langflow runs in (from a checkout: "
            "pip install -e .), then restart Langflow",
        )
    try:
        loaded = ours[0].load()
    except Exception as exc:  # an import error of any kind is the finding
        return Check(
            "tracing",
            False,
            f"the {TRACING_GROUP} entry point {TRACING_NAME} is installed but does not load: "
            f"{type(exc).__name__}: {exc}",
            "reinstall langflow-cms with a matching lfx/Langflow "
            "(pip install --force-reinstall langflow-cms)",
        )
    detail = f"{TRACING_GROUP} entry point {TRACING_NAME} = {TRACING_TARGET} loads ({loaded.__module__})"
    others = [ep for ep in found if ep not in ours]
    if others:
        names = ", ".join(f"{ep.value} ({ep.dist.name if ep.dist else '?'})" for ep in others)
        return Check(
            "tracing",
            True,
            f"{detail}; another package also registers {TRACING_NAME}: {names}",
            "Langflow keeps only one tracing service: "
            "uninstall the other package or the metrics may not flow",
            level="warn",
        )
    return Check("tracing", True, detail)


def _read_manifest(package_dir: Path) -> dict[str, Any]:
    """extension.json parsed and, when lfx is importable, validated the way Langflow validates it."""
    path = package_dir / "extension.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    try:
        from lfx.extension.manifest import load_manifest
    except ImportError:
        return data
    load_manifest(package_dir)  # raises ValueError/TypeError on a manifest Langflow would reject
    return data


def check_components(environ: Mapping[str, str], package_dir: Path = PACKAGE_DIR) -> Check:
    """The CMS Metric and Timer nodes are discoverable: the ``langflow.extensions`` entry point, a manifest
    that parses, and the bundle folder with its four component files. Cheap: Langflow's component index is
    not built."""
    path_hint = 'LANGFLOW_COMPONENTS_PATH="$(langflow-cms components-path)"'
    declared = [
        ep for ep in entry_points(group=EXTENSION_GROUP) if ep.value.split(":")[0].strip() == "langflow_cms"
    ]
    if not declared:
        return Check(
            "components",
            False,
            f"no {EXTENSION_GROUP} entry point for langflow_cms in this environment: Langflow will not show "
            "the CMS Metric and Timer nodes",
            "pip install langflow-cms into the environment Langflow runs in, or load the nodes from a path "
            f"with {path_hint} (see langflow-cms components-path)",
        )
    manifest_path = package_dir / "extension.json"
    try:
        manifest = _read_manifest(package_dir)
        bundle = next(b for b in manifest.get("bundles", []) if b.get("name") == BUNDLE)
        folder = package_dir / bundle["path"]
    except (OSError, ValueError, TypeError, KeyError, StopIteration, AttributeError) as exc:
        reason = f"no bundle named {BUNDLE}" if isinstance(exc, StopIteration) else f"{type(exc).__name__}"
        return Check(
            "components",
            False,
            f"the extension manifest {manifest_path} is missing or invalid ({reason}: {exc})",
            "reinstall langflow-cms (pip install --force-reinstall langflow-cms)",
        )
    missing = [name for name in COMPONENT_FILES if not (folder / name).is_file()]
    if missing:
        return Check(
            "components",
            False,
            f"the bundle folder {folder} lacks {', '.join(missing)}: Langflow will not show every node",
            "reinstall langflow-cms (pip install --force-reinstall langflow-cms)",
        )
    detail = (
        f"Langflow extension {manifest.get('id', '?')} ({EXTENSION_GROUP} entry point, "
        f"{manifest_path.name}), bundle {BUNDLE} in {folder} with {', '.join(COMPONENT_FILES)}: "
        "found without LANGFLOW_COMPONENTS_PATH"
    )
    paths = [p for p in environ.get("LANGFLOW_COMPONENTS_PATH", "").split(",") if p.strip()]
    if any(Path(p).expanduser().resolve() == folder.parent for p in paths):
        detail += "; LANGFLOW_COMPONENTS_PATH also points at it"
    return Check(
        "components",
        True,
        detail,
        f"if you load components from a path instead: {path_hint} (langflow-cms components-path prints the "
        "folder)",
    )


def check_credentials(config: Config, environ: Mapping[str, str] | None) -> tuple[Check, Any]:
    """Where the credentials come from (masked); (check, provider or None)."""
    try:
        provider = credential_provider(dev=config.dev, environ=environ)
        provider.get()
    except CredentialError as exc:
        service = _failed_service(str(exc), environ if environ is not None else os.environ)
        if service is not None:
            return Check("credentials", False, service, advice_for("Credentials.Unavailable")), None
        return Check("credentials", False, str(exc), advice_for("NoCredentials")), None
    return Check("credentials", True, provider.describe()), provider


_SERVICES = {  # the credentials library's provider name -> the setting that configures it
    "credential_uri": "ALIBABA_CLOUD_CREDENTIALS_URI",
    "ecs_ram_role": "ALIBABA_CLOUD_ECS_METADATA",
    "oidc_role_arn": "ALIBABA_CLOUD_ROLE_ARN",
    "ram_role_arn": "ALIBABA_CLOUD_ROLE_ARN",
}
_HTTP_CODE = re.compile(r"http_code=(\d{3})")


def _failed_service(message: str, environ: Mapping[str, str]) -> str | None:
    """A credentials service that is set up but failed (a down metadata service, STS or credentials URI):
    what to say instead of "no credentials found", or None when nothing of the kind was configured."""
    for part in message.split("; "):
        name, _, error = part.rpartition("Tried: ")[2].partition(": ")
        setting = _SERVICES.get(name.strip())
        if setting is None or not environ.get(setting):
            continue
        status = _HTTP_CODE.search(error)
        answered = f"answered HTTP {status.group(1)}" if status else "did not answer"
        return f"the credentials service set by {setting} {answered}: {cut(error.strip(), 300)}"
    return None


class _ProbeTransport(Transport):
    """A Transport that remembers the HTTP status of the last reply. The transport reports a digit body
    ``Code`` (e.g. ``"500"``) as the status, which is wrong for an HTTP 200 reply carrying that code."""

    http_status: int | None = None

    def _acs_client(self):
        client = super()._acs_client()
        inner = getattr(client, "_implementation_of_do_action", None)  # the SDK's (status, ..., error)
        if inner is not None and not getattr(inner, "_records_status", False):

            def recording(request, signer=None):
                reply = inner(request, signer)
                self.http_status = reply[0]
                return reply

            recording._records_status = True  # type: ignore[attr-defined]
            client._implementation_of_do_action = recording
        return client


def emulator_command(port: int, credential: Any) -> str:
    """The command that starts an emulator on ``port`` accepting the key pair doctor signs with: the dev key
    needs no flag; a key from the environment is named by its variables (never by its value)."""
    command = f"langflow-cms emulator --port {port}"
    source = getattr(credential, "source", "dev")
    if source == "dev":
        return command
    prefix = "ALIYUN" if source.startswith("env ALIYUN_") else "ALIBABA_CLOUD"
    if source.startswith(("env ALIBABA_CLOUD_", "env ALIYUN_")):
        token = ":$ALIBABA_CLOUD_SECURITY_TOKEN" if credential.security_token else ""
        return f'{command} --key "${prefix}_ACCESS_KEY_ID:${prefix}_ACCESS_KEY_SECRET{token}"'
    return f"{command} --key ID:SECRET"


def _network_finding(exc: CmsError, config: Config, credential: Any = None) -> tuple[str, str] | None:
    """(detail, advice) for a call that got no HTTP answer, told apart by what the socket said."""
    text = str(exc)
    low = text.lower()
    parts = urlsplit(config.endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if exc.code == "SDK.Timeout" or "read timed out" in low:
        detail = (
            f"read timeout: {host}:{port} accepted the connection but sent no answer within "
            f"{config.read_timeout:g} s (LANGFLOW_CMS_READ_TIMEOUT)"
        )
        if config.is_loopback:
            return detail, (
                f"whatever listens on port {port} is stalled (an emulator started with --latency?): "
                "restart it or raise LANGFLOW_CMS_READ_TIMEOUT"
            )
        return detail, (
            "a proxy or firewall holds the connection, or CloudMonitor is slow: check HTTPS_PROXY / "
            "NO_PROXY, try again, or raise LANGFLOW_CMS_READ_TIMEOUT (a timed-out write may still have "
            "been stored)"
        )
    if "connection refused" in low or "errno 111" in low or "errno 61" in low:
        detail = f"connection refused: nothing listens on {host}:{port}, so the endpoint cannot be reached"
        if config.is_loopback:
            start = emulator_command(port, credential)
            if start.endswith("ID:SECRET"):
                start += f"` (the key pair of {credential.source})"
            else:
                start += "`"
            return detail, (
                f"start the emulator with `{start}, or point LANGFLOW_CMS_ENDPOINT at the port it listens on"
            )
        return detail, "check the host and port in LANGFLOW_CMS_ENDPOINT, firewalls, HTTPS_PROXY / NO_PROXY"
    if "connecttimeout" in low or "connect timeout" in low or "timed out" in low:
        return (
            f"connect timeout: no connection to {host}:{port} within {config.connect_timeout:g} s "
            "(LANGFLOW_CMS_CONNECT_TIMEOUT); the endpoint cannot be reached",
            "packets are dropped on the way: check security groups, firewalls and routes (a VPC without "
            "internet access needs a NAT gateway or a VPC endpoint), and HTTPS_PROXY / NO_PROXY",
        )
    if any(s in low for s in ("name or service not known", "nodename nor servname", "name resolution")) or (
        "getaddrinfo" in low
    ):
        return (
            f"the host name {host} does not resolve (DNS): the endpoint cannot be reached",
            "check the spelling of LANGFLOW_CMS_ENDPOINT / LANGFLOW_CMS_REGION and this machine's DNS",
        )
    if "proxyerror" in low or ("proxy" in low and "unable to connect" in low):
        return (
            f"the proxy failed to connect to {host}:{port}: the endpoint cannot be reached",
            "check HTTPS_PROXY, or add the host to NO_PROXY",
        )
    if "ssl" in low or "certificate" in low:
        return (
            f"the TLS handshake with {host}:{port} failed: the endpoint cannot be reached",
            "check the system CA certificates; behind a proxy that intercepts HTTPS, point "
            "ALIBABA_CLOUD_CA_BUNDLE at its CA bundle",
        )
    if "aborted" in low or "remotedisconnected" in low or "reset by peer" in low:
        return (
            f"{host}:{port} closed the connection without an answer: the endpoint cannot be reached",
            "try again; if it persists, check the proxy or load balancer in between",
        )
    if exc.code == "SDK.HttpError":
        return f"the endpoint cannot be reached: {text}", advice_for(exc.code)
    return None


def _signing_credential(provider: CredentialProvider) -> Any:
    try:
        return provider.get()
    except CredentialError:
        return None


def check_endpoint(config: Config, provider: CredentialProvider) -> Check:
    """One signed PutCustomMetric call with a data point on the fixed probe series."""
    transport = _ProbeTransport(config, provider)
    dimensions = {"instance": PROBE_INSTANCE, **({"env": config.env} if config.env else {})}
    window = Window(PROBE_METRIC, clean_dimensions(None, dimensions), int(time.time() // 60 * 60))
    window.add(1.0)
    started = time.monotonic()
    try:
        request_id = transport.put([aggregate_entry(window, config.group_id)])
    except CmsError as exc:
        network = _network_finding(exc, config, _signing_credential(provider))
        if network is not None:
            detail, advice = network
            return Check("endpoint", False, f"{config.endpoint}: {detail}", advice)
        message = str(exc)
        if exc.http_status:
            message = message.removesuffix(f" (HTTP {exc.http_status})")
        status = transport.http_status
        if status is not None and 200 <= status < 300:
            message += f" (HTTP {status} reply with an error code in its body)"
        elif status is not None:
            message += f" (HTTP {status})"
        advice = advice_for(exc.code)
        if config.is_loopback and exc.code == "InvalidAccessKeyId.NotFound":
            credential = _signing_credential(provider)
            port = urlsplit(config.endpoint).port or 80
            start = emulator_command(port, credential)
            advice = (
                f"the emulator on port {port} does not accept the key this process signs with "
                f"({getattr(credential, 'source', '?')}): restart it with `{start}`"
                + (f" (the key pair of {credential.source})" if start.endswith("ID:SECRET") else "")
            )
        return Check("endpoint", False, f"{config.endpoint}: {message}", advice)
    took = (time.monotonic() - started) * 1000
    shown = ",".join(f"{k}={v}" for k, v in dimensions.items())
    return Check(
        "endpoint",
        True,
        f"{config.endpoint}: a signed PutCustomMetric call succeeded in {took:.0f} ms "
        f"(RequestId {request_id}; probe series {PROBE_METRIC}{{{shown}}}, the same on every run)",
    )


def check_spool(config: Config) -> Check:
    try:
        config.spool_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        waiting = waiting_entries(config.spool_dir)  # type: ignore[arg-type]
    except OSError as exc:
        return Check(
            "spool", False, f"{config.spool_dir}: {exc}", "fix the directory or unset LANGFLOW_CMS_SPOOL_DIR"
        )
    return Check("spool", True, f"{config.spool_dir}: writable, {waiting} entries waiting to be sent")


# --- the report ---------------------------------------------------------------------------------------------


def collect(environ: Mapping[str, str] | None = None) -> tuple[list[Check], int]:
    """Every check, in order, and the exit code: 0 all fine, 1 something to fix, 2 bad configuration."""
    env = environ if environ is not None else os.environ
    try:
        config = Config.from_env(environ)
    except ConfigError as exc:
        advice = f"fix that variable (every variable: {REPOSITORY_URL}/docs/configuration.md)"
        return [Check("configuration", False, str(exc), advice)], 2
    checks = [
        Check(
            "configuration",
            True,
            f"endpoint {config.endpoint}, region {config.region}, mode {config.mode}, "
            f"group {config.group_id}, instance {config.instance}"
            + (", development mode" if config.dev else ""),
        ),
        check_region(config, env),
        check_monitor(config),
        check_tracing(),
        check_components(env),
    ]
    credentials, provider = check_credentials(config, environ)
    checks.append(credentials)
    if provider is not None:
        checks.append(check_endpoint(config, provider))
    if config.spool_dir is not None:
        checks.append(check_spool(config))
    return checks, (0 if all(c.ok for c in checks) else 1)


def run_doctor(
    environ: Mapping[str, str] | None = None,
    out: Callable[[str], None] = print,
    as_json: bool = False,
) -> int:
    """Print the checks (lines, or one JSON document with ``as_json``); returns 0 when everything works, 1
    when something must be fixed, 2 for bad configuration."""
    checks, code = collect(environ)
    if as_json:
        report = {"ok": code == 0, "exit_code": code, "checks": [asdict(c) for c in checks]}
        out(json.dumps(report, indent=2, ensure_ascii=True))
        return code
    for check in checks:
        for line in check.lines():
            out(line)
    return code
