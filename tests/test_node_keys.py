"""A CMS Metric node's AccessKey typed into its fields while they keep ``load_from_db: true`` (the saved
default of a secret field), under ``lfx run``: lfx has no database there, so it looks the value up as an
environment variable's name, finds none, logs "Environment variable <the key> is not set." and passes None.
The typed key must work as a global variable would (issue 24 §8). The server's two run paths are in
tests/test_server.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from langflow_cms.emulator import Emulator

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LFX = Path(sys.executable).parent / "lfx"
KEY_ID, KEY_SECRET = "LTAItypedInLfxRun0004", "typed-secret-in-lfx-run-never-shown-04"


def with_typed_key(example: str, folder: Path) -> Path:
    flow = json.loads((REPO / "examples" / "flows" / example).read_text(encoding="utf-8"))
    for node in flow["data"]["nodes"]:
        template = node["data"]["node"]["template"]
        if "access_key_id" in template:
            assert template["access_key_id"]["load_from_db"] is True  # as saved
            template["access_key_id"]["value"] = KEY_ID
            template["access_key_secret"]["value"] = KEY_SECRET
    path = folder / example
    path.write_text(json.dumps(flow), encoding="utf-8")
    return path


def test_a_typed_node_accesskey_carries_lfx_runs_metrics_and_failure_event(emulator: Emulator, env, tmp_path):
    emulator.add_key(KEY_ID, KEY_SECRET)
    spool = tmp_path / "spool"
    env = {**env, "LANGFLOW_CMS_SPOOL_DIR": str(spool)}
    said = ""
    for example in ("poem.json", "poem_failing.json"):
        done = subprocess.run(
            [str(LFX), "run", "--verbose", str(with_typed_key(example, tmp_path)), "a poem about keys"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO,
            check=False,
        )
        said += done.stdout + done.stderr
    flows = [e for e in emulator.entries(name="langflow_flow_duration_ms") if e["period"] == 60]
    by_flow = {(e["dimensions"]["flow"], e["dimensions"]["status"]) for e in flows}
    assert by_flow == {("poem", "ok"), ("poem_failing", "error")}, by_flow
    failed = emulator.events("langflow_flow_failed")
    assert [json.loads(e["content"])["component"] for e in failed] == ["OfflinePoetComponent"]
    mine = [*emulator.entries(), *emulator.events()]
    assert {e["access_key_id"] for e in mine} == {KEY_ID}
    contents = json.dumps([e["content"] for e in emulator.events()])
    assert "put the node first" not in said and "ended before the node ran" not in said
    kept = [(str(p), p.read_bytes()) for p in spool.rglob("*") if p.is_file()]
    assert kept  # the spool was used (its host journal and snapshots stay)
    for part in (KEY_ID, KEY_SECRET):
        assert part not in said and part not in contents
        assert not [path for path, data in kept if part in path or part.encode() in data]


def test_a_node_accesskey_whose_variables_are_empty_is_said_once_and_counted(
    emulator: Emulator, env, tmp_path
):
    """The node's AccessKey fields name environment variables that are set but empty: lfx passes None, so
    the node has no key to bind. The run is not broken, nothing is sent with the process's key, and the
    cause is said once (not 'a run ended before the node ran', which it did not) and counted in CMS."""
    flow = json.loads((REPO / "examples" / "flows" / "poem.json").read_text(encoding="utf-8"))
    for node in flow["data"]["nodes"]:
        template = node["data"]["node"]["template"]
        if "access_key_id" in template:
            template["access_key_id"]["value"] = "CMS_NODE_KEY_ID"
            template["access_key_secret"]["value"] = "CMS_NODE_KEY_SECRET"
    path = tmp_path / "poem.json"
    path.write_text(json.dumps(flow), encoding="utf-8")
    said = ""
    for _ in range(2):
        done = subprocess.run(
            [str(LFX), "run", str(path), "a poem about keys"],
            env={**env, "CMS_NODE_KEY_ID": "", "CMS_NODE_KEY_SECRET": ""},
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO,
            check=False,
        )
        assert json.loads(done.stdout.strip().splitlines()[-1])["success"] is True
        said += done.stdout + done.stderr
    assert "ended before the node ran" not in said
    assert said.count("AccessKey") == 2, said  # one line per run (each run is its own process)
    assert not [e for e in emulator.entries() if e["dimensions"].get("flow") == "poem"]
    dropped = [e for e in emulator.entries("langflow_cms_dropped") if e["period"] == 60]
    assert {e["dimensions"]["reason"] for e in dropped} == {"unbound_credentials"}, dropped


def test_the_server_lookup_keeps_variables_and_takes_a_typed_key(monkeypatch):
    """With a database Langflow asks the node's ``get_variable``: a global variable's value wins; a name
    that is no global variable but an environment variable is left to Langflow's own fallback; anything
    else on the two AccessKey fields is the typed key, and other fields keep Langflow's error."""
    import asyncio

    from langflow_cms.langflow.node_keys import variable_or_typed_key

    async def lookup(name: str, field: str, session: object) -> str:
        if name == "CMS_KEY_VARIABLE":
            return "the variable's value"
        raise ValueError(f"{name} variable not found.")

    def ask(name: str, field: str = "access_key_id") -> str:
        return asyncio.run(variable_or_typed_key(lookup, name, field, None))

    monkeypatch.setenv("CMS_KEY_IN_THE_ENVIRONMENT", "x")
    assert ask("CMS_KEY_VARIABLE") == "the variable's value"
    assert ask(KEY_ID) == KEY_ID and ask(KEY_SECRET, "access_key_secret") == KEY_SECRET
    with pytest.raises(ValueError, match="variable not found"):
        ask("CMS_KEY_IN_THE_ENVIRONMENT")
    with pytest.raises(ValueError, match="variable not found"):
        ask("OPENAI_KEY", "api_key")
