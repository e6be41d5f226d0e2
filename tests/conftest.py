"""Shared fixtures: a real emulator on a free loopback port, and a reporter pointed at it; and the markers
that split the suite (``make test-fast`` runs what is not ``slow``; ``make test`` runs all of it, spread
over the cores by pytest-xdist, with the ``serial`` tests alone afterwards)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from langflow_cms.config import Config
from langflow_cms.credentials import Credential, credential_provider
from langflow_cms.dev import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET
from langflow_cms.emulator import Emulator
from langflow_cms.reporter import Reporter

for _proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_proxy, None)
# The output width is the piped default whoever runs the tests: a pytest-xdist worker has COLUMNS=80
# LINES=24 in its environment, which cut the CLI's tables to 80 columns (test_top_compare failed only there).
for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)
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


# A test module whose source matches a pattern takes that long path: it must carry the marker (per file, as
# ``pytestmark``, or on each test that does). Checked at collection: a new server or wheel test cannot slip
# into ``make test-fast`` or start a second Langflow server in another xdist worker.
LONG_PATHS: dict[str, re.Pattern] = {
    "server": re.compile(r"\bshared_server\("),
    "wheel": re.compile(r"\bwheel_support\b"),
    "slow": re.compile(r"\b(?:LangflowServer|PostgresServer|ensure_server_venv|shared_server|playwright)\b"),
}
GROUPS = ("server", "wheel")
"""Markers whose tests share one session resource (the Langflow server, the built wheel and its venvs):
each runs in one xdist worker (``--dist loadgroup``), so the resource is made once."""
IMPLIES_SLOW = ("server", "wheel")
_sources: dict[Path, str] = {}


def _source(path: Path) -> str:
    if path not in _sources:
        _sources[path] = path.read_text(encoding="utf-8")
    return _sources[path]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing: set[str] = set()
    for item in items:
        names = {mark.name for mark in item.iter_markers()}
        if names & set(IMPLIES_SLOW) and "slow" not in names:
            item.add_marker(pytest.mark.slow)
            names.add("slow")
        for group in GROUPS:
            if group in names:
                item.add_marker(pytest.mark.xdist_group(group))
        source = _source(Path(item.fspath))
        for marker, pattern in LONG_PATHS.items():
            found = pattern.search(source)
            if found and marker not in names:
                missing.add(f"{item.nodeid}: its module uses {found.group(0)!r}; mark it {marker}")
    if missing:
        raise pytest.UsageError("tests take a long path without its marker:\n" + "\n".join(sorted(missing)))
