"""The built wheel and the fresh venvs of tests/test_install.py and tests/test_wheel.py, made once per pytest
session (``uv build`` and the venvs are the slow part of both files)."""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UV = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
EXPORT_FLAGS = ("--no-emit-project", "--no-hashes", "-q", "-o")


@functools.cache
def session_dir() -> Path:
    where = Path(tempfile.mkdtemp(prefix="langflow-cms-wheel-"))
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    return where


def uv_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}


@functools.cache
def wheel() -> Path:
    """``uv build --wheel`` of this checkout, once."""
    out = session_dir() / "dist"
    build = subprocess.run(
        [UV, "build", "--wheel", "--out-dir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (built,) = out.glob("langflow_cms-*.whl")
    return built


@functools.cache
def plain_venv() -> Path:
    """A fresh venv holding only the wheel and its dependencies (lfx, no Langflow)."""
    venv = session_dir() / "plain-venv"
    subprocess.run(
        [UV, "venv", "--python", sys.executable, str(venv)], check=True, capture_output=True, env=uv_env()
    )
    install = subprocess.run(
        [UV, "pip", "install", "--python", str(venv / "bin" / "python"), str(wheel())],
        capture_output=True,
        text=True,
        timeout=900,
        env=uv_env(),
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return venv


@functools.cache
def langflow_requirements() -> Path:
    """Langflow 1.13 and its dependencies at the locked versions, without this project."""
    import server_support

    server_support.ensure_server_venv()  # fills uv's cache with exactly these versions
    path = session_dir() / "langflow.txt"
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


def langflow_venv(where: Path) -> Path:
    """A fresh venv with pip and Langflow 1.13: what the official image and a user's environment hold."""
    venv = where / "venv"
    subprocess.run(
        [UV, "venv", "--seed", "-q", "--python", sys.executable, str(venv)], check=True, env=uv_env()
    )
    install = subprocess.run(
        [
            UV,
            "pip",
            "install",
            "-q",
            "--python",
            str(venv / "bin" / "python"),
            "-r",
            str(langflow_requirements()),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        env=uv_env(),
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return venv


def user_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell in that venv: nothing of this checkout or of pytest's venv, and
    someone's own Alibaba Cloud key (as on an Alibaba Cloud user's machine)."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "LANGFLOW_COMPONENTS_PATH")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("ALIBABA_CLOUD_", "ALIYUN_", "LANGFLOW_CMS_"))
    }
    path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    env["VIRTUAL_ENV"] = str(venv)
    env.update(FOREIGN_KEY)
    env.update(extra)
    return env


FOREIGN_KEY = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tSomeoneElsesKeyId",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "someone-elses-secret-0123456789",
}
"""A user's own key pair, unknown to the demo's emulator."""
