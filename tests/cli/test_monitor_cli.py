"""``monitor run`` over a logbook window with injected drift, ``monitor compare`` on files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from tests.test_notify import Receiver
from watchkeeper.cli.main import app
from watchkeeper.config import Settings
from watchkeeper.logbook import FeedbackItem, Logbook, PredictionBatch
from watchkeeper.registry import Registry
from watchkeeper.registry.monitoring import MonitoringStore

END = datetime(2026, 11, 26, 12, tzinfo=UTC)
FEATURES = ["a", "b", "c"]


def _data(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
    frame["a"] += shift
    return frame


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WATCHKEEPER_HOME", str(tmp_path))
    reference = _data(20_000, 0)
    y = (reference["a"] + reference["b"] > 0).astype(int)
    model = LogisticRegression().fit(reference, y)
    accuracy = float(model.score(reference, y))
    with Registry(Settings(home=tmp_path)) as registry:
        registry.register("m", model, input_example=reference, reference_data=reference,
                          metrics={"accuracy": accuracy}, stage="production")  # fmt: skip
    return tmp_path, model


def _log(home: Path, model: LogisticRegression, frame: pd.DataFrame, *, flip: bool) -> None:
    truth = (frame["a"] + frame["b"] > 0).astype(int).to_numpy()
    labels = 1 - truth if flip else truth
    with Logbook(str(home / "logbook")) as book:
        for i, start in enumerate(range(0, len(frame), 100)):
            chunk = frame.iloc[start : start + 100]
            when = END - timedelta(minutes=50) + timedelta(seconds=i)
            book.log_predictions(PredictionBatch(
                request_id=f"r{i}", model="m", version=1, role="primary", timestamp=when,
                features=chunk.to_numpy(), feature_names=FEATURES,
                predictions=model.predict(chunk).astype(float), probabilities=None,
                classes=None, latency_s=0.001,
            ))  # fmt: skip
            book.log_feedback(FeedbackItem(request_id=f"r{i}", row=j, label=int(labels[start + j]),
                                           timestamp=when + timedelta(minutes=5))
                              for j in range(len(chunk)))  # fmt: skip


def _run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_clean_window_raises_nothing(setup) -> None:
    home, model = setup
    _log(home, model, _data(5_000, 1), flip=False)
    result = _run("monitor", "run", "m", "--window", "1h", "--end", END.isoformat(),
                  "--fail-on", "alert", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)
    assert run["rows"] == 5_000
    assert run["labelled_rows"] == 5_000
    assert run["failed"] == 0
    checks = {(r["check"], r["feature"], r["statistic"]) for r in run["results"]}
    assert ("drift", "a", "wasserstein") in checks
    assert ("performance", "", "accuracy") in checks
    assert any(check == "prediction_drift" for check, _, _ in checks)


def test_drift_and_decay_open_alerts_and_reach_the_webhook(setup) -> None:
    home, model = setup
    _log(home, model, _data(5_000, 2, shift=0.5), flip=True)
    with Receiver(fail_first=0) as receiver:
        result = _run("monitor", "run", "m", "--end", END.isoformat(), "--fail-on", "alert",
                      "--webhook", receiver.url, "--json")  # fmt: skip
    assert result.exit_code == 3, result.output
    failed = {(r["check"], r["feature"], r["statistic"])
              for r in json.loads(result.stdout)["results"] if r["status"] == "fail"}  # fmt: skip
    assert ("drift", "a", "wasserstein") in failed
    assert ("drift", "b", "wasserstein") not in failed
    assert ("performance", "", "accuracy") in failed
    opened = receiver.bodies[0]["opened"]
    assert {(a["check"], a["feature"]) for a in opened} >= {("drift", "a"), ("performance", "")}
    with Registry(Settings(home=home)) as registry:
        store = MonitoringStore(registry.engine)
        assert len(store.series("m", check="drift", feature="a")) == 1
        open_alerts = store.alerts("m")
    again = _run("monitor", "run", "m", "--end", END.isoformat(), "--json")
    assert json.loads(again.output)["alerts_opened"] == []  # deduplicated while open
    listing = _run("monitor", "alerts", "m", "--json")
    assert len(json.loads(listing.output)) == len(open_alerts)


def test_compare_two_files(tmp_path: Path) -> None:
    ref, cur = tmp_path / "ref.csv", tmp_path / "cur.parquet"
    _data(5_000, 3).to_csv(ref, index=False)
    _data(5_000, 4, shift=1.0).to_parquet(cur)
    result = _run("monitor", "compare", str(ref), str(cur), "--fail-on", "fail")
    assert result.exit_code == 3
    assert "drifted: a" in result.output
    same = _run("monitor", "compare", str(ref), str(ref), "--fail-on", "fail")
    assert same.exit_code == 0, same.output


def test_monitor_user_errors(setup) -> None:
    assert _run("monitor", "run", "ghost").exit_code == 4  # not found
    bad = _run("monitor", "run", "m", "--window", "an hour")
    assert bad.exit_code == 1
    assert "not a duration" in bad.output
    assert _run("monitor", "run", "m", "--fail-on", "sometimes").exit_code == 1


def test_declared_monitor_runs_with_its_own_window_and_webhook(
    setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, model = setup
    _log(home, model, _data(3_000, 3, shift=0.5), flip=False)
    with Receiver(fail_first=0) as receiver:
        config = home / "watchkeeper.toml"
        config.write_text(f'[monitors.m]\nwindow = "2h"\nchecks = ["drift"]\n'
                          f'webhooks = ["{receiver.url}"]\n')  # fmt: skip
        monkeypatch.setenv("WATCHKEEPER_CONFIG", str(config))
        listed = _run("monitor", "list", "--json")
        assert json.loads(listed.output) == [
            {"model": "m", "window": "2h", "every": "2h", "checks": "drift", "webhooks": 1}
        ]
        result = _run("monitor", "run", "--all", "--end", END.isoformat(), "--json")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.output)
    assert run["window_start"] == (END - timedelta(hours=2)).isoformat()
    assert {r["check"] for r in run["results"]} == {"drift"}
    assert ("drift", "a") in {(a["check"], a["feature"]) for a in receiver.bodies[0]["opened"]}
    # an option on the command line wins over the declaration
    narrow = _run("monitor", "run", "m", "--window", "30m", "--end", END.isoformat(), "--json")
    assert json.loads(narrow.output)["window_start"] == (END - timedelta(minutes=30)).isoformat()


def test_run_needs_a_name_or_all(setup, monkeypatch: pytest.MonkeyPatch) -> None:
    home, _model = setup
    monkeypatch.setenv("WATCHKEEPER_CONFIG", str(home / "absent.toml"))
    neither = _run("monitor", "run")
    assert neither.exit_code == 1
    assert "NAME or --all" in neither.output
    nothing = _run("monitor", "run", "--all")
    assert nothing.exit_code == 1
    assert "no monitors are declared" in nothing.output
    (home / "bad.toml").write_text('[monitors.m]\nwindow = "soon"\n')
    monkeypatch.setenv("WATCHKEEPER_CONFIG", str(home / "bad.toml"))
    bad = _run("monitor", "list")
    assert bad.exit_code == 1
    assert "monitors.m" in bad.output
    assert "Traceback" not in bad.output
