"""The CLI starts light: ``--help``, ``--version`` and ``models list`` import none of the heavy
libraries (scikit-learn, pandas, the server, the demo...). Real processes, so nothing that this
test session imported hides what the command imports itself. Timing is ``bench/cli_startup.py``'s
business; this file checks the behaviour that makes it fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from watchkeeper.cli.main import COMMANDS, app

# Top-level packages (and watchkeeper's own heavy parts) a light command must not import.
HEAVY = (
    "sklearn", "scipy", "pandas", "pyarrow", "plotly", "uvicorn", "starlette", "skops", "ray",
    "mlflow", "joblib", "cloudpickle", "watchkeeper.demo", "watchkeeper.serving",
    "watchkeeper.scheduler", "watchkeeper.ui", "watchkeeper.models", "watchkeeper.monitoring",
)  # fmt: skip

# Runs the CLI in this process, then writes what it imported and its exit code to argv[1].
DRIVER = """
import json, sys
from watchkeeper.cli.main import main
out, sys.argv = sys.argv[1], ["watchkeeper", *sys.argv[2:]]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code or 0
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def run_cli(home: Path, tmp_path: Path, *args: str) -> tuple[dict[str, object], str]:
    out = tmp_path / "imported.json"
    env = {**os.environ, "WATCHKEEPER_HOME": str(home), "COLUMNS": "120"}
    env.pop("WATCHKEEPER_DATABASE_URL", None)
    env.pop("WATCHKEEPER_CONFIG", None)
    done = subprocess.run([sys.executable, "-c", DRIVER, str(out), *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text()), done.stdout


def heavy_imports(modules: object) -> list[str]:
    assert isinstance(modules, list)
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.fixture(scope="module")
def home_with_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from watchkeeper.config import Settings
    from watchkeeper.registry import Registry

    home = tmp_path_factory.mktemp("home")
    X = np.random.default_rng(0).normal(size=(50, 2))
    with Registry(Settings(home=home)) as registry:
        for name in ("churn", "fraud", "iris"):
            registry.register(name, LogisticRegression().fit(X, X[:, 0] > 0))
        registry.promote("fraud", 1, "production")
    return home


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["models", "list"]])
def test_an_empty_home_imports_nothing_heavy(tmp_path: Path, args: list[str]) -> None:
    found, stdout = run_cli(tmp_path / "home", tmp_path, *args)
    assert found["code"] == 0
    assert heavy_imports(found["modules"]) == []
    assert stdout.strip()


def test_help_lists_every_command_without_importing_one(tmp_path: Path) -> None:
    found, stdout = run_cli(tmp_path / "home", tmp_path, "--help")
    for name in COMMANDS:
        assert f"\n  {name} " in stdout
    assert not [m for m in found["modules"] if m.startswith("watchkeeper.cli.")  # type: ignore[attr-defined]
                and m not in ("watchkeeper.cli.main", "watchkeeper.cli._lazy",
                              "watchkeeper.cli._common")]  # fmt: skip


def test_models_list_with_models_imports_nothing_heavy(
    home_with_models: Path, tmp_path: Path
) -> None:
    found, stdout = run_cli(home_with_models, tmp_path, "models", "list", "--json")
    assert found["code"] == 0
    assert heavy_imports(found["modules"]) == []
    listed = {m["name"]: m for m in json.loads(stdout)}
    assert sorted(listed) == ["churn", "fraud", "iris"]
    assert listed["fraud"]["production_version"] == 1


def test_a_command_imports_what_it_needs_when_it_runs(tmp_path: Path) -> None:
    """The other side: the stand-ins do load the real command (the demo's help needs it)."""
    found, stdout = run_cli(tmp_path / "home", tmp_path, "demo", "--help")
    assert found["code"] == 0
    assert "watchkeeper.demo.story" in found["modules"]  # type: ignore[operator]
    assert "--keep-running" in stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listed_help_is_the_commands_own(name: str) -> None:
    """``COMMANDS`` repeats each command's first sentence so ``--help`` need not import it;
    this keeps the copy true when a command's help changes."""
    group = typer.main.get_command(app)
    command = group.get_command(typer.Context(group), name)  # type: ignore[attr-defined]
    assert command.get_short_help_str(limit=1000) == COMMANDS[name].help
    shown = CliRunner().invoke(app, [name, "--help"], prog_name="watchkeeper")
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith(f"Usage: watchkeeper {name} ")
