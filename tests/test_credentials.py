"""Credential order, masking, STS refresh, the signer that legacy env vars cannot override, and proxies.

Real local HTTP servers stand in for CloudMonitor (to capture what the SDK signs) and for a credentials
URI (`ALIBABA_CLOUD_CREDENTIALS_URI`, the library's documented way to serve STS credentials): no mocks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from aliyunsdkcms.request.v20190101.PutCustomMetricRequest import PutCustomMetricRequest
from aliyunsdkcore.acs_exception.exceptions import ClientException
from aliyunsdkcore.auth.credentials import AccessKeyCredential
from aliyunsdkcore.client import AcsClient

from langflow_cms import credentials as credentials_module
from langflow_cms import dev
from langflow_cms.credentials import (
    Credential,
    CredentialError,
    credential_provider,
    make_acs_client,
    proxies_for,
)
from langflow_cms.redact import redact

NO_PROXY = {"http": None, "https": None}


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local test servers must be reached directly, whatever the machine's proxy settings."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """An environment with nothing configured: empty HOME, no ECS metadata probing (it would take seconds)."""
    return {"HOME": str(tmp_path), "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}


class _Server:
    """A tiny HTTP server on 127.0.0.1 that records requests and answers with `respond(path) -> dict`."""

    def __init__(self, respond: Callable[[str], dict]) -> None:
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                server.requests.append((self.command, self.path))
                body = json.dumps(respond(self.path)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def query(self, index: int = -1) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.requests[index][1]).query, keep_blank_values=True))


@pytest.fixture
def cms() -> Iterator[_Server]:
    server = _Server(lambda path: {"Code": "200", "Message": "success", "RequestId": "TEST"})
    yield server
    server.httpd.shutdown()


def _put(client: AcsClient, server: _Server) -> dict[str, str]:
    request = PutCustomMetricRequest()
    request.set_endpoint(server.url)
    request.set_MetricLists(
        [{"GroupId": "0", "MetricName": "m", "Dimensions": "{}", "Type": "0", "Values": '{"value": 1}'}]
    )
    client.do_action_with_exception(request)
    return server.query()


def _signature_ok(params: dict[str, str], secret: str) -> bool:
    """Independent RPC signature v1 check (cms-api.md §3.1), so we know which secret really signed."""
    params = dict(params)
    signature = params.pop("Signature")

    def pe(s: str) -> str:
        return quote(s, safe="-_.~")

    canonical = "&".join(f"{pe(k)}={pe(v)}" for k, v in sorted(params.items()))
    to_sign = f"POST&{pe('/')}&{pe(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode() == signature


# --- order ----------------------------------------------------------------------------------------

MODERN = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAImodernKey0001",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "modern-secret-1",
}
LEGACY = {"ALIYUN_ACCESS_KEY_ID": "LTAIlegacyKey0002", "ALIYUN_ACCESS_KEY_SECRET": "legacy-secret-2"}


def _ini(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "credentials.ini"
    path.write_text(
        "[default]\ntype = access_key\naccess_key_id = LTAIiniFileKey03\naccess_key_secret = ini-secret-3\n"
    )
    return {"ALIBABA_CLOUD_CREDENTIALS_FILE": str(path)}


def test_explicit_wins_over_everything(base_env: dict[str, str], tmp_path: Path) -> None:
    environ = {**base_env, **MODERN, **LEGACY, **_ini(tmp_path)}
    got = credential_provider(Credential("LTAIexplicitKey04", "explicit-secret-4"), environ=environ).get()
    assert (got.access_key_id, got.source) == ("LTAIexplicitKey04", "explicit")


def test_modern_env_wins_over_legacy_and_chain(base_env: dict[str, str], tmp_path: Path) -> None:
    environ = {
        **base_env,
        **MODERN,
        **LEGACY,
        **_ini(tmp_path),
        "ALIBABA_CLOUD_SECURITY_TOKEN": "sts-token-value",
    }
    got = credential_provider(environ=environ).get()
    assert (got.access_key_id, got.security_token, got.source) == (
        "LTAImodernKey0001",
        "sts-token-value",
        "env ALIBABA_CLOUD_*",
    )


def test_legacy_env_is_used_with_one_warning(
    base_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(credentials_module, "_warned_legacy", False)
    environ = {**base_env, **LEGACY, **_ini(tmp_path)}
    with caplog.at_level(logging.WARNING, logger="langflow_cms"):
        first = credential_provider(environ=environ).get()
        credential_provider(environ=environ).get()
    assert (first.access_key_id, first.source) == ("LTAIlegacyKey0002", "env ALIYUN_* (legacy)")
    warnings = [r for r in caplog.records if "legacy" in r.getMessage()]
    assert len(warnings) == 1 and "ALIBABA_CLOUD_ACCESS_KEY_ID" in warnings[0].getMessage()


def test_default_chain_credentials_file(base_env: dict[str, str], tmp_path: Path) -> None:
    provider = credential_provider(environ={**base_env, **_ini(tmp_path)})
    got = provider.get()
    assert got.access_key_id == "LTAIiniFileKey03" and got.source.startswith("default chain: profile")
    assert provider.get() is got  # cheap: unchanged values give the same object
    assert "LTAI****ey03" in provider.describe() and "ini-secret-3" not in provider.describe()


def test_dev_key_pair_only_in_dev_mode(base_env: dict[str, str]) -> None:
    got = credential_provider(dev=True, environ=base_env).get()
    assert (got.access_key_id, got.access_key_secret, got.source) == (
        dev.DEV_ACCESS_KEY_ID,
        dev.DEV_ACCESS_KEY_SECRET,
        "dev",
    )
    with pytest.raises(CredentialError) as info:
        credential_provider(dev=False, environ=base_env).get()
    message = str(info.value)
    for hint in (
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "LANGFLOW_CMS_DEV",
        "RAM role",
    ):
        assert hint in message


def test_probing_unconfigured_sources_logs_nothing(
    base_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The credentials library logs every failed refresh with a traceback (to its own stderr handler too)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    environ = {**base_env, "ALIBABA_CLOUD_CREDENTIALS_URI": f"http://127.0.0.1:{closed}/creds"}
    with caplog.at_level(logging.DEBUG):
        assert credential_provider(dev=True, environ=environ).get().source == "dev"
    assert [r for r in caplog.records if r.name == "credentials"] == []


@pytest.mark.serial  # a 0.05 s bound
def test_nothing_found_is_remembered_briefly(base_env: dict[str, str]) -> None:
    provider = credential_provider(environ=base_env)
    with pytest.raises(CredentialError):
        provider.get()
    started = time.monotonic()
    with pytest.raises(CredentialError):
        provider.get()
    assert time.monotonic() - started < 0.05
    assert provider.describe().startswith("no credential")


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIhalfSetKey05"}, "ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
        ({"ALIYUN_ACCESS_KEY_SECRET": "half-set-secret"}, "ALIYUN_ACCESS_KEY_ID"),
    ],
)
def test_half_set_pair_is_an_error_without_the_secret(environ: dict[str, str], missing: str) -> None:
    with pytest.raises(CredentialError, match=missing) as info:
        credential_provider(environ=environ)
    assert "half-set-secret" not in str(info.value)


def test_incomplete_explicit_credential() -> None:
    with pytest.raises(CredentialError, match="explicit"):
        credential_provider(Credential("LTAIexplicitKey04", ""), environ={})


def test_repr_is_masked() -> None:
    credential = Credential("LTAI5tABCDEFabcd", "very-secret-value", "token-value-123", source="explicit")
    for text in (repr(credential), str(credential), f"{credential}", repr([credential])):
        assert "LTAI****abcd" in text
        assert "very-secret-value" not in text and "token-value-123" not in text
    assert credential.access_key_secret == "very-secret-value"  # still usable


def test_handed_out_secrets_are_registered_for_redaction(base_env: dict[str, str]) -> None:
    credential_provider(environ={**base_env, **MODERN}).get()
    assert redact("error: modern-secret-1 leaked") == "error: *** leaked"


# --- signing --------------------------------------------------------------------------------------


def test_plain_sdk_lets_legacy_env_override_an_explicit_credential(
    cms: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hazard (cms-api.md §3.6), shown with the SDK alone, so the next test is known to be meaningful."""
    for name, value in LEGACY.items():
        monkeypatch.setenv(name, value)
    client = AcsClient(
        credential=AccessKeyCredential("LTAIexplicitKey04", "explicit-secret-4"), proxy=NO_PROXY
    )
    assert _put(client, cms)["AccessKeyId"] == "LTAIlegacyKey0002"


def test_legacy_env_cannot_override_our_signer(cms: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LEGACY.items():
        monkeypatch.setenv(name, value)
    provider = credential_provider(Credential("LTAIexplicitKey04", "explicit-secret-4"))
    client = make_acs_client(
        provider, region="cn-hangzhou", connect_timeout=2, read_timeout=2, proxy=NO_PROXY
    )
    query = _put(client, cms)
    assert query["AccessKeyId"] == "LTAIexplicitKey04"
    assert _signature_ok(query, "explicit-secret-4")
    assert "SecurityToken" not in query
    assert (client.is_auto_retry(), client.get_max_retry_num()) == (False, 0)


def test_sts_token_is_added_and_signed(cms: _Server) -> None:
    token = "CAIS+sts/token=value"
    provider = credential_provider(Credential("STS.NKeyForSigning", "sts-secret-6", token), environ={})
    client = make_acs_client(
        provider, region="cn-shanghai", connect_timeout=2, read_timeout=2, proxy=NO_PROXY
    )
    query = _put(client, cms)
    assert (query["AccessKeyId"], query["SecurityToken"], query["RegionId"]) == (
        "STS.NKeyForSigning",
        token,
        "cn-shanghai",
    )
    assert _signature_ok(query, "sts-secret-6")


# --- STS refresh through the real alibabacloud-credentials provider -------------------------------


def _expiry(seconds_from_now: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds_from_now))


def test_sts_credentials_are_refreshed_before_they_expire(
    base_env: dict[str, str], cms: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    lifetime = {"seconds": 300}  # < the library's 15-minute refresh margin: every use refreshes
    served: list[str] = []

    def respond(path: str) -> dict:
        n = len(served) + 1
        served.append(f"STS.NRefreshKey{n:04d}")
        return {
            "Code": "Success",
            "AccessKeyId": served[-1],
            "AccessKeySecret": f"refresh-secret-{n}",
            "SecurityToken": f"refresh-token-{n}-abcdefgh",
            "Expiration": _expiry(lifetime["seconds"]),
        }

    sts = _Server(respond)
    try:
        environ = {**base_env, "ALIBABA_CLOUD_CREDENTIALS_URI": f"{sts.url}/credentials"}
        provider = credential_provider(environ=environ)
        client = make_acs_client(
            provider, region="cn-hangzhou", connect_timeout=2, read_timeout=2, proxy=NO_PROXY
        )

        first = _put(client, cms)
        second = _put(client, cms)
        assert (
            first["AccessKeyId"] == "STS.NRefreshKey0001"
            and first["SecurityToken"] == "refresh-token-1-abcdefgh"
        )
        assert (
            second["AccessKeyId"] == "STS.NRefreshKey0002"
            and second["SecurityToken"] == "refresh-token-2-abcdefgh"
        )
        assert _signature_ok(second, "refresh-secret-2")
        assert provider.get().source == "default chain: credential_uri"

        lifetime["seconds"] = 3600  # a fresh hour-long credential is cached, not fetched per request
        provider.get()
        fetched = len(sts.requests)
        for _ in range(3):
            query = _put(client, cms)
        assert len(sts.requests) == fetched
        assert query["AccessKeyId"] == served[-1]
        assert redact(f"refresh-secret-{len(served)}") == "***"
        assert "refresh-secret" not in caplog.text
    finally:
        sts.httpd.shutdown()


# --- proxies --------------------------------------------------------------------------------------


def test_proxies_for_without_proxy_settings() -> None:
    assert proxies_for("https://metrics.cn-hangzhou.aliyuncs.com", {}) == NO_PROXY


def test_no_proxy_for_another_host_or_port_keeps_the_proxy() -> None:
    environ = {"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "127.0.0.1:9999,example.com"}
    assert proxies_for("http://127.0.0.1:8765", environ) == {"http": "http://proxy:3128", "https": None}


def test_proxies_for_uses_https_and_http_proxy() -> None:
    environ = {"HTTPS_PROXY": "http://proxy:3128", "http_proxy": "http://proxy:8080"}
    assert proxies_for("https://metrics.cn-hangzhou.aliyuncs.com", environ) == {
        "http": "http://proxy:8080",
        "https": "http://proxy:3128",
    }


@pytest.mark.parametrize(
    ("endpoint", "no_proxy"),
    [
        ("http://127.0.0.1:8765", "localhost,127.0.0.1"),
        ("http://127.0.0.1:8765", "example.com, 127.0.0.1:8765"),
        ("https://metrics.cn-hangzhou.aliyuncs.com", ".aliyuncs.com"),
        ("https://metrics.cn-hangzhou.aliyuncs.com", "*"),
        ("metrics.cn-hangzhou.aliyuncs.com:443", "aliyuncs.com"),
    ],
)
def test_no_proxy_bypasses_with_explicit_nones(endpoint: str, no_proxy: str) -> None:
    environ = {"HTTPS_PROXY": "http://proxy:3128", "HTTP_PROXY": "http://proxy:3128", "no_proxy": no_proxy}
    result = proxies_for(endpoint, environ)
    assert result == NO_PROXY and result  # truthy: an empty dict would make the SDK copy env proxies


def test_no_proxy_is_honoured_by_the_real_client(cms: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY pointing nowhere, the SDK alone would fail; proxies_for keeps 127.0.0.1 direct."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    provider = credential_provider(Credential("LTAIexplicitKey04", "explicit-secret-4"), environ={})
    direct = make_acs_client(provider, region="cn-hangzhou", connect_timeout=2, read_timeout=2, proxy=None)
    with pytest.raises(ClientException, match=r"SDK\.HttpError"):
        _put(direct, cms)  # the SDK sends to the proxy despite NO_PROXY
    proxy = proxies_for(cms.url)
    client = make_acs_client(provider, region="cn-hangzhou", connect_timeout=2, read_timeout=2, proxy=proxy)
    assert _put(client, cms)["AccessKeyId"] == "LTAIexplicitKey04"
