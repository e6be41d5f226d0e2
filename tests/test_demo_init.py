"""`langflow-cms init` gives an installed user the examples the docs use (issue #27 point 3)."""

from __future__ import annotations

import json
import tomllib

from typer.testing import CliRunner

from langflow_cms.cli import app


def test_init_writes_the_alarm_spec_and_an_example_flow(tmp_path, monkeypatch):
    """Failed before: no such command (the examples existed only in the repository)."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["wrote monitoring.toml", "wrote poem.json"]
    spec = (tmp_path / "monitoring.toml").read_text()
    assert {alarm["flow"] for alarm in tomllib.loads(spec)["alarms"]} == {"poem"}
    assert "examples/" not in spec and " docs/" not in spec  # its comments name paths the user has
    flow = json.loads((tmp_path / "poem.json").read_text())
    assert any("CmsMetricComponent" in node["data"]["type"] for node in flow["data"]["nodes"])


def test_init_keeps_existing_files_unless_forced(tmp_path):
    (tmp_path / "monitoring.toml").write_text("# mine\n")
    kept = CliRunner().invoke(app, ["init", str(tmp_path)])
    assert kept.exit_code == 2 and "already exist" in kept.output
    assert (tmp_path / "monitoring.toml").read_text() == "# mine\n" and not (tmp_path / "poem.json").exists()
    forced = CliRunner().invoke(app, ["init", str(tmp_path), "--force"])
    assert forced.exit_code == 0 and "# mine" not in (tmp_path / "monitoring.toml").read_text()
