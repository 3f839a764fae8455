"""A schedule keeps local paths absolute: the scheduler may run from another folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.batch.test_sql_and_schedules import _register
from watchkeeper.cli.main import app
from watchkeeper.config import Settings


def test_relative_paths_are_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Regression: `schedule add m in.parquet out.parquet` stored paths relative to the shell."""
    monkeypatch.chdir(tmp_path)
    _register(Settings(home=tmp_path / "home"), 1.0)
    args = ["batch", "schedule", "add", "m", "in.parquet", "out/", "--json"]
    added = CliRunner().invoke(app, args, env={"WATCHKEEPER_HOME": str(tmp_path / "home")})
    assert added.exit_code == 0, added.output
    schedule = json.loads(added.output)
    assert schedule["input"] == str(tmp_path / "in.parquet")
    assert schedule["output"] == str(tmp_path / "out")
    url = "sql://sqlite:///scores.db"
    args = ["batch", "schedule", "add", "m", url, url, "--query", "SELECT 1", "--table", "t",
            "--json"]  # fmt: skip
    added = CliRunner().invoke(app, args, env={"WATCHKEEPER_HOME": str(tmp_path / "home")})
    assert json.loads(added.output)["input"] == url
