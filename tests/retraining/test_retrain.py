"""Retraining: triggers, the subprocess entrypoint, and the gate's verdicts and consequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from watchkeeper.cli.main import app
from watchkeeper.config import Settings
from watchkeeper.logbook import FeedbackItem, Logbook, PredictionBatch
from watchkeeper.monitoring.checks import Window
from watchkeeper.registry import Registry
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.registry.retraining import RetrainStore
from watchkeeper.retraining.runner import retrain
from watchkeeper.retraining.spec import GatePolicy, RetrainSpec, Trigger
from watchkeeper.retraining.triggers import due_trigger

FEATURES = ["a", "b", "c"]
NOW = datetime.now(UTC).replace(microsecond=0)


def _rows(n: int, seed: int) -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(seed).normal(size=(n, 3)), columns=FEATURES)


def _concept(frame: pd.DataFrame, changed: bool, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(scale=0.3, size=len(frame))
    signal = frame["a"] - frame["b"] if changed else frame["a"] + frame["b"]
    return (signal + noise > 0).astype(int).to_numpy()


def _setup(tmp: Path, *, changed: bool) -> Settings:
    """v1 learned a + b; the logbook holds a day of labelled traffic (new concept: a - b)."""
    settings = Settings(home=tmp / "home")
    reference = _rows(3000, 0)
    model = LogisticRegression().fit(reference, _concept(reference, False, 0))
    with Registry(settings) as registry:
        registry.register("m", model, input_example=reference, reference_data=reference,
                          stage="production")  # fmt: skip
    with Logbook(settings.resolved_logbook_url) as book:
        for i, minutes in enumerate(range(10, 24 * 60, 20)):  # every 20 min for a day
            frame = _rows(60, 100 + i)
            when = NOW - timedelta(minutes=minutes)
            book.log_predictions(PredictionBatch(
                request_id=f"r{i}", model="m", version=1, role="primary", timestamp=when,
                features=frame.to_numpy(), feature_names=FEATURES,
                predictions=model.predict(frame).astype(float), probabilities=None,
                classes=None, latency_s=0.001,
            ))  # fmt: skip
            labels = _concept(frame, changed, 100 + i)
            book.log_feedback(FeedbackItem(request_id=f"r{i}", row=j, label=int(v),
                                           timestamp=when + timedelta(minutes=1))
                              for j, v in enumerate(labels))  # fmt: skip
    return settings


def _spec(entrypoint: str, **kwargs) -> RetrainSpec:
    base = {"window": timedelta(days=2), "evaluation_window": timedelta(hours=4),
            "timeout": timedelta(seconds=60)}  # fmt: skip
    return RetrainSpec(model="m", entrypoint=f"tests.retraining.entrypoints:{entrypoint}",
                       **{**base, **kwargs})  # fmt: skip


def _state(settings: Settings):
    with Registry(settings) as registry:
        versions = {v.version: v for v in registry.list_versions("m")}
        return versions, registry.deployments.get("m"), registry.get("m@production").version


def test_a_better_candidate_passes_and_enters_shadow(tmp_path: Path) -> None:
    settings = _setup(tmp_path, changed=True)
    run = retrain(settings, _spec("fit"), trigger="alert drift")
    assert run.status == "registered", run.error
    assert run.verdict == "pass"
    assert run.gate["comparison"] == "better"
    assert run.gate["interval"][0] > 0
    assert "trained on" in run.log
    versions, deployment, production = _state(settings)
    candidate = versions[run.candidate_version]
    assert candidate.stage == "staging"  # never promoted directly
    assert production == 1
    assert candidate.tags["trigger"] == "alert drift"
    assert candidate.tags["parent_version"] == "1"
    assert candidate.data_hash
    assert candidate.metrics["accuracy"] > versions[1].metrics.get("accuracy", 0)
    assert (deployment.mode, deployment.candidate, deployment.config["then"]) == (
        "shadow",
        run.candidate_version,
        "canary",
    )


def test_a_worse_candidate_is_archived_and_serving_is_untouched(tmp_path: Path) -> None:
    settings = _setup(tmp_path, changed=False)
    run = retrain(settings, _spec("fit_corrupted"))
    assert (run.status, run.verdict, run.gate["comparison"]) == ("rejected", "fail", "worse")
    versions, deployment, production = _state(settings)
    assert versions[run.candidate_version].stage == "archived"
    assert versions[run.candidate_version].tags["gate"] == "fail"
    assert deployment is None
    assert production == 1


@pytest.mark.parametrize(("policy", "status"), [("deploy", "registered"), ("archive", "rejected")])
def test_an_equal_candidate_follows_the_declared_policy(tmp_path: Path, policy: str,
                                                       status: str) -> None:  # fmt: skip
    settings = _setup(tmp_path, changed=False)
    gate = GatePolicy(tolerance=0.05, on_equal=policy)  # type: ignore[arg-type]
    run = retrain(settings, _spec("fit", gate=gate, strategy="none"))
    assert run.gate["comparison"] == "equal"
    assert run.status == status


def test_minimums_are_absolute(tmp_path: Path) -> None:
    settings = _setup(tmp_path, changed=True)
    run = retrain(settings, _spec("fit", gate=GatePolicy(minimums={"accuracy": 0.99})))
    assert run.status == "rejected"
    assert "accuracy" in run.gate["reasons"][0]


@pytest.mark.parametrize(
    ("entrypoint", "timeout", "message"),
    [("crash", 60, "the feature store is down"), ("hang", 8, "timed out after 8 s"),
     ("fit_two_features", 60, "inputs differ")],
)  # fmt: skip
def test_a_broken_entrypoint_ends_the_run_with_no_registry_change(
    tmp_path: Path, entrypoint: str, timeout: int, message: str
) -> None:
    settings = _setup(tmp_path, changed=True)
    run = retrain(settings, _spec(entrypoint, timeout=timedelta(seconds=timeout)))
    assert run.status == "failed"
    assert message in run.error
    versions, deployment, _ = _state(settings)
    assert list(versions) == [1]
    assert deployment is None
    if entrypoint == "crash":
        assert "RuntimeError" in run.log  # the traceback is kept with the run


def test_dry_run_trains_and_gates_without_registering(tmp_path: Path) -> None:
    settings = _setup(tmp_path, changed=True)
    run = retrain(settings, _spec("fit"), dry_run=True)
    assert (run.status, run.verdict) == ("dry_run", "pass")
    assert list(_state(settings)[0]) == [1]


def test_triggers_and_the_cooldown(tmp_path: Path) -> None:
    settings = _setup(tmp_path, changed=True)
    spec = _spec("fit", triggers=(Trigger(kind="drift", check="drift"),
                                  Trigger(kind="performance", metric="accuracy", below=0.8,
                                          windows=2)),
                 cooldown=timedelta(hours=1))  # fmt: skip
    with Registry(settings) as registry:
        runs, monitoring = RetrainStore(registry.engine), MonitoringStore(registry.engine)
        ask = lambda now: due_trigger(spec, runs=runs, monitoring=monitoring, now=now,  # noqa: E731
                                      watching_since=NOW)  # fmt: skip
        assert ask(NOW) is None  # nothing wrong yet
        window = Window("m", 1, NOW - timedelta(hours=1), NOW)
        failing = window.result("drift", "a", "wasserstein", 0.4, 0.1, "fail")
        monitoring.record([failing])
        monitoring.apply_alerts([failing])
        assert ask(NOW).kind == "drift"
        run = runs.start("m", trigger="alert drift", parent=1, actor="t")
        assert ask(NOW) is None  # one run at a time
        runs.finish(run.id, status="failed")
        assert ask(NOW + timedelta(minutes=30)) is None  # cooling down
        assert ask(NOW + timedelta(hours=2)).kind == "drift"
        recovered = window.result("drift", "a", "wasserstein", 0.01, 0.1, "ok")
        monitoring.apply_alerts([recovered])
        assert ask(NOW + timedelta(hours=2)) is None
        for hours, value in ((3, 0.7), (2, 0.75)):
            w = Window("m", 1, NOW - timedelta(hours=hours + 1), NOW - timedelta(hours=hours))
            monitoring.record([w.result("performance", "", "accuracy", value, None, "fail")])
        assert ask(NOW + timedelta(hours=2)).kind == "performance"


def test_cli_retrain_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _setup(tmp_path, changed=True)
    config = tmp_path / "watchkeeper.toml"
    config.write_text(
        '[retraining.m]\nentrypoint = "tests.retraining.entrypoints:fit"\nwindow = "2d"\n'
        'evaluation_window = "4h"\nstrategy = "none"\n'
    )
    env = {"WATCHKEEPER_HOME": str(settings.home), "WATCHKEEPER_CONFIG": str(config)}
    runner = CliRunner()
    dry = runner.invoke(app, ["retrain", "m", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "gate pass" in dry.output
    real = runner.invoke(app, ["retrain", "m"], env=env)
    assert "registered v2 staging" in real.output
    listed = runner.invoke(app, ["retrain", "runs", "m", "--json"], env=env)
    import json

    runs = json.loads(listed.output)
    assert [r["status"] for r in runs] == ["registered", "dry_run"]
    assert runs[0]["trigger"] == "manual"
    missing = runner.invoke(app, ["retrain", "ghost"], env=env)
    assert missing.exit_code == 4  # not found
    assert "no retraining declared" in missing.output


def test_the_scheduler_retrains_on_a_drift_alert_once_per_cooldown(tmp_path: Path) -> None:
    from dataclasses import replace

    from watchkeeper.scheduler import Scheduler, SchedulerOptions

    base = _setup(tmp_path, changed=True)
    settings = replace(base, retraining={"m": {
        "entrypoint": "tests.retraining.entrypoints:fit", "window": "2d",
        "evaluation_window": "4h", "cooldown": "1h",
        "triggers": [{"kind": "drift", "check": "drift"}],
    }})  # fmt: skip
    with Registry(settings) as registry:
        failing = Window("m", 1, NOW - timedelta(hours=1), NOW).result(
            "drift", "a", "wasserstein", 0.4, 0.1, "fail")  # fmt: skip
        MonitoringStore(registry.engine).apply_alerts([failing])
    clock = [NOW]
    options = SchedulerOptions(holder="s", monitors=False, batches=False, jobs_in_thread=False)
    scheduler = Scheduler(settings, options, clock=lambda: clock[0])
    try:
        scheduler.run_once()
        (run,) = RetrainStore(scheduler.registry.engine).runs("m")
        assert (run.trigger, run.status) == ("alert drift", "registered")
        deployment = scheduler.registry.deployments.get("m")
        assert deployment is not None
        assert deployment.mode == "shadow"
        clock[0] = NOW + timedelta(minutes=10)
        scheduler.run_once()  # the alert is still open, but the cooldown holds
        assert len(RetrainStore(scheduler.registry.engine).runs("m")) == 1
    finally:
        scheduler.close()
