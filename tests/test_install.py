"""Installed like any Langflow extension: the wheel in a fresh Langflow 1.13 environment, no checkout.

Issue #15 and #27 (done when): the README's "Use it" blocks and its `langflow-cms demo` block run here as
written, with the built wheel in a fresh Langflow 1.13 venv outside the checkout, in a shell that holds
someone's own ``ALIBABA_CLOUD_ACCESS_KEY_*``: ``pip install langflow-cms`` (the wheel: the package is not on
an index), the exports, ``langflow run`` (no ``LANGFLOW_SKIP_AUTH_AUTO_LOGIN``), the API-key check, ``init``,
``alarms plan`` and the demo; each prints what the README shows. What the test adds is the machine's, not
the user's: CloudMonitor is an emulator accepting that key (``LANGFLOW_CMS_ENDPOINT``), and Langflow's port
and config folder are the test's (``LANGFLOW_PORT``, ``LANGFLOW_CONFIG_DIR``; the README's
``localhost:7860`` is replaced by that port). The ``RUN`` lines of the Dockerfile in docs/deploy.md run too.

The fresh venvs get Langflow 1.13 from the committed lock (``uv export --extra server``), the versions
.venv-server has, so uv takes them from its cache: ~15 s, not a download. The wheel is built once per
session (tests/wheel_support.py).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import server_support as support
import wheel_support as ws

from langflow_cms.emulator import Emulator

pytestmark = [pytest.mark.slow, pytest.mark.wheel, pytest.mark.timeout(1800)]

REPO = ws.REPO
NODES = {"CMS Metric", "Timer", "Timer Start", "Timer Stop"}


def bash_blocks(markdown: Path, heading: str, language: str = "bash") -> list[str]:
    """The ``language`` blocks of the section under ``heading`` (up to the next heading of its level)."""
    text = markdown.read_text()
    level = heading.split(" ")[0]
    section = text[text.index(heading) + len(heading) :]
    section = re.split(rf"^{level} ", section, flags=re.MULTILINE)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


def commands(block: str) -> list[str]:
    """The command lines of a block (trailing comments and whole-line output comments dropped)."""
    return [
        line.split("  #")[0].strip()
        for line in block.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def shown(block: str) -> list[re.Pattern]:
    """The output the block shows (whole-line comments), ``…`` matching anything."""
    lines = [line.strip()[2:] for line in block.splitlines() if line.strip().startswith("# ")]
    return [re.compile(".*?".join(re.escape(part) for part in line.split("…"))) for line in lines]


def run_shell(script: str, env: dict[str, str], cwd: Path, code: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == code, (
        script,
        result.returncode,
        result.stdout[-3000:],
        result.stderr[-3000:],
    )
    return result


def assert_shows(block: str, result: subprocess.CompletedProcess) -> None:
    printed = result.stdout + result.stderr
    missing = [pattern.pattern for pattern in shown(block) if not pattern.search(printed)]
    assert not missing, (missing, printed[-3000:])


def test_readme_in_a_fresh_langflow_environment_with_someone_elses_keys(tmp_path):
    """README "Use it" and the demo block, as written (see the module doc for what the machine adds)."""
    install, check, examples = bash_blocks(REPO / "README.md", "## Use it")
    (demo,) = [b for b in bash_blocks(REPO / "README.md", "## Set up") if "langflow-cms demo" in b]
    lines = commands(install)
    assert lines[0] == "pip install langflow-cms" and lines[-1] == "langflow run", lines
    assert not any("LANGFLOW_COMPONENTS_PATH" in line or "SKIP_AUTH" in line for line in lines)

    venv = ws.langflow_venv(tmp_path)
    home = tmp_path / "user"  # where the user stands: outside the checkout
    home.mkdir()
    env = ws.user_env(venv)
    run_shell(lines[0].replace("langflow-cms", str(ws.wheel())), env, home)
    exports: dict[str, str] = {}
    for line in lines[1:-1]:
        key, _, value = line.removeprefix("export ").partition("=")
        assert line.startswith("export ") and key and value, line
        exports[key] = value
    assert exports.get("LANGFLOW_AUTO_LOGIN") == "true"

    with Emulator(
        port=0,
        keys={
            ws.FOREIGN_KEY["ALIBABA_CLOUD_ACCESS_KEY_ID"]: ws.FOREIGN_KEY["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
        },
    ) as emulator:
        cms = {"LANGFLOW_CMS_ENDPOINT": emulator.endpoint}
        server = support.LangflowServer(
            emulator.endpoint,
            command=[str(venv / "bin" / "langflow"), "run"],  # the port: LANGFLOW_PORT
            extra_env={**env, **exports, **cms, "LANGFLOW_CMS_DEV": None, "PYTHONPATH": None},
        )
        try:
            second_shell = ws.user_env(venv, LANGFLOW_CONFIG_DIR=str(server.workdir / "config"))
            script = check.replace("http://localhost:7860", server.url)
            assert script != check, "the check names http://localhost:7860"
            done = run_shell(script + '\necho "key=$LANGFLOW_API_KEY"', second_shell, home)
            assert_shows(check, done)
            key = re.search(r"^key=(sk-\S+)$", done.stdout, re.MULTILINE)
            assert key, done.stdout[-2000:]

            # the key opens the API, /api/v1/run included; a flow with CMS Metric reports to "CMS"
            server.headers = {"x-api-key": key.group(1)}
            ours = server.registry()
            assert {t["display_name"] for k, t in ours.items() if k.startswith("ext:cms_monitor:")} == NODES
            assert support.METRIC_TYPE in ours
            flow_id = server.create_flow("cms-installed")
            answer = server.api("POST", f"/api/v1/run/{flow_id}?stream=false", {"input_value": "hi"})
            assert answer["outputs"], answer
            support.wait_for_flow(
                emulator, "cms-installed", {"ChatInput", "CmsMetricComponent", "ChatOutput"}
            )
        finally:
            server.stop()
        log = server.log_path.read_text(errors="replace")
        assert "Extension load error" not in log, log[-3000:]
        assert "InvalidAccessKeyId" not in log

        # the examples and alarms as code, in the user's folder (the region is the README's export)
        done = run_shell(examples, {**env, **exports, **cms}, home, code=2)  # plan: exit 2, changes
        assert_shows(examples, done)
        assert {p.name for p in home.iterdir()} >= {"monitoring.toml", "poem.json"}

    # the demo, whatever keys the shell holds (the README's install gives it its chart)
    done = run_shell(demo, env, home)
    assert_shows(demo, done)
    assert (home / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ws.FOREIGN_KEY["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] not in done.stdout + done.stderr

    # the installed package is the wheel's, and it names its bundle folder for path-based loading
    where = run_shell("langflow-cms components-path", env, home).stdout.strip()
    assert where.startswith(str(venv)) and (Path(where) / "cms_monitor" / "cms_metric.py").is_file(), where


def test_the_dockerfile_install_commands_in_a_fresh_langflow_env(tmp_path):
    """docs/deploy.md's Dockerfile: its RUN commands, with the wheel where its COPY puts it, give a Langflow
    whose component index has the nodes (the image itself cannot be built here)."""
    (block,) = bash_blocks(REPO / "docs" / "deploy.md", "## The image", language="dockerfile")[:1]
    lines = commands(block)
    assert lines[0].startswith("FROM langflowai/langflow:1.13"), lines
    assert not any("LANGFLOW_COMPONENTS_PATH" in line for line in lines)
    copies = [line for line in lines if line.startswith("COPY ")]
    assert copies == ["COPY dist/langflow_cms-*.whl /tmp/"], copies
    image_tmp = tmp_path / "image-tmp"
    image_tmp.mkdir()
    shutil.copy(ws.wheel(), image_tmp)

    venv = ws.langflow_venv(tmp_path)
    env = ws.user_env(venv)
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
    assert "langflow_cms.langflow.service:CmsTracingService" in entry_points
