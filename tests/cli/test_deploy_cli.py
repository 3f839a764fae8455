"""``watchkeeper deploy``: start, look, skip ahead, stop, and clear errors for mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from watchkeeper.cli.main import app
from watchkeeper.config import Settings
from watchkeeper.registry import Registry


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WATCHKEEPER_HOME", str(tmp_path))
    monkeypatch.setenv("WATCHKEEPER_USER", "ann")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 2)), columns=["a", "b"])
    with Registry(Settings(home=tmp_path)) as registry:
        for c in (1.0, 0.5, 0.1):
            registry.register("m", LogisticRegression(C=c).fit(X, X["a"] > 0), input_example=X)
        registry.promote("m", 1, "production")
    return tmp_path


def wk(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_a_canary_by_hand_from_start_to_production(home: Path) -> None:
    started = wk("deploy", "canary", "m", "2", "--steps", "10,50,100", "--step-time", "30s",
                 "--reason", "new features")  # fmt: skip
    assert started.exit_code == 0, started.output
    assert "canary of version 2 running, 10% of traffic (step 0)" in started.output
    status = json.loads(wk("deploy", "status", "m", "--json").output)
    assert status["deployment"]["plan"]["steps"] == [0.1, 0.5, 1.0]
    assert status["deployment"]["plan"]["min_step_seconds"] == 30
    checks = {c["name"]: c["status"] for c in status["checks"]}  # no traffic yet
    assert checks == {"error_rate": "waiting", "prediction_distance": "waiting"}
    assert "guards" in wk("deploy", "status", "m").output
    assert "step 1" in wk("deploy", "promote", "m").output
    assert "step 2" in wk("deploy", "promote", "m").output
    done = wk("deploy", "promote", "m", "--reason", "looks fine")
    assert "promoted" in done.output
    production = json.loads(wk("models", "show", "m@production", "--json").output)
    assert production["version"] == 2
    history = json.loads(wk("deploy", "history", "m", "--json").output)
    assert [e["state"] for e in history] == ["promoted", "running", "running", "running"]
    assert history[0]["actor"] == "ann"
    assert history[0]["reason"] == "looks fine"
    assert "promoted, 100% of traffic" in wk("deploy", "status", "m").output


def test_shadow_ab_and_abort(home: Path) -> None:
    assert wk("deploy", "shadow", "m", "3", "--sample", "0.5").exit_code == 0
    assert "50% of requests copied" in wk("deploy", "status", "m").output
    aborted = wk("deploy", "abort", "m", "--reason", "enough")
    assert "aborted" in aborted.output
    ab = wk("deploy", "ab", "m", "3", "--share", "20", "--metric", "revenue", "--json")
    assert json.loads(ab.output)["share"] == 0.2


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["deploy", "canary", "m", "9"], "version 9", 4),
        (["deploy", "canary", "m", "1"], "already the production version", 5),
        (
            ["deploy", "canary", "m", "2", "--steps", "5,1,100"],
            "invalid deployment plan: steps: steps must increase",
            1,
        ),
        (["deploy", "canary", "m", "2", "--steps", "five"], "percentages", 1),
        (["deploy", "canary", "m", "2", "--step-time", "soon"], "not a duration", 1),
        (["deploy", "promote", "m"], "no deployment in progress", 5),
        (["deploy", "status", "ghost"], "ghost", 4),
        (["scheduler", "--interval", "5", "--lease-ttl", "2"], "--lease-ttl", 1),
    ],
)
def test_mistakes_are_one_line_errors(home: Path, args: list[str], message: str, code: int) -> None:
    result = wk(*args)
    assert result.exit_code == code  # docs/cli.md: 4 not found, 5 conflict, 1 other errors
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_second_deployment_waits_for_the_first(home: Path) -> None:
    assert wk("deploy", "bluegreen", "m", "2").exit_code == 0
    second = wk("deploy", "canary", "m", "3")
    assert second.exit_code == 5  # a conflict
    assert "already has a bluegreen deployment" in second.output
    assert "promoted" in wk("deploy", "promote", "m").output  # the switch
    assert json.loads(wk("models", "show", "m@production", "--json").output)["version"] == 2


def test_a_shadow_then_canary_takes_its_canary_steps(home: Path) -> None:
    """Regression: ``deploy shadow --then canary`` had no ``--steps``, so the canary that
    follows always crawled through 1% and 5%."""
    started = wk("deploy", "shadow", "m", "2", "--then", "canary", "--steps", "10,50,100",
                 "--keep", "5m")  # fmt: skip
    assert started.exit_code == 0, started.output
    plan = json.loads(wk("deploy", "status", "m", "--json").output)["deployment"]["plan"]
    assert (plan["steps"], plan["then"]) == ([0.1, 0.5, 1.0], "canary")
    assert plan["keep_previous_seconds"] == 300
    assert "canary" in wk("deploy", "promote", "m").output
    status = json.loads(wk("deploy", "status", "m", "--json").output)["deployment"]
    assert (status["mode"], status["share"]) == ("canary", 0.1)
