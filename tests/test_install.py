"""Installed like any Langflow extension: the wheel in a fresh Langflow 1.13 environment, no checkout.

Issue #15 (done when): a test builds the wheel, installs it with ``langflow==1.13.*`` into a fresh venv (no
checkout on the path), starts ``langflow run`` without ``LANGFLOW_COMPONENTS_PATH`` and finds "CMS Metric"
and "Timer" in ``/api/v1/all``. README's "Use it" block runs here as written (``pip install langflow-cms``
takes the built wheel, the package is not on an index), and so do the ``RUN`` lines of the Dockerfile in
docs/deploy.md.

The fresh venv gets Langflow 1.13 from the committed lock (``uv export --extra server``), the versions
.venv-server has, so uv takes them from its cache: ~15 s, not a download.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import server_support as support

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[1]
UV = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
EXPORT_FLAGS = ("--no-emit-project", "--no-hashes", "-q", "-o")
NODES = {"CMS Metric", "Timer", "Timer Start", "Timer Stop"}


def clean_env(venv: Path) -> dict[str, str]:
    """The environment of a user's shell in that venv: nothing of this checkout or of pytest's venv."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "LANGFLOW_COMPONENTS_PATH")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    env["VIRTUAL_ENV"] = str(venv)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [UV, "build", "--wheel", "--out-dir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (built,) = out.glob("langflow_cms-*.whl")
    return built


@pytest.fixture(scope="module")
def langflow_requirements(tmp_path_factory) -> Path:
    """Langflow 1.13 and its dependencies at the locked versions, without this project."""
    support.ensure_server_venv()  # fills uv's cache with exactly these versions
    path = tmp_path_factory.mktemp("req") / "langflow.txt"
    export = subprocess.run(
        [
            UV,
            "export",
            "--project",
            str(REPO),
            "--frozen",
            "--extra",
            "server",
            "--no-dev",
            *EXPORT_FLAGS,
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert export.returncode == 0, export.stderr[-3000:]
    assert re.search(r"^langflow==1\.13\.", path.read_text(), re.MULTILINE)
    return path


def langflow_venv(where: Path, requirements: Path) -> Path:
    """A fresh venv with pip and Langflow 1.13: what the official image and a user's environment hold."""
    venv = where / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    subprocess.run([UV, "venv", "--seed", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    install = subprocess.run(
        [UV, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "-r", str(requirements)],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return venv


def bash_block(markdown: Path, heading: str, language: str = "bash") -> list[str]:
    """The command lines of the first ``language`` block under ``heading`` (comments stripped)."""
    text = markdown.read_text()
    section = text[text.index(heading) :]
    body = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert body, f"no {language} block under {heading!r} in {markdown.name}"
    return [line.split("  #")[0].strip() for line in body.group(1).splitlines() if line.strip()]


def run_shell(line: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["bash", "-ec", line], env=env, cwd=cwd, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, (line, result.stdout[-2000:], result.stderr[-3000:])
    return result


def test_readme_use_it_in_a_fresh_langflow_environment(wheel, langflow_requirements, tmp_path):
    """README "Use it", line by line: pip install, the exports, ``langflow run``; then the nodes are in the
    sidebar's index and a flow with CMS Metric reports to CMS (the local emulator here)."""
    lines = bash_block(REPO / "README.md", "## Use it")
    assert lines[0] == "pip install langflow-cms", lines
    assert lines[-1] == "langflow run", lines
    assert not any("LANGFLOW_COMPONENTS_PATH" in line for line in lines)

    venv = langflow_venv(tmp_path, langflow_requirements)
    env = clean_env(venv)
    run_shell(lines[0].replace("langflow-cms", str(wheel)), env, tmp_path)
    exports: dict[str, str | None] = {}
    for line in lines[1:-1]:
        key, _, value = line.removeprefix("export ").partition("=")
        assert line.startswith("export ") and key and value, line
        exports[key] = value
    assert exports.get("LANGFLOW_AUTO_LOGIN") == "true"

    emulator = support.shared_emulator()
    server = support.LangflowServer(
        emulator.endpoint,
        command=[str(venv / "bin" / "langflow"), "run", "--host", "127.0.0.1"],  # the port: LANGFLOW_PORT
        extra_env={
            "PATH": env["PATH"],
            "VIRTUAL_ENV": env["VIRTUAL_ENV"],
            **exports,
            "LANGFLOW_SKIP_AUTH_AUTO_LOGIN": "true",  # for this test's API client, which sends no token
            "PYTHONPATH": None,
            "LANGFLOW_COMPONENTS_PATH": None,
        },
    )
    try:
        registry = server.api("GET", "/api/v1/all")
        ours = registry.get("cms_monitor", {})
        assert {template["display_name"] for template in ours.values()} == NODES, sorted(ours)
        assert all(key.endswith("@official") for key in ours), sorted(ours)  # the installed extension
        assert support.METRIC_TYPE in ours

        flow_id = server.create_flow("cms-installed")
        answer = server.api("POST", f"/api/v1/run/{flow_id}?stream=false", {"input_value": "hi"})
        assert answer["outputs"], answer
        support.wait_for_flow(emulator, "cms-installed", {"ChatInput", "CmsMetricComponent", "ChatOutput"})
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")
    assert "Extension load error" not in log, log[-3000:]

    # the installed package is the wheel's, and it names its bundle folder for path-based loading
    where = run_shell("langflow-cms components-path", env, tmp_path).stdout.strip()
    assert where.startswith(str(venv)) and (Path(where) / "cms_monitor" / "cms_metric.py").is_file(), where


def test_the_dockerfile_install_commands_in_a_fresh_langflow_env(wheel, langflow_requirements, tmp_path):
    """docs/deploy.md's Dockerfile: its RUN commands, with the wheel where its COPY puts it, give a Langflow
    whose component index has the nodes (the image itself cannot be built here)."""
    lines = bash_block(REPO / "docs" / "deploy.md", "## The image", language="dockerfile")
    assert lines[0].startswith("FROM langflowai/langflow:1.13"), lines
    assert not any("LANGFLOW_COMPONENTS_PATH" in line for line in lines)
    copies = [line for line in lines if line.startswith("COPY ")]
    assert copies == ["COPY dist/langflow_cms-*.whl /tmp/"], copies
    image_tmp = tmp_path / "image-tmp"
    image_tmp.mkdir()
    shutil.copy(wheel, image_tmp)

    venv = langflow_venv(tmp_path, langflow_requirements)
    env = clean_env(venv)
    runs = [line.removeprefix("RUN ") for line in lines if line.startswith("RUN ")]
    assert runs, lines
    for command in runs:
        run_shell(command.replace("/tmp/", f"{image_tmp}/"), env, tmp_path)
    assert not list(image_tmp.iterdir())  # the RUN line cleans up after itself

    probe = (
        "import asyncio, json\n"
        "from lfx.interface.components import get_and_cache_all_types_dict\n"
        "from lfx.services.deps import get_settings_service\n"
        "types = asyncio.run(get_and_cache_all_types_dict(get_settings_service()))\n"
        "print(json.dumps(sorted(v['display_name'] for v in types.get('cms_monitor', {}).values())))\n"
    )
    found = run_shell(f"python -c {shlex.quote(probe)}", env, tmp_path).stdout.strip().splitlines()[-1]
    assert set(json.loads(found)) == NODES, found
    entry_points = run_shell(
        'python -c "from importlib.metadata import entry_points as e; '
        "print([p.value for p in e(group='lfx.services')])\"",
        env,
        tmp_path,
    ).stdout
    assert "langflow_cms.tracing:CmsTracingService" in entry_points
