"""Each kind of failure leaves the CLI with its own documented exit code (docs/cli.md).

0 ok, 1 other errors, 2 usage, 3 a check failed, 4 not found, 5 conflict, 6 denied,
7 unavailable. Real processes where the exit status itself is the promise; typer's runner for
the rest (the same code path in this process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from watchkeeper import errors
from watchkeeper.cli._common import new_app
from watchkeeper.cli.main import app
from watchkeeper.config import Settings
from watchkeeper.registry import Registry


def wk(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WATCHKEEPER_HOME": str(home)}
    env.pop("WATCHKEEPER_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "watchkeeper", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry holding m@1 in production and m@2."""
    home = tmp_path / "home"
    monkeypatch.setenv("WATCHKEEPER_HOME", str(home))
    monkeypatch.delenv("WATCHKEEPER_DATABASE_URL", raising=False)
    X = np.random.default_rng(0).normal(size=(60, 2))
    with Registry(Settings(home=home)) as registry:
        for c in (1.0, 0.1):
            registry.register("m", LogisticRegression(C=c).fit(X, X[:, 0] > 0))
        registry.promote("m", 1, "production")
    return home


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def one_error_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    return lines[0]


def test_success_is_0_and_a_user_mistake_is_1(home: Path) -> None:
    assert run("models", "list").exit_code == 0
    bad = run("models", "register", "m", "x.pkl", "--metric", "auc=high")
    assert bad.exit_code == errors.EXIT_ERROR == 1
    assert "is not a number" in one_error_line(bad.output)


@pytest.mark.parametrize(
    "args",
    [["models", "frobnicate"], ["models", "promote", "m"], ["--no-such-option", "models"],
     ["models", "history", "m", "--limit", "many"]],
)  # fmt: skip
def test_usage_mistakes_are_2_in_a_real_process(tmp_path: Path, args: list[str]) -> None:
    done = wk(tmp_path / "home", *args)
    assert done.returncode == errors.EXIT_USAGE == 2, done.stderr
    assert "Usage: " in done.stderr
    assert "Traceback" not in done.stderr


def test_not_found_is_4_in_a_real_process(home: Path) -> None:
    for args in (["models", "show", "ghost"], ["models", "show", "m@9"],
                 ["deploy", "status", "ghost"]):  # fmt: skip
        done = wk(home, *args)
        assert done.returncode == errors.EXIT_NOT_FOUND == 4, done.stderr
        one_error_line(done.stderr)


def test_conflicts_are_5(home: Path) -> None:
    cases = {
        ("models", "delete", "m", "1", "--yes"): "in production",
        ("models", "rollback", "m"): "no earlier production version",
        ("deploy", "canary", "m", "1"): "already the production version",
    }
    for args, message in cases.items():
        result = run(*args)
        assert result.exit_code == errors.EXIT_CONFLICT == 5, result.output
        assert message in one_error_line(result.output)


def test_a_failed_check_is_3(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    reference, drifted = tmp_path / "reference.csv", tmp_path / "today.csv"
    pd.DataFrame({"x": rng.normal(size=2000)}).to_csv(reference, index=False)
    pd.DataFrame({"x": rng.normal(loc=1.5, size=2000)}).to_csv(drifted, index=False)
    done = wk(tmp_path / "home", "monitor", "compare", str(reference), str(drifted),
              "--fail-on", "fail")  # fmt: skip
    assert done.returncode == errors.EXIT_CHECK_FAILED == 3, done.stderr
    # the run's summary (rows/s) goes to stderr, then the one error line
    *_, last = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert "today.csv failed a check against reference.csv" in one_error_line(last)
    same = wk(tmp_path / "home", "monitor", "compare", str(reference), str(reference),
              "--fail-on", "fail")  # fmt: skip
    assert same.returncode == 0, same.stderr


def test_a_candidate_that_fails_the_evaluation_gate_is_3(tmp_path: Path) -> None:
    from tests.retraining.test_retrain import _setup

    settings = _setup(tmp_path, changed=False)  # v1 is right; the candidate learns noise
    config = tmp_path / "watchkeeper.toml"
    config.write_text('[retraining.m]\nentrypoint = "tests.retraining.entrypoints:fit_corrupted"'
                      '\nwindow = "2d"\nevaluation_window = "4h"\nstrategy = "none"\n')  # fmt: skip
    env = {"WATCHKEEPER_HOME": str(settings.home), "WATCHKEEPER_CONFIG": str(config)}
    result = CliRunner().invoke(app, ["retrain", "m", "--dry-run"], env=env)
    assert result.exit_code == errors.EXIT_CHECK_FAILED, result.output
    assert "gate fail" in result.stdout
    assert "failed the evaluation gate" in result.stderr


def test_an_unusable_store_is_7(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    result = run("--database-url", f"sqlite:///{folder}", "models", "list")
    assert result.exit_code == errors.EXIT_UNAVAILABLE == 7
    assert "cannot reach the database" in one_error_line(result.output)


def _unwritable_home(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        return locked / "home"
    candidate = Path("/sys/kernel/watchkeeper-test-home")  # sysfs refuses even root a folder
    try:
        candidate.mkdir()
    except PermissionError:
        return candidate
    except OSError:
        pass
    else:
        candidate.rmdir()
    pytest.skip("no folder on this machine refuses root with a permission error")


def test_permission_denied_is_6_in_a_real_process(tmp_path: Path) -> None:
    done = wk(_unwritable_home(tmp_path), "models", "list")
    assert done.returncode == errors.EXIT_DENIED == 6, done.stderr
    assert "permission denied" in one_error_line(done.stderr)


# docs/cli.md's table, written out here rather than read from errors.EXIT_CODE
DOCUMENTED: dict[type[errors.WatchkeeperError], int] = {
    errors.WatchkeeperError: 1, errors.CheckFailed: 3, errors.NotFound: 4, errors.Conflict: 5,
    errors.Unauthorized: 6, errors.Forbidden: 6, errors.StoreUnavailable: 7,
    errors.SchemaOutdated: 7, errors.ModelNotReady: 7, errors.PredictionTimeout: 7,
}  # fmt: skip


@pytest.mark.parametrize(
    "error", sorted(errors.EXIT_CODE, key=lambda cls: cls.__name__), ids=lambda c: c.__name__
)
def test_every_class_in_the_table_leaves_with_its_code(
    error: type[errors.WatchkeeperError],
) -> None:
    """Through the same error handling every command group has (``cli._common.Group``): the
    auth errors, for one, come from the server, and no command raises them today."""
    probe = new_app("probe")

    @probe.command()
    def fail() -> None:
        raise error("it went wrong")

    @probe.command()
    def other() -> None:  # two commands make a group, as in the real CLI
        pass

    result = CliRunner().invoke(probe, ["fail"])
    assert result.exit_code == DOCUMENTED[error]
    assert result.output == "error: it went wrong\n"


def test_each_code_means_one_thing() -> None:
    codes = {name: value for name, value in vars(errors).items()
             if name.startswith("EXIT_") and isinstance(value, int)}  # fmt: skip
    assert sorted(codes.values()) == list(range(8))
    assert errors.exit_code(errors.Unauthorized) == errors.exit_code(errors.Forbidden) == 6
    assert errors.exit_code(errors.SchemaError) == 1  # the most specific class wins
