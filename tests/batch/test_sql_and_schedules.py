"""SQL in and out (PostgreSQL and SQLite), the CLI, and schedules fired by the scheduler."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import create_engine
from typer.testing import CliRunner

from tests.batch.test_job import FEATURES, frame
from watchkeeper.batch.job import BatchSpec, run_batch
from watchkeeper.cli.main import app
from watchkeeper.config import Settings
from watchkeeper.errors import Conflict
from watchkeeper.registry import Registry
from watchkeeper.registry.batch import BatchStore
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.scheduler import Scheduler, SchedulerOptions


def _register(settings: Settings, *coefficients: float) -> list[LogisticRegression]:
    train = frame(2000)
    models = []
    with Registry(settings) as registry:
        for c in coefficients:
            model = LogisticRegression(C=c).fit(train[FEATURES], train["a"] - train["c"] > 0)
            registry.register("m", model, input_example=train[FEATURES])
            models.append(model)
        registry.promote("m", 1, "production")
    return models


def test_sql_query_in_and_table_out_on_a_database(tmp_path: Path, database_url: str) -> None:
    settings = Settings(home=tmp_path / "home")
    (model,) = _register(settings, 1.0)
    data = frame(5_000, seed=8)
    engine = create_engine(database_url)
    data.to_sql("customers", engine, index=False)
    sql = f"sql://{database_url}"
    query = "SELECT * FROM customers ORDER BY customer"
    spec = BatchSpec(model="m", input=sql, query=query, output=sql, table="scores",
                     id_column="customer", chunk_rows=1_000)  # fmt: skip
    run_batch(settings, spec)
    scores = pd.read_sql("SELECT * FROM scores ORDER BY customer", engine)
    assert len(scores) == 5_000
    assert (scores["prediction"].astype(bool).to_numpy() == model.predict(data[FEATURES])).all()
    with pytest.raises(Conflict, match="exists"):
        run_batch(settings, spec)  # the default refuses to touch an existing table
    run_batch(settings, BatchSpec(**{**spec.__dict__, "if_exists": "append"}))
    assert pd.read_sql("SELECT count(*) AS n FROM scores", engine)["n"][0] == 10_000
    run_batch(settings, BatchSpec(**{**spec.__dict__, "if_exists": "replace"}))
    assert pd.read_sql("SELECT count(*) AS n FROM scores", engine)["n"][0] == 5_000
    engine.dispose()


def test_the_cli_scores_and_lists_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHKEEPER_HOME", str(tmp_path / "home"))
    _register(Settings(home=tmp_path / "home"), 1.0)
    frame(3_000, seed=9).to_csv(tmp_path / "in.csv", index=False)
    runner = CliRunner()
    args = ["batch", "score", "m", str(tmp_path / "in.csv"), str(tmp_path / "out.parquet")]
    result = runner.invoke(app, [*args, "--id-column", "customer"])
    assert result.exit_code == 0, result.output
    assert "3,000 rows in, 3,000 scored, 0 rejected" in result.output
    listed = json.loads(runner.invoke(app, ["batch", "runs", "m", "--json"]).output)
    assert listed[0]["status"] == "succeeded"
    assert listed[0]["rows_per_second"] > 0
    again = runner.invoke(app, ["batch", "score", "m", str(tmp_path / "in.csv"),
                                str(tmp_path / "out.parquet")])  # fmt: skip
    assert again.exit_code == 5  # a conflict
    assert "exists" in again.output
    assert "Traceback" not in again.output
    bad = runner.invoke(app, ["batch", "score", "m", str(tmp_path / "in.csv"),
                              str(tmp_path / "o2.parquet"), "--engine", "spark"])  # fmt: skip
    assert bad.exit_code == 1
    assert "--engine" in bad.output


def test_a_schedule_fires_with_the_production_version_of_its_time(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    _register(settings, 1.0, 0.01)
    data = frame(2_000, seed=10)
    data.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "scores.parquet"
    runner = CliRunner()
    env = {"WATCHKEEPER_HOME": str(tmp_path / "home")}
    added = runner.invoke(app, ["batch", "schedule", "add", "m", str(tmp_path / "in.parquet"),
                                str(out), "--cron", "0 2 * * *", "--json"], env=env)  # fmt: skip
    assert added.exit_code == 0, added.output
    schedule = json.loads(added.output)
    first_time = datetime.fromisoformat(schedule["next_run_at"])
    clock = [first_time - timedelta(minutes=1)]
    options = SchedulerOptions(holder="s", monitors=False, jobs_in_thread=False)
    scheduler = Scheduler(settings, options, clock=lambda: clock[0])
    try:
        scheduler.run_once()
        assert not out.exists()  # not yet 02:00
        clock[0] = first_time
        scheduler.run_once()
        assert set(pd.read_parquet(out)["model_version"]) == {1}
        with Registry(settings) as registry:
            registry.promote("m", 2, "production")  # what the next night uses
        clock[0] = first_time + timedelta(days=1)
        scheduler.run_once()
        assert set(pd.read_parquet(out)["model_version"]) == {2}
        (listed,) = BatchStore(scheduler.registry.engine).schedules()
        assert listed.last_status == "succeeded"
        assert listed.next_run_at == first_time + timedelta(days=2)
    finally:
        scheduler.close()


def test_a_failing_schedule_retries_then_alerts(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    _register(settings, 1.0)
    now = datetime(2026, 11, 26, 2, tzinfo=UTC)
    with Registry(settings) as registry:
        schedule = BatchStore(registry.engine).add_schedule(
            model="m", cron="0 2 * * *", input=str(tmp_path / "missing.parquet"),
            output=str(tmp_path / "o.parquet"), options={}, next_run_at=now, actor="t",
            max_attempts=2,
        )  # fmt: skip
    clock = [now]
    scheduler = Scheduler(settings, SchedulerOptions(holder="s", monitors=False,
                                                     jobs_in_thread=False),
                          clock=lambda: clock[0])  # fmt: skip
    try:
        scheduler.run_once()
        (state,) = scheduler.batch_store.schedules()
        assert (state.last_status, state.attempts) == ("failed", 1)
        assert state.next_run_at == now + timedelta(minutes=1)  # retried soon
        clock[0] = state.next_run_at
        scheduler.run_once()
        (state,) = scheduler.batch_store.schedules()
        assert state.attempts == 0  # given up: back to the cron time, alert open
        assert state.next_run_at == datetime(2026, 11, 27, 2, tzinfo=UTC)
        alerts = MonitoringStore(scheduler.registry.engine).alerts("m")
        assert [a.feature for a in alerts] == [f"schedule-{schedule.id}"]
        runs = scheduler.batch_store.runs("m")
        assert [r.status for r in runs] == []  # the input was missing: refused before a run
    finally:
        scheduler.close()
