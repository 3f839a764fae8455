"""The ``models`` and ``db`` command groups, through typer's runner and one real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import skops.io
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from watchkeeper.cli.main import app
from watchkeeper.config import Settings


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    X, y = load_iris(return_X_y=True, as_frame=True)
    path = tmp_path_factory.mktemp("model") / "iris.skops"
    skops.io.dump(LogisticRegression(max_iter=1000).fit(X, y), path)
    return path


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WATCHKEEPER_HOME", str(settings.home))
    monkeypatch.setenv("WATCHKEEPER_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("WATCHKEEPER_USER", "cli-user")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def test_register_promote_rollback_round_trip(run, model_file: Path, tmp_path: Path) -> None:
    X, _ = load_iris(return_X_y=True, as_frame=True)
    ref = tmp_path / "train.csv"
    X.to_csv(ref, index=False)
    result = run(
        "models",
        "register",
        "iris",
        str(model_file),
        "--metric",
        "accuracy=0.97",
        "--tag",
        "team=risk",
        "--run-id",
        "r1",
        "--reference",
        str(ref),
    )
    assert result.exit_code == 0, result.output
    assert "registered iris@1 (sklearn" in result.output
    assert run("models", "register", "iris", str(model_file)).exit_code == 0
    assert run("models", "promote", "iris", "1", "--to", "production").exit_code == 0
    assert (
        "iris@2 is now production"
        in run("models", "promote", "iris", "2", "--to", "production").output
    )
    assert "now version 1" in run("models", "rollback", "iris").output
    assert run("models", "alias", "iris", "2", "challenger").exit_code == 0

    shown = json.loads(run("models", "show", "iris@production", "--json").output)
    assert shown["version"] == 1
    assert shown["metrics"] == {"accuracy": 0.97}
    assert shown["tags"] == {"team": "risk"}
    assert shown["has_profile"] is True
    listing = json.loads(run("models", "list", "--json").output)
    assert listing[0]["production_version"] == 1
    assert listing[0]["aliases"] == {"challenger": 2}
    versions = json.loads(run("models", "show", "iris", "--json").output)["versions"]
    assert [v["stage"] for v in versions] == ["production", "archived"]
    history = json.loads(run("models", "history", "iris", "--json").output)
    assert history[0]["action"] == "alias"
    assert {e["actor"] for e in history} == {"cli-user"}
    found = json.loads(run("models", "search", "metrics.accuracy>0.9", "--json").output)
    assert [v["version"] for v in found] == [1]
    assert run("models", "delete", "iris", "2", "--yes").exit_code == 0
    assert "iris@2" not in run("models", "show", "iris").output


def test_tables_for_people(run, model_file: Path) -> None:
    run("models", "register", "iris", str(model_file), "--metric", "auc=0.91")
    table = run("models", "show", "iris").output
    assert "version" in table
    assert "auc=0.91" in table
    assert "manifest sha256" in run("models", "show", "iris@1").output
    assert "iris" in run("models", "list").output
    assert "register" in run("models", "history", "iris").output


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (("models", "show", "ghost@1"), "no model named 'ghost'", 4),
        (("models", "promote", "iris", "1", "--to", "prod"), "unknown stage 'prod'", 1),
        (("models", "promote", "iris", "7", "--to", "production"), "has no version 7", 4),
        (("models", "rollback", "iris"), "no earlier production version", 5),
        (("models", "register", "iris", "/no/such/file.pkl"), "/no/such/file.pkl", 1),
        (("models", "register", "iris", "x.pkl", "--metric", "acc=high"), "is not a number", 1),
        (("models", "register", "iris", "x.pkl", "--tag", "oops"), "KEY=VALUE", 1),
        (("models", "search", "accuracy is good"), "cannot read filter", 1),
    ],
)
def test_user_errors_are_one_line_with_their_exit_code(
    run, model_file: Path, args, message: str, code: int
) -> None:
    run("models", "register", "iris", str(model_file))
    result = run(*args)
    assert result.exit_code == code  # docs/cli.md: 4 not found, 5 conflict, 1 other errors
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith("error: ")
    assert message in result.output


def test_usage_errors_exit_2(run) -> None:
    assert run("models", "promote", "iris").exit_code == 2
    assert run("models", "frobnicate").exit_code == 2


def test_delete_production_is_refused(run, model_file: Path) -> None:
    run("models", "register", "iris", str(model_file))
    run("models", "promote", "iris", "1", "--to", "production")
    result = run("models", "delete", "iris", "1", "--yes")
    assert result.exit_code == 5  # a conflict
    assert "in production" in result.output


def test_real_subprocess_and_db_commands(tmp_path: Path, model_file: Path) -> None:
    env = {**os.environ, "WATCHKEEPER_HOME": str(tmp_path / "home")}
    env.pop("WATCHKEEPER_DATABASE_URL", None)

    def wk(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "watchkeeper", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    upgraded = wk("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "schema empty -> 0009" in upgraded.stdout
    assert "schema 0009 (needs 0009)" in wk("db", "current").stdout
    registered = wk("models", "register", "iris", str(model_file), "--stage", "production")
    assert registered.returncode == 0, registered.stderr
    assert json.loads(wk("models", "show", "iris@production", "--json").stdout)["version"] == 1
    missing = wk("models", "show", "iris@9")
    assert missing.returncode == 4  # not found
    assert missing.stderr.strip() == "error: model 'iris' has no version 9"
    assert "Traceback" not in missing.stderr
    assert (tmp_path / "home" / "watchkeeper.db").is_file()
