"""The rules that keep the suite honest and its two commands (make test-fast, make test) meaningful: a test
that takes a long path carries its marker, and oracles share no constants with the code they judge."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SERVER_TEST = """
import pytest

{marks}

def test_uses_the_shared_server(request):
    # what a real one does: server = support.{call})
    group = request.node.get_closest_marker("xdist_group")
    assert group is not None and group.args == ("server",)
    assert request.node.get_closest_marker("slow") is not None
"""


CALL = "shared_" + "server("
"""Spelt in two parts, so that this module does not itself look like a server test to tests/conftest.py."""


def run_pytest(folder: Path, marks: str, *options: str) -> subprocess.CompletedProcess:
    (folder / "tests").mkdir(exist_ok=True)
    shutil.copy(TESTS / "conftest.py", folder / "tests" / "conftest.py")
    (folder / "tests" / "test_x.py").write_text(SERVER_TEST.format(marks=marks, call=CALL))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-W", "ignore", *options, "tests"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # two pytest sessions in subprocesses
def test_a_server_test_without_its_marker_is_refused_and_with_it_runs_in_the_server_group(tmp_path):
    unmarked = run_pytest(tmp_path, "")
    assert unmarked.returncode != 0
    assert "mark it server" in unmarked.stdout + unmarked.stderr
    marked = run_pytest(tmp_path, "pytestmark = pytest.mark.server", "-v", "-n", "1", "--dist", "loadgroup")
    assert marked.returncode == 0, marked.stdout[-3000:] + marked.stderr[-3000:]
    # pytest-xdist schedules by the group it read from the nodeid: the mark must be there before it reads
    assert "PASSED tests/test_x.py::test_uses_the_shared_server@server" in marked.stdout, marked.stdout


def test_no_test_takes_its_oracle_from_the_code_it_judges():
    """Wire limits come from the emulator's copy (langflow_cms/emulator/limits.py) or documented numbers, and
    accuracy from the documented 0.75 %, never from langflow_cms.limits or the sketch's RELATIVE_ACCURACY."""
    shared = re.compile(
        r"^\s*(?:from langflow_cms\.limits import|from langflow_cms import .*\blimits\b"
        r"|import langflow_cms\.limits|from langflow_cms\.pipeline\.sketch import .*\bRELATIVE_ACCURACY\b)"
        r"|\bsketch\.RELATIVE_ACCURACY\b",
        re.M,
    )
    offenders = [path.name for path in sorted(TESTS.glob("*.py")) if shared.search(path.read_text())]
    assert offenders == [], offenders
