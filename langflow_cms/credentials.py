"""Where AccessKeys come from, and an AcsClient that signs every request with the current one.

Order (first match wins):
1. explicit values (a CMS Metric node's secret inputs, for that node's flow only);
2. `ALIBABA_CLOUD_ACCESS_KEY_ID` / `_SECRET` (+ `ALIBABA_CLOUD_SECURITY_TOKEN` for STS);
3. legacy `ALIYUN_ACCESS_KEY_ID` / `_SECRET` (with a one-time warning);
4. the `alibabacloud_credentials` default chain: OIDC/RRSA (ACK), CLI profile, credentials file, ECS RAM role,
   credentials URI. Those providers cache and refresh STS credentials themselves;
5. in development mode (`LANGFLOW_CMS_DEV`), the emulator's key pair from `langflow_cms.dev` instead of
   the default chain: development never probes ECS metadata or STS.

Two library behaviours are worked around here:
- `aliyunsdkcore`'s `SignerFactory` lets env `ALIYUN_ACCESS_KEY_ID/SECRET` silently override an explicit
  `credential=` (cms-api.md §3.6), and its signers are static. `make_acs_client` installs `ProviderSigner`,
  which asks our provider on every request, so what signs is always what `describe()` reports.
- `alibabacloud_credentials` reads its environment variables at import time (§3.7). We build its providers
  ourselves, passing every setting from the `environ` we were given, so a test's (or a caller's) environment
  is the one that counts. We also skip its environment-variable provider: steps 2-3 above already did that
  job.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from urllib.request import proxy_bypass_environment

from aliyunsdkcore.auth.signers.signer import Signer
from aliyunsdkcore.client import AcsClient

from langflow_cms import dev as dev_defaults
from langflow_cms.redact import install_log_redaction, mask_key_id, redact, register_secret

__all__ = [
    "ENV_VARIABLES",
    "Credential",
    "CredentialError",
    "CredentialProvider",
    "ProviderSigner",
    "credential_provider",
    "make_acs_client",
    "proxies_for",
]

logger = logging.getLogger("langflow_cms.credentials")

ENV_VARIABLES: dict[str, str] = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "AccessKey id (step 2)",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "AccessKey secret (step 2)",
    "ALIBABA_CLOUD_SECURITY_TOKEN": "STS token, with an STS key pair (step 2)",
    "ALIYUN_ACCESS_KEY_ID": "legacy AccessKey id (step 3)",
    "ALIYUN_ACCESS_KEY_SECRET": "legacy AccessKey secret (step 3)",
    "ALIBABA_CLOUD_OIDC_TOKEN_FILE": "RRSA/OIDC token file (ACK sets it)",
    "ALIBABA_CLOUD_ROLE_ARN": "RAM role to assume with the OIDC token",
    "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": "OIDC provider ARN",
    "ALIBABA_CLOUD_ROLE_SESSION_NAME": "session name for the assumed role",
    "ALIBABA_CLOUD_STS_REGION": "use the regional STS endpoint sts.<region>.aliyuncs.com",
    "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED": "use sts-vpc endpoints",
    "ALIBABA_CLOUD_PROFILE": "profile name in the CLI config / credentials file",
    "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true = skip ~/.aliyun/config.json",
    "ALIBABA_CLOUD_CREDENTIALS_FILE": "ini credentials file (default ~/.alibabacloud/credentials.ini)",
    "ALIBABA_CLOUD_ECS_METADATA": "ECS RAM role name (default: discovered from the metadata service)",
    "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true = never ask the ECS metadata service",
    "ALIBABA_CLOUD_IMDSV1_DISABLED": "true = require IMDSv2 tokens on ECS",
    "ALIBABA_CLOUD_CREDENTIALS_URI": "URL serving STS credentials (JSON: Code, AccessKeyId, ..., Expiration)",
}
"""Every credential-related variable we read, for docs and `doctor`."""

_HOW_TO_CONFIGURE = (
    "enter an AccessKey in the CMS Metric node, or set ALIBABA_CLOUD_ACCESS_KEY_ID and "
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET (plus ALIBABA_CLOUD_SECURITY_TOKEN for STS), or configure a profile "
    "(`aliyun configure`, ALIBABA_CLOUD_CREDENTIALS_FILE), or run with a RAM role (ECS RAM role, "
    "ACK RRSA via ALIBABA_CLOUD_ROLE_ARN/ALIBABA_CLOUD_OIDC_PROVIDER_ARN/ALIBABA_CLOUD_OIDC_TOKEN_FILE), "
    "or set ALIBABA_CLOUD_CREDENTIALS_URI; for local development against the emulator set LANGFLOW_CMS_DEV=1"
)
_FAILURE_BACKOFF_S = 1.0
"""After the default chain found nothing, answer from memory for this long instead of probing ECS metadata
again (short: delivery retries with backoff, and a one-second hiccup must cost nothing)."""


class CredentialError(RuntimeError):
    """No usable credential. The message says what to configure and never contains a secret.

    ``transient``: a source that may answer a moment later (the metadata service, STS, a credentials URI,
    the default chain finding nothing): delivery retries until its deadline. Otherwise the configuration is
    wrong (half a key pair) and stays wrong until someone fixes it."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, repr=False)
class Credential:
    """An AccessKey pair, optionally with an STS token. Its repr masks the id and omits the secret and
    token."""

    access_key_id: str
    access_key_secret: str
    security_token: str | None = None
    source: str = ""

    def __repr__(self) -> str:
        token = ", security_token=***" if self.security_token else ""
        return f"Credential(access_key_id={mask_key_id(self.access_key_id)!r}{token}, source={self.source!r})"

    __str__ = __repr__


def _register(credential: Credential) -> Credential:
    register_secret(credential.access_key_secret)
    register_secret(credential.security_token)
    return credential


class CredentialProvider:
    """Hands out the current credential. `get()` is called for every request, so it must be cheap.

    Static sources return the same object; the default chain asks the `alibabacloud_credentials` provider that
    worked last time, which returns its cached value and refreshes STS credentials before they expire.
    """

    def __init__(self, source: str, fetch: Callable[[], Credential]) -> None:
        self._source = source
        self._fetch = fetch

    def get(self) -> Credential:
        """The credential to sign the next request with. Raises CredentialError when none can be found."""
        return self._fetch()

    def describe(self) -> str:
        """Which source and key, masked, e.g. `env ALIBABA_CLOUD_* (LTAI****abcd)` — for `doctor` and logs."""
        try:
            credential = self.get()
        except CredentialError as exc:
            return f"no credential ({exc})"
        return f"{credential.source} ({mask_key_id(credential.access_key_id)})"

    def __repr__(self) -> str:
        return f"CredentialProvider({self._source!r})"


def _static(credential: Credential) -> CredentialProvider:
    _register(credential)
    return CredentialProvider(credential.source, lambda: credential)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _build_chain(environ: Mapping[str, str]) -> list[Any]:
    """The `alibabacloud_credentials` default chain minus its env step, configured from `environ`, not import
    time.

    The ECS provider is built with `async_update_enabled=False`: the default starts an APScheduler thread per
    provider; without it the cached value is refreshed synchronously by the sender thread shortly before
    expiry.
    """
    from alibabacloud_credentials.provider import (
        CLIProfileCredentialsProvider,
        EcsRamRoleCredentialsProvider,
        OIDCRoleArnCredentialsProvider,
        ProfileCredentialsProvider,
        URLCredentialsProvider,
    )

    home = environ.get("HOME") or os.path.expanduser("~")
    profile = environ.get("ALIBABA_CLOUD_PROFILE") or None
    factories: list[Callable[[], Any]] = []
    if all(
        environ.get(name)
        for name in (
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
            "ALIBABA_CLOUD_ROLE_ARN",
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
        )
    ):
        factories.append(
            lambda: OIDCRoleArnCredentialsProvider(
                role_arn=environ["ALIBABA_CLOUD_ROLE_ARN"],
                oidc_provider_arn=environ["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"],
                oidc_token_file_path=environ["ALIBABA_CLOUD_OIDC_TOKEN_FILE"],
                role_session_name=environ.get("ALIBABA_CLOUD_ROLE_SESSION_NAME") or None,
                sts_region_id=environ.get("ALIBABA_CLOUD_STS_REGION") or None,
                enable_vpc=_truthy(environ.get("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED")),
            )
        )
    if not _truthy(environ.get("ALIBABA_CLOUD_CLI_PROFILE_DISABLED")):
        factories.append(
            lambda: CLIProfileCredentialsProvider(
                profile_name=profile, profile_file=os.path.join(home, ".aliyun", "config.json")
            )
        )
    factories.append(
        lambda: ProfileCredentialsProvider(
            profile_file=environ.get("ALIBABA_CLOUD_CREDENTIALS_FILE")
            or os.path.join(home, ".alibabacloud", "credentials.ini"),
            profile_name=profile or "default",
        )
    )
    if not _truthy(environ.get("ALIBABA_CLOUD_ECS_METADATA_DISABLED")):
        factories.append(
            lambda: EcsRamRoleCredentialsProvider(
                role_name=environ.get("ALIBABA_CLOUD_ECS_METADATA") or None,
                disable_imds_v1=_truthy(environ.get("ALIBABA_CLOUD_IMDSV1_DISABLED")),
                async_update_enabled=False,
            )
        )
    if environ.get("ALIBABA_CLOUD_CREDENTIALS_URI"):
        factories.append(lambda: URLCredentialsProvider(uri=environ["ALIBABA_CLOUD_CREDENTIALS_URI"]))

    chain = []
    for factory in factories:
        try:
            chain.append(factory())
        except ValueError as exc:  # e.g. the library's own import-time env disables IMDS
            logger.debug("skipping a credential provider: %s", exc)
    return chain


class _QuietProbe(logging.Filter):
    """Drops the credentials library's log records from the thread that is walking the chain.

    Every source that is not configured here fails, and the library logs each failure at ERROR with a
    traceback on its own stderr handler; those failures are expected and end up, redacted, in our
    CredentialError.
    """

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread not in self.threads


_QUIET_PROBE = _QuietProbe()
logging.getLogger("credentials").addFilter(_QUIET_PROBE)


class _ChainFetcher:
    """Walks the chain once, then sticks to the provider that answered (as the library's default chain
    does)."""

    def __init__(self, environ: Mapping[str, str], dev: bool) -> None:
        # The library costs ~0.5 s to import, so only setups that use the chain pay for it, and they pay
        # now (when the reporter is created) rather than when the chain is first walked: that may be the
        # at-exit flush, when importing it fails ("can't register atexit after shutdown").
        import alibabacloud_credentials.provider  # noqa: F401

        self._environ = dict(environ)
        self._dev = dev
        self._lock = threading.Lock()
        _FETCHERS.add(self)
        self._provider: Any = None
        self._fallback: Credential | None = None
        self._last: Credential | None = None
        self._failed: tuple[float, str] | None = None

    def __call__(self) -> Credential:
        with self._lock:
            if self._fallback is not None:
                return self._fallback
            if self._provider is None:
                return self._find()
            try:
                return self._convert(self._provider.get_credentials())
            except Exception as exc:
                name = self._provider.get_provider_name()
                raise CredentialError(
                    f"refreshing credentials from {name} failed: {redact(str(exc))}", transient=True
                ) from None

    def _find(self) -> Credential:
        now = time.monotonic()
        if self._failed is not None and now - self._failed[0] < _FAILURE_BACKOFF_S:
            raise CredentialError(self._failed[1], transient=True)
        errors = []
        _QUIET_PROBE.threads.add(threading.get_ident())
        try:
            for provider in _build_chain(self._environ):
                try:
                    found = provider.get_credentials()
                except Exception as exc:
                    errors.append(f"{provider.get_provider_name()}: {redact(str(exc))}")
                    continue
                if found is not None and found.get_access_key_id() and found.get_access_key_secret():
                    self._provider = provider
                    return self._convert(found)
        finally:
            _QUIET_PROBE.threads.discard(threading.get_ident())
        if self._dev:
            self._fallback = Credential(
                dev_defaults.DEV_ACCESS_KEY_ID, dev_defaults.DEV_ACCESS_KEY_SECRET, source="dev"
            )
            return _register(self._fallback)
        tried = "; ".join(errors) or "nothing"
        message = f"no Alibaba Cloud credentials found: {_HOW_TO_CONFIGURE}. Tried: {tried}"
        self._failed = (now, message)
        raise CredentialError(message, transient=True)

    def _convert(self, found: Any) -> Credential:
        """Wrap the library's value; reuse the previous object while it is unchanged (cheap, registered
        once)."""
        key = (found.get_access_key_id(), found.get_access_key_secret(), found.get_security_token())
        last = self._last
        if last is None or (last.access_key_id, last.access_key_secret, last.security_token) != key:
            self._last = _register(Credential(*key, source=f"default chain: {found.get_provider_name()}"))
        return self._last


_FETCHERS: weakref.WeakSet[_ChainFetcher] = weakref.WeakSet()


def _remake_locks_in_child() -> None:
    """A fork while another thread refreshed credentials copies a held lock: the child would hang on it."""
    for fetcher in list(_FETCHERS):
        fetcher._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_remake_locks_in_child)

_warned_legacy = False


def _warn_legacy_once(message: str) -> None:
    global _warned_legacy
    if not _warned_legacy:
        _warned_legacy = True
        logger.warning(message)


def _pair(environ: Mapping[str, str], id_name: str, secret_name: str) -> tuple[str, str] | None:
    """Both variables set -> the pair; neither -> None; only one -> CredentialError (a half-set key is a
    mistake)."""
    key_id, secret = environ.get(id_name, "").strip(), environ.get(secret_name, "").strip()
    if key_id and secret:
        return key_id, secret
    if key_id or secret:
        missing = secret_name if key_id else id_name
        raise CredentialError(f"{missing} is not set but its partner is; set both or neither")
    return None


def credential_provider(
    explicit: Credential | None = None, *, dev: bool = False, environ: Mapping[str, str] | None = None
) -> CredentialProvider:
    """Pick the credential source (see the module docstring for the order). `environ` defaults to os.environ.

    Static sources are settled here; the default chain is only walked on the first `get()`, because it may
    need the network (ECS metadata, STS). Raises CredentialError for a half-configured source.
    """
    environ = os.environ if environ is None else environ
    legacy = _pair(environ, "ALIYUN_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_SECRET")

    if explicit is not None:
        if not explicit.access_key_id or not explicit.access_key_secret:
            raise CredentialError("the explicit credential needs both an AccessKey id and secret")
        chosen = dataclasses.replace(explicit, source=explicit.source or "explicit")
    elif (
        modern := _pair(environ, "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    ) is not None:
        token = environ.get("ALIBABA_CLOUD_SECURITY_TOKEN", "").strip() or None
        chosen = Credential(*modern, security_token=token, source="env ALIBABA_CLOUD_*")
    elif legacy is not None:
        _warn_legacy_once(
            "using the legacy ALIYUN_ACCESS_KEY_ID/ALIYUN_ACCESS_KEY_SECRET variables; "
            "rename them to ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET"
        )
        chosen = Credential(*legacy, source="env ALIYUN_* (legacy)")
    elif dev:
        # Development mode only ever talks to the loopback emulator: never probe ECS metadata or STS for it.
        chosen = Credential(dev_defaults.DEV_ACCESS_KEY_ID, dev_defaults.DEV_ACCESS_KEY_SECRET, source="dev")
    else:
        return CredentialProvider("default chain", _ChainFetcher(environ, dev))

    if legacy is not None and legacy[0] != chosen.access_key_id:
        _warn_legacy_once(
            f"ALIYUN_ACCESS_KEY_ID ({mask_key_id(legacy[0])}) is set but ignored in favour of the "
            f"{chosen.source} credential ({mask_key_id(chosen.access_key_id)})"
        )
    return _static(chosen)


class ProviderSigner(Signer):
    """An `aliyunsdkcore` signer that asks the provider for the current credential on every request.

    Mirrors `StsTokenSigner`: with a token, `SecurityToken` is added (RPC query parameter, or the
    `x-acs-security-token` header for ROA) before signing, so it is covered by the signature. A token left on
    a re-sent request object by an earlier credential is removed when the current one has none.
    """

    def __init__(self, provider: CredentialProvider) -> None:
        self._provider = provider

    def sign(self, region_id: str, request: Any) -> tuple[dict, str]:
        credential = self._provider.get()
        rpc = request.get_style() == "RPC"
        if credential.security_token:
            if rpc:
                request.add_query_param("SecurityToken", credential.security_token)
            else:
                request.add_header("x-acs-security-token", credential.security_token)
        elif rpc:
            request.get_query_params().pop("SecurityToken", None)
        else:
            request.get_headers().pop("x-acs-security-token", None)
        key_id, secret = credential.access_key_id, credential.access_key_secret
        return request.get_signed_header(region_id, key_id, secret), request.get_url(
            region_id, key_id, secret
        )


_PLACEHOLDER = "replaced-by-ProviderSigner"


def make_acs_client(
    provider: CredentialProvider,
    *,
    region: str,
    connect_timeout: float,
    read_timeout: float,
    proxy: dict | None,
) -> AcsClient:
    """An AcsClient with the SDK's retries off (we retry ourselves; its retry is a no-op for CMS anyway) that
    signs with `ProviderSigner`.

    Passing placeholder `ak`/`secret` makes `SignerFactory` take its first branch, so it never looks at
    `ALIYUN_ACCESS_KEY_*`; the placeholder signer is then replaced. Pass `proxy=proxies_for(endpoint)`: with
    None the SDK copies HTTP(S)_PROXY from the environment on every request and ignores NO_PROXY.
    """
    install_log_redaction()
    client = AcsClient(
        ak=_PLACEHOLDER,
        secret=_PLACEHOLDER,
        region_id=region,
        auto_retry=False,
        max_retry_time=0,
        connect_timeout=connect_timeout,
        timeout=read_timeout,
        proxy=proxy,
    )
    client._signer = ProviderSigner(provider)
    return client


def proxies_for(endpoint: str, environ: Mapping[str, str] | None = None) -> dict:
    """The `proxy=` dict for AcsClient: HTTP(S)_PROXY honoured, NO_PROXY too (which the SDK alone ignores).

    Always returns both keys. A bypassed or unconfigured scheme maps to None, which the SDK passes through as
    "no proxy"; an empty dict would be falsy and make the SDK copy the environment's proxies after all.
    """
    environ = os.environ if environ is None else environ

    def env(name: str) -> str | None:
        return environ.get(name.lower()) or environ.get(name.upper()) or None

    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or ""  # NO_PROXY may name ports
    no_proxy = env("no_proxy")
    if no_proxy and (no_proxy.strip() == "*" or proxy_bypass_environment(host, {"no": no_proxy})):
        return {"http": None, "https": None}
    return {"http": env("http_proxy"), "https": env("https_proxy")}
