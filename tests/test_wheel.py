"""The wheel is the product: built, installed into a fresh venv, used from a folder outside the checkout.

Issue #14 (done when): every ``langflow-cms`` subcommand's ``--help`` and ``--version`` run from a wheel
installed in a fresh venv, with the working directory outside the repository.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import typer
import wheel_support as ws

pytestmark = pytest.mark.wheel  # the session's one wheel and venv (tests/wheel_support.py)

REPO = ws.REPO


def command_paths() -> list[list[str]]:
    """Every command and subcommand of the CLI, as argument lists (``[]`` is the top level)."""
    from langflow_cms.cli import app

    paths: list[list[str]] = []

    def walk(command: object, prefix: list[str]) -> None:
        paths.append(prefix)
        if getattr(command, "commands", None):  # a group (typer may bundle its own click)
            for name, sub in command.commands.items():
                walk(sub, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return paths


@pytest.fixture(scope="module")
def wheel_venv() -> Path:
    return ws.plain_venv()  # built once per session, shared with tests/test_install.py


REPOSITORY_PATH = re.compile(r"(?<![\w/.:-])(?:examples|docs|policies|tests|scripts)/[\w./-]+")
"""A path that exists only in a checkout (a URL's path does not match: it follows a ``/``)."""


@pytest.mark.slow
def test_every_subcommand_helps_and_versions_from_a_fresh_venv_outside_the_checkout(wheel_venv, tmp_path):
    cli = wheel_venv / "bin" / "langflow-cms"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    paths = command_paths()
    assert ["alarms", "apply"] in paths and ["dashboard", "grafana"] in paths and ["top"] in paths
    for path in paths:
        for flag in ("--help", "--version"):
            result = subprocess.run(
                [str(cli), *path, flag], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, (path, flag, result.stdout[-500:], result.stderr[-1500:])
            # issue #27: every path a help text names exists for an installed user
            assert not REPOSITORY_PATH.findall(result.stdout), (path, REPOSITORY_PATH.findall(result.stdout))
            if flag == "--version":
                assert "langflow-cms" in result.stdout or result.stdout.strip()[:1].isdigit(), result.stdout
    # the installed package is the wheel's, not this checkout's
    where = subprocess.run(
        [str(wheel_venv / "bin" / "python"), "-c", "import langflow_cms; print(langflow_cms.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert str(REPO) not in where.stdout and str(wheel_venv) in where.stdout


@pytest.mark.slow
def test_the_demo_runs_from_the_wheel_in_an_empty_folder(wheel_venv, tmp_path):
    """Issue #15 (done when): `langflow-cms demo` runs from that venv in an empty folder (the example flows
    are package data), and (issue #27) whatever Alibaba Cloud key the shell holds; without --chart it
    writes nothing."""
    env = ws.user_env(wheel_venv)
    result = subprocess.run(
        [str(wheel_venv / "bin" / "langflow-cms"), "demo", "--runs", "4", "--concurrency", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 runs ok" in result.stdout and "Per node" in result.stdout
    assert "langflow_flow_failed" in result.stdout
    assert ", 0 rejected" in result.stdout and "chart" not in result.stdout
    assert list(tmp_path.iterdir()) == []  # nothing written where the user stood


@pytest.mark.slow
def test_init_from_the_wheel_writes_the_examples_the_docs_use(wheel_venv, tmp_path):
    """Issue #27 point 3: examples/monitoring.toml was not in the wheel; `init` writes it and a flow."""
    env = ws.user_env(wheel_venv)
    cli = str(wheel_venv / "bin" / "langflow-cms")
    result = subprocess.run([cli, "init"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["monitoring.toml", "poem.json"]
    assert not REPOSITORY_PATH.findall((tmp_path / "monitoring.toml").read_text())
