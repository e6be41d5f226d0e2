"""Credentials under attack (issue 23 §6, §7): a one-second hiccup of the credentials service costs nothing;
a key id without its secret is one clear line, counted as failed, with the data kept.

The credentials service is a real HTTP server behind ``ALIBABA_CLOUD_CREDENTIALS_URI`` (the library's
documented way to serve STS credentials), CMS the real emulator, which accepts only that STS key.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from langflow_cms.config import Config
from langflow_cms.delivery.spool import waiting_entries
from langflow_cms.emulator import Emulator
from langflow_cms.emulator.auth import KeyPair
from langflow_cms.reporter import Reporter
from tests.test_spool import run

pytestmark = pytest.mark.timeout(300)

STS_KEY = KeyPair("STS.NHiccupKey0001", "hiccup-secret-0001", "hiccup-token-0001-abcdefgh")


class CredentialsService:
    """Serves the STS key, or HTTP 500 while ``down`` (a metadata-service or STS hiccup)."""

    def __init__(self) -> None:
        self.down_until = 0.0
        self.answered = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service.answered += 1
                if time.monotonic() < service.down_until:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
                body = json.dumps(
                    {
                        "Code": "Success",
                        "AccessKeyId": STS_KEY.key_id,
                        "AccessKeySecret": STS_KEY.secret,
                        "SecurityToken": STS_KEY.token,
                        "Expiration": expiry,
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/credentials"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def sts_emulator():
    with Emulator(port=0, keys=[STS_KEY]) as emulator:
        yield emulator


@pytest.fixture
def credentials_service():
    service = CredentialsService()
    yield service
    service.httpd.shutdown()


def chain_env(monkeypatch, tmp_path, endpoint: str, uri: str, spool: bool) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith(("ALIBABA_CLOUD_", "ALIYUN_", "LANGFLOW_CMS_")):
            monkeypatch.delenv(name)
    settings = {
        "HOME": str(tmp_path),
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "ALIBABA_CLOUD_CREDENTIALS_URI": uri,
        "LANGFLOW_CMS_ENDPOINT": endpoint,
        "LANGFLOW_CMS_MAX_QPS": "200",
        "LANGFLOW_CMS_HOST_MERGE": "false",
    }
    if spool:
        settings["LANGFLOW_CMS_SPOOL_DIR"] = str(tmp_path / "spool")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return settings


def counts(emulator, name: str) -> int:
    return sum(e["values"]["SampleCount"] for e in emulator.entries(name) if e["period"] == 60)


@pytest.mark.parametrize("spool", [False, True])
def test_a_one_second_credentials_hiccup_costs_nothing(
    sts_emulator, credentials_service, monkeypatch, tmp_path, spool
):
    """§6: before, CredentialError became a non-retryable NoCredentials: with a spool the batch went to
    dead/, without one it was dropped, and the failure was cached for 30 s."""
    chain_env(monkeypatch, tmp_path, sts_emulator.endpoint, credentials_service.url, spool)
    reporter = Reporter(Config.from_env(), start=False)
    for i in range(100):
        reporter.record("hiccup", float(i), {"flow": "f"})
    credentials_service.down_until = time.monotonic() + 1.0
    assert reporter.close(timeout=20) is True  # seals the open minute and delivers it
    assert counts(sts_emulator, "hiccup") == 100
    health = reporter.health()
    assert health["failed"] == 0 and health["dropped"] == 0
    assert not (tmp_path / "spool" / "dead").exists()


def test_random_credentials_outages_shorter_than_the_deadline_lose_nothing(
    sts_emulator, credentials_service, monkeypatch, tmp_path
):
    """§6, randomized: outages of 0 to 1.5 s before each of several closes; every observation arrives."""
    chain_env(monkeypatch, tmp_path, sts_emulator.endpoint, credentials_service.url, spool=False)
    rng = random.Random(6)
    for round_ in range(4):
        reporter = Reporter(Config.from_env(), start=False)  # a fresh credential chain each time
        for i in range(25):
            reporter.record("outages", float(i), {"round": str(round_)})
        credentials_service.down_until = time.monotonic() + rng.uniform(0.0, 1.5)
        assert reporter.close(timeout=20) is True
    assert counts(sts_emulator, "outages") == 100


KEY_ID_ONLY = """
import json
from langflow_cms import get_reporter
rep = get_reporter()
for i in range(40):
    rep.record("half_key", float(i), {"flow": "f"})
closed = rep.close(timeout=5)
print(json.dumps({"closed": closed, **rep.health()}))
"""


@pytest.mark.parametrize("spool", [False, True])
def test_a_key_id_without_its_secret_is_one_clear_line_counted_and_kept(emulator, tmp_path, spool):
    """§7: before, every cycle raised CredentialError, the batches taken from the outbox were dropped with
    health at sent 0 / dropped 0 / failed 0, flush() returned True and exit printed a 25-line traceback."""
    env = {
        "HOME": str(tmp_path),
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIonlyTheKeyId42",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "",
        "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
        "LANGFLOW_CMS_HOST_MERGE": "false",
        "LANGFLOW_CMS_DEV": "false",
    }
    if spool:
        env["LANGFLOW_CMS_SPOOL_DIR"] = str(tmp_path / "spool")
    done = run(KEY_ID_ONLY, env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    said = [line for line in done.stderr.splitlines() if "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in line]
    assert len(said) == 1, done.stderr  # one clear line naming what to set
    health = json.loads(done.stdout.strip().splitlines()[-1])
    assert health["closed"] is False
    assert health["failed"] == 2  # one series: its 60 s and 300 s windows
    if spool:
        assert waiting_entries(tmp_path / "spool") == 2  # kept for when the credential is fixed
        assert not (tmp_path / "spool" / "dead").exists()
