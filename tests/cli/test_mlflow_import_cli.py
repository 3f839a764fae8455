"""``watchkeeper models import-mlflow`` on the MLflow registry the README's example makes."""

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
from typer.testing import CliRunner

from tests.mlflow_store import quiet
from watchkeeper.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mlflow_registry.py"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder where ``python examples/mlflow_registry.py`` made ./mlflow.db."""
    folder = tmp_path_factory.mktemp("mlflow-example")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run([sys.executable, str(EXAMPLE)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "versions 1, 2, champion -> 1" in done.stdout
    return folder


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WATCHKEEPER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("WATCHKEEPER_DATABASE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # the command sets these for MLflow when unset: set here, they do not outlive the test
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def test_import_twice_then_mlflow_references(run, example: Path) -> None:
    """The first import copies both versions and the alias and says they were not promoted;
    the second adds nothing; models:/ references work in models show."""
    first = run("models", "import-mlflow", "--tracking-uri", uri(example))
    assert first.exit_code == 0, first.output
    assert f"MLflow at {uri(example)}: 2 version(s) imported, 0 already here, 0 failed" in (
        first.stdout
    )
    assert "alias iris@champion -> version 1 (MLflow version 1): set" in first.stdout
    second = run("models", "import-mlflow", "--tracking-uri", uri(example))
    assert second.exit_code == 0, second.output
    assert "0 version(s) imported, 2 already here, 0 failed" in second.stdout
    assert "champion -> version 1 (MLflow version 1): unchanged" in second.stdout
    champion = json.loads(run("models", "show", "models:/iris@champion", "--json").stdout)
    assert (champion["version"], champion["tags"]["mlflow.source"]) == (1, "models:/iris/1")
    assert champion["signature"] is not None
    two = json.loads(run("models", "show", "models:/iris/2", "--json").stdout)
    assert two["version"] == 2
    assert set(two["metrics"]) == {"accuracy"}
    model = json.loads(run("models", "show", "iris", "--json").stdout)
    assert model["description"] == "Iris species from petal and sepal sizes"
    assert [v["version"] for v in model["versions"]] == [1, 2]


def test_dry_run_and_json(run, example: Path) -> None:
    """--dry-run lists what would come and changes nothing; --json reports the same."""
    dry = run("models", "import-mlflow", "--tracking-uri", uri(example), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert [(v["mlflow_version"], v["action"]) for v in report["versions"]] == [
        (1, "would import"),
        (2, "would import"),
    ]
    assert report["ok"] is True
    assert json.loads(run("models", "list", "--json").stdout) == []


def test_mistakes_are_one_line(run, example: Path, tmp_path: Path) -> None:
    """An unknown --name, a missing store and a bad models:/ reference: one line, and the
    exit code of their kind (docs/cli.md: 4 not found, 7 unavailable, 1 other errors)."""
    cases = [
        (("--tracking-uri", uri(example), "--name", "nope"), "has no registered model 'nope'", 4),
        (("--tracking-uri", uri(tmp_path)), "no MLflow store at", 7),
        (("--tracking-uri", uri(example), "--as", "x"), "needs the MLflow model", 1),
    ]
    for args, message, code in cases:
        result = run("models", "import-mlflow", *args)
        assert result.exit_code == code, result.stderr
        assert result.stderr.count("\n") == 1
        assert message in result.stderr
    shown = run("models", "show", "models:/iris/champion")
    assert shown.exit_code == 1
    assert "an alias is written models:/iris@champion" in shown.stderr


def test_a_version_that_cannot_come_is_reported(run, example: Path, tmp_path: Path) -> None:
    """A version of a flavor watchkeeper cannot serve is listed as failed with the reason
    (exit 1); the others are imported."""
    shutil.copy(example / "mlflow.db", tmp_path / "mlflow.db")
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
    )
    with quiet():
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri(tmp_path), registry_uri=uri(tmp_path))
        client.create_model_version("iris", source=custom.as_uri())
    result = run("models", "import-mlflow", "--tracking-uri", uri(tmp_path))
    assert result.exit_code == 1
    assert "2 version(s) imported, 0 already here, 1 failed" in result.stdout
    assert re.search(r"│ 3 .*failed.*models:/iris/3/MLmodel holds flavors", result.stdout)


def test_readme_commands_run_as_written(run, example: Path, monkeypatch) -> None:
    """The watchkeeper commands of docs/registry.md's "Coming from MLflow" run in the example's
    folder."""
    section = (ROOT / "docs" / "registry.md").read_text().split("## Coming from MLflow", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block is not None
    assert "python examples/mlflow_registry.py" in block.group(1)  # what the fixture ran
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith(".venv/bin/watchkeeper")]
    assert len(commands) >= 3
    monkeypatch.chdir(example)
    for args in commands:
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
