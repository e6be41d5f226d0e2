"""Shared fixtures: a real emulator on a free loopback port, and a reporter pointed at it."""

from __future__ import annotations

import os

import pytest

from langflow_cms.config import Config
from langflow_cms.credentials import Credential, credential_provider
from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET
from langflow_cms.emulator import Emulator
from langflow_cms.reporter import Reporter

for _proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_proxy, None)
# The test process itself imports the tracing service, which creates the process-wide reporter: keep that
# one in development mode on a port nothing listens on, and never let it probe an ECS metadata service.
# Subprocess tests pass their own environment (the `env` fixture).
os.environ.setdefault("LANGFLOW_CMS_DEV", "1")
os.environ.setdefault("LANGFLOW_CMS_ENDPOINT", "http://127.0.0.1:9")
os.environ.setdefault("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")


@pytest.fixture
def emulator():
    with Emulator(port=0) as emu:
        yield emu


@pytest.fixture
def env(emulator):
    """What a user sets for a subprocess run: development mode pointed at the emulator."""
    environ = {
        k: v for k, v in os.environ.items() if "PROXY" not in k.upper() and not k.startswith("ALIBABA_CLOUD_")
    }
    environ.update(
        LANGFLOW_CMS_DEV="1",
        LANGFLOW_CMS_ENDPOINT=emulator.endpoint,
        LANGFLOW_CMS_MONITOR="annotated",
        LANGFLOW_DO_NOT_TRACK="true",
    )
    return environ


@pytest.fixture
def make_reporter(emulator):
    """Build reporters against the emulator; every one is closed at the end of the test."""
    made: list[Reporter] = []

    def make(secret: str = DEV_ACCESS_KEY_SECRET, **env: str) -> Reporter:
        settings = {
            "LANGFLOW_CMS_DEV": "1",
            "LANGFLOW_CMS_ENDPOINT": emulator.endpoint,
            "LANGFLOW_CMS_MAX_QPS": "200",
        }
        settings.update(env)
        provider = credential_provider(Credential(DEV_ACCESS_KEY_ID, secret, source="test"))
        reporter = Reporter(Config.from_env(settings), provider, start=False)
        made.append(reporter)
        return reporter

    yield make
    for reporter in made:
        reporter.close(timeout=2)
