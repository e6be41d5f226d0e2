"""`langflow-cms doctor`: is this machine set up to report to CloudMonitor, and if not, what to fix.

It checks, in order, what a failing deployment usually gets wrong: the configuration, where the
credentials come from, and whether one signed PutCustomMetric call to the endpoint succeeds (it writes a
single ``langflow_cms_doctor`` data point). Then the spool, if one is configured. Nothing secret is printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from langflow_cms.config import Config, ConfigError
from langflow_cms.credentials import CredentialError, credential_provider
from langflow_cms.delivery.serializer import aggregate_entry
from langflow_cms.delivery.spool import waiting_entries
from langflow_cms.delivery.transport import CmsError, Transport
from langflow_cms.naming import clean_dimensions
from langflow_cms.pipeline.window import Window

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
        lambda c: c.startswith("Forbidden") or c in ("403", "AccessForbidden", "NoPermission"),
        "the key is valid "
        "but may not write metrics: grant the RAM action cms:PutCustomMetric (policies/metrics.json; "
        "cms:PutCustomEvent for failure events, policies/events.json) to the RAM user or role",
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
    (lambda c: c == "NoCredentials", "configure credentials: see docs/configuration.md, 'Credentials'"),
)


def advice_for(code: str) -> str:
    """What to do about a CMS error code, in one sentence."""
    for matches, text in ADVICE:
        if matches(code):
            return text
    return "see the error code in the CloudMonitor API error reference"


def run_doctor(environ: Mapping[str, str] | None = None, out: Callable[[str], None] = print) -> int:
    """Print the checks; returns 0 when everything works, 1 when something must be fixed, 2 for bad config."""
    try:
        config = Config.from_env(environ)
    except ConfigError as exc:
        out(f"✗ configuration: {exc}")
        return 2
    out(
        f"✓ configuration: endpoint {config.endpoint}, region {config.region}, mode {config.mode}, "
        f"group {config.group_id}, instance {config.instance}" + (", development mode" if config.dev else "")
    )
    if not config.enabled:
        out("! LANGFLOW_CMS_ENABLED is false: nothing is recorded or sent")

    try:
        provider = credential_provider(dev=config.dev, environ=environ)
        provider.get()
    except CredentialError as exc:
        out(f"✗ credentials: {exc}")
        return 1
    out(f"✓ credentials: {provider.describe()}")

    healthy = _check_endpoint(config, Transport(config, provider), out)
    if config.spool_dir is not None:
        try:
            config.spool_dir.mkdir(parents=True, exist_ok=True)
            waiting = waiting_entries(config.spool_dir)
            out(f"✓ spool {config.spool_dir}: writable, {waiting} entries waiting to be sent")
        except OSError as exc:
            out(f"✗ spool {config.spool_dir}: {exc}: fix the directory or unset LANGFLOW_CMS_SPOOL_DIR")
            healthy = False
    return 0 if healthy else 1


def _check_endpoint(config: Config, transport: Transport, out: Callable[[str], None]) -> bool:
    common = {"instance": config.instance, **({"env": config.env} if config.env else {})}
    window = Window("langflow_cms_doctor", clean_dimensions(None, common), int(time.time() // 60 * 60))
    window.add(1.0)
    started = time.monotonic()
    try:
        request_id = transport.put([aggregate_entry(window, config.group_id)])
    except CmsError as exc:
        out(f"✗ endpoint {config.endpoint}: {exc}")
        out(f"  fix: {advice_for(exc.code)}")
        return False
    took = (time.monotonic() - started) * 1000
    out(
        f"✓ endpoint {config.endpoint}: a signed PutCustomMetric call succeeded in {took:.0f} ms "
        f"(RequestId {request_id})"
    )
    return True
