"""Every shell command shown in README.md and docs/*.md runs here, or is allow-listed with a reason.

The project rule: every command in the docs is run by a test. The convention:

* A **shell block** is a fenced block whose info string is ``bash``, ``sh``, ``shell``, ``console`` or
  ``zsh``, or any fenced block whose first line is a ``$ `` prompt (a captured transcript, e.g. in a
  ``text`` block).
* A shell block is **runnable** when the line right before its fence is an HTML comment (GitHub does not
  render it)::

      <!-- run -->
      ```bash
      langflow-cms export examples/flows/poem.json -o poem.py
      ```

  ``<!-- run: OPTION ... -->`` adds options:

  * ``serve``: the block's command is a server. The test starts it with the ``--port`` number replaced by a
    free one, waits for the output the block shows, checks the server answers, stops it with SIGTERM and
    expects exit status 0. A trailing ``# or: OTHER COMMAND`` is started and checked the same way.
  * ``versions``: before the block, the emulator is given runs of the ``poem`` flow as ``version=v1`` and a
    slower ``version=v2`` (the data of ``tests/test_top_compare.py``).
  * ``headers``: the output shown depends on the data and the clock, so only the table's column headers
    (the ``┃ … ┃`` row) must appear, not the figures.

* Every block runs in a fresh temporary folder holding a copy of ``examples/`` (so the paths read as in a
  checkout), with ``.venv/bin`` first on ``PATH`` and development settings pointed at a fresh emulator on a
  free port: ``LANGFLOW_CMS_DEV=1``, ``LANGFLOW_CMS_ENDPOINT`` and ``LANGFLOW_CMS_USER_ID``. A ``bash`` block
  runs as one ``bash -e`` script; a transcript runs its ``$`` lines. The block must exit 0.
* **Shown output** must appear in what the block printed (whitespace runs compared as one space): in a
  transcript, every line that is not a ``$`` command (``…`` elides lines); in a ``bash`` block, every
  whole-line comment (``# CMS emulator listening on …``) — the docs use whole-line comments only for output.
* A shell block without the marker must be in ``NOT_RUN`` below, keyed by its file and first command, with
  the reason it cannot run here. A new unmarked command fails this test until it is marked or listed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from langflow_cms.emulator import Emulator

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh"}
OPTIONS = {"serve", "versions", "headers"}
MARKER = re.compile(r"^\s*<!--\s*run(?::\s*(?P<options>[\w\s-]*?))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<info>[^`\s]*)")
BLOCK_TIMEOUT_S = 150

# Unmarked shell blocks: (file, first command) -> why it cannot run in this test.
NOT_RUN: dict[tuple[str, str], str] = {
    (
        "README.md",
        "make demo",
    ): "bootstraps uv and runs the poem flow 120 times (minutes); `make test` runs the "
    "whole suite, which this test is part of. `make demo` runs `langflow-cms demo`: tests/test_cli.py",
    (
        "README.md",
        "pip install langflow-cms",
    ): "installs from PyPI into the user's Langflow and starts a full "
    "`langflow run` server; tests/test_install.py runs this sequence with the built wheel in a fresh venv",
    (
        "README.md",
        "export LANGFLOW_AUTO_LOGIN=true",
    ): "needs the `langflow run` server of the block above and "
    "full Langflow (`langflow api-key`); tests/test_install.py runs it as written against that server",
    (
        "README.md",
        "langflow-cms init",
    ): "`alarms plan` exits 2 when it finds changes, which it does on a fresh "
    "account; tests/test_install.py runs this block as written and expects that exit code and output",
    ("docs/usage.md", "pip install langflow-cms"): "installs from PyPI into the user's environment; "
    "tests/test_install.py installs the built wheel into a fresh venv",
    ("docs/export.md", 'langflow-cms export "Hybrid Search RAG.json" -o hybrid.py'): "needs a full Langflow "
    "install (its starter project) and a live Astra DB; tests/test_export_starters.py exports the starters",
    (
        "docs/performance.md",
        "make bench",
    ): "the benchmark takes up to 10 minutes of an idle machine and writes "
    "docs/performance.md itself; tests/test_bench_smoke.py runs it in its quick form",
    ("docs/alarms.md", "langflow-cms emulator --port 8799 &"): "docs/alarms.md is maintained with the alarms "
    "work (not editable in the docs-command change); tests/test_alarms.py runs the same commands on "
    "examples/monitoring.toml",
    ("docs/alarms.md", "langflow-cms alarms plan monitoring.toml"): "docs/alarms.md transcript, "
    "continuing the step above (shell state across blocks); tests/test_alarms.py runs the same commands",
    ("docs/alarms.md", "langflow-cms alarms apply monitoring.toml"): "docs/alarms.md transcript, "
    "continuing the step above; tests/test_alarms.py runs the same commands",
    ("docs/alarms.md", "langflow-cms alarms list"): "docs/alarms.md transcript, continuing the step above; "
    "tests/test_alarms.py runs the same commands",
    ("docs/alarms.md", "langflow-cms alarms check monitoring.toml"): "docs/alarms.md transcript of "
    "a check against data of real runs; tests/test_alarms.py runs the same commands",
    ("docs/alarms.md", "langflow-cms alarms plan monitoring-edit.toml"): "docs/alarms.md transcript of an "
    "edited spec file the page describes in prose; tests/test_alarms.py runs the same commands",
}


@dataclass
class Block:
    path: str  # relative to the repository
    line: int  # of the opening fence, 1-based
    lang: str
    lines: list[str]
    options: set[str] | None  # None: not marked runnable
    transcript: bool = field(init=False)

    def __post_init__(self) -> None:
        first = next((line for line in self.lines if line.strip()), "")
        self.transcript = self.lang == "console" or first.startswith("$ ")

    @property
    def commands(self) -> list[str]:
        """The commands, continuations joined (a transcript's ``$`` lines; a script's non-comment lines)."""
        if self.transcript:
            return [line[2:].strip() for line in self.lines if line.startswith("$ ")]
        joined, commands = "", []
        for line in self.lines:
            if not joined and (not line.strip() or line.lstrip().startswith("#")):
                continue
            joined += line
            if joined.endswith("\\"):
                joined = joined[:-1] + " "
                continue
            commands.append(joined.strip())
            joined = ""
        return commands

    @property
    def key(self) -> tuple[str, str]:
        first = self.commands[0] if self.commands else ""
        return self.path, re.sub(r"\s+#.*$", "", first).strip()

    @property
    def shown(self) -> list[str]:
        """Output lines the block shows."""
        if self.transcript:
            out = [line for line in self.lines if not line.startswith("$ ")]
        else:
            out = [line.strip()[2:] for line in self.lines if line.strip().startswith("# ")]
        return [line for line in out if line.strip() and line.strip() != "…"]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def shell_blocks(path: Path) -> list[Block]:
    """Every shell block of a Markdown file, with its run marker's options (None when unmarked)."""
    text = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(text):
        opening = FENCE.match(text[i])
        if not opening:
            i += 1
            continue
        indent, fence, lang = opening["indent"], opening["fence"], opening["info"].lower()
        end = i + 1
        while end < len(text) and not text[end].strip().startswith(fence[0] * len(fence)):
            end += 1
        body = [
            line[len(indent) :] if line.startswith(indent) else line.lstrip() for line in text[i + 1 : end]
        ]
        marker = MARKER.match(text[i - 1]) if i > 0 else None
        options = None
        if marker:
            options = set((marker["options"] or "").split())
        block = Block(str(path.relative_to(REPO)), i + 1, lang, body, options)
        if lang in SHELL_LANGS or block.transcript:
            blocks.append(block)
        i = end + 1
    return blocks


ALL_BLOCKS = [block for path in DOCS for block in shell_blocks(path)]
RUNNABLE = [block for block in ALL_BLOCKS if block.options is not None]


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _expected(block: Block, replace: dict[str, str] | None = None) -> list[str]:
    shown = block.shown
    if "headers" in block.options:
        cells = [cell.strip() for line in shown if "┃" in line for cell in line.split("┃")]
        shown = [cell for cell in dict.fromkeys(cells) if cell]
    for old, new in (replace or {}).items():
        shown = [line.replace(old, new) for line in shown]
    return [_squash(line) for line in shown]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    return tmp_path


def _environment(emulator: Emulator) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if "PROXY" not in k.upper()
        and not k.startswith(("ALIBABA_CLOUD_", "LANGFLOW_CMS_", "LANGFLOW_COMPONENTS"))
    }
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        LANGFLOW_CMS_DEV="1",
        LANGFLOW_CMS_ENDPOINT=emulator.endpoint,
        LANGFLOW_CMS_USER_ID=emulator.user_id,
        ALIBABA_CLOUD_ECS_METADATA_DISABLED="true",
        LANGFLOW_DO_NOT_TRACK="true",
        NO_COLOR="1",
        COLUMNS="200",
    )
    return env


def test_the_docs_have_runnable_blocks_and_known_options():
    assert len(RUNNABLE) >= 6, [str(b) for b in RUNNABLE]
    for block in RUNNABLE:
        assert block.options <= OPTIONS, f"{block}: unknown run options {block.options - OPTIONS}"
        assert block.commands, f"{block}: marked runnable but has no command"


def test_every_unmarked_shell_block_is_allow_listed_with_a_reason():
    unlisted = [f"{block}: {block.key[1]!r}" for block in _unmarked() if block.key not in NOT_RUN]
    assert not unlisted, (
        "shell blocks neither marked <!-- run --> nor in NOT_RUN (mark them, or list them with the reason "
        f"they cannot run here): {unlisted}"
    )
    stale = set(NOT_RUN) - {block.key for block in _unmarked()}
    assert not stale, f"NOT_RUN lists blocks the docs no longer have (or that are now marked): {stale}"
    assert all(len(reason) > 20 for reason in NOT_RUN.values())


def _unmarked() -> list[Block]:
    return [block for block in ALL_BLOCKS if block.options is None]


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=str)
def test_runnable_doc_block(block: Block, workdir: Path):
    with Emulator(port=0) as emulator:
        env = _environment(emulator)
        if "versions" in block.options:
            from test_top_compare import seed

            seed(emulator.endpoint)
        if "serve" in block.options:
            _serve(block, workdir, env)
            return
        script = "\n".join(block.commands) if block.transcript else "\n".join(block.lines)
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
        printed = done.stdout + done.stderr
        assert done.returncode == 0, f"{block} exited {done.returncode}:\n{printed[-4000:]}"
        assert "Traceback" not in printed, f"{block}:\n{printed[-4000:]}"
        squashed = _squash(printed)
        missing = [line for line in _expected(block) if line not in squashed]
        assert not missing, f"{block}: shown output missing from what it printed {missing}\n{printed[-4000:]}"


def _serve(block: Block, workdir: Path, env: dict[str, str]) -> None:
    """Start each of the block's server commands (and its `# or:` alternative) on a free port and stop it."""
    assert len(block.commands) == 1, f"{block}: a serve block holds one command"
    command, _, alternative = block.commands[0].partition("# or:")
    for variant in filter(None, (command.strip(), alternative.strip())):
        documented = re.search(r"--port\s+(\d+)", variant)
        assert documented, f"{block}: a serve command names its --port"
        port = str(_free_port())
        argv = variant.replace(documented.group(0), f"--port {port}").split()
        expected = _expected(block, {f":{documented.group(1)}": f":{port}"})
        process = subprocess.Popen(
            argv, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            seen: list[str] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(
                line in _squash("\n".join(seen)) for line in expected
            ):
                line = process.stdout.readline()
                if not line:
                    break
                seen.append(line)
            assert all(line in _squash("\n".join(seen)) for line in expected), (
                block,
                variant,
                expected,
                seen,
            )
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/health", timeout=10) as answer:
                assert answer.status == 200
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, f"{variant}: did not stop cleanly on SIGTERM"
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
