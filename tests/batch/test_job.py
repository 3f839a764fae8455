"""Batch scoring end to end on the local engine: outputs, order, rejects, atomicity, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from watchkeeper.batch.job import BatchSpec, run_batch
from watchkeeper.config import Settings
from watchkeeper.errors import Conflict, InvalidInput, SchemaError
from watchkeeper.registry import Registry
from watchkeeper.registry.batch import BatchStore

FEATURES = ["a", "b", "c"]


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
    out.insert(0, "customer", [f"c{i:06d}" for i in range(n)])
    out["region"] = rng.choice(["north", "south"], size=n)
    return out


@pytest.fixture
def world(tmp_path: Path):
    train = frame(2000)
    model = LogisticRegression().fit(train[FEATURES], train["a"] + train["b"] > 0)
    settings = Settings(home=tmp_path / "home")
    with Registry(settings) as registry:
        registry.register("m", model, input_example=train[FEATURES], stage="production")
    return settings, model, tmp_path


def write_parts(folder: Path, data: pd.DataFrame, parts: int, row_group: int) -> None:
    folder.mkdir(parents=True)
    size = -(-len(data) // parts)
    for i in range(parts):
        chunk = data.iloc[i * size : (i + 1) * size]
        pq.write_table(pa.Table.from_pandas(chunk, preserve_index=False),
                       folder / f"part-{i}.parquet", row_group_size=row_group)  # fmt: skip


@pytest.mark.parametrize("workers", [1, 2])
def test_parquet_folder_to_parquet_file_matches_the_model(world, workers: int) -> None:
    settings, model, tmp = world
    data = frame(30_000, seed=1)
    write_parts(tmp / "in", data, parts=3, row_group=4_000)
    out = tmp / "scores.parquet"
    spec = BatchSpec(model="m", input=str(tmp / "in"), output=str(out), id_column="customer",
                     passthrough=("region",), workers=workers, chunk_rows=3_000)  # fmt: skip
    seen: list[int] = []
    outcome = run_batch(settings, spec, progress=lambda done, total: seen.append(done))
    result = pd.read_parquet(out)
    assert list(result["customer"]) == list(data["customer"])  # input order kept
    expected = model.predict(data[FEATURES])
    assert (result["prediction"].to_numpy() == expected).all()
    proba = model.predict_proba(data[FEATURES])
    assert np.allclose(result["proba_True"], proba[:, 1])
    assert set(result["model"]) == {"m"}
    assert set(result["model_version"]) == {1}
    assert list(result["region"]) == list(data["region"])
    assert outcome.run.status == "succeeded"
    assert (outcome.run.rows_in, outcome.run.rows_out, outcome.run.rows_rejected) == (
        30_000,
        30_000,
        0,
    )
    assert seen[-1] == 30_000
    assert not Path(str(out) + ".staging").exists()


def test_bad_rows_go_to_the_rejects_file_with_their_reason(world) -> None:
    settings, model, tmp = world
    data = frame(1_000, seed=2)
    data.loc[[3, 500], "b"] = np.nan  # the model was trained without nulls
    data.loc[7, "c"] = np.inf
    csv = tmp / "in.csv"
    data.to_csv(csv, index=False)
    out = tmp / "out.csv"
    outcome = run_batch(settings, BatchSpec(model="m@1", input=str(csv), output=str(out),
                                            id_column="customer"))  # fmt: skip
    scored = pd.read_csv(out)
    assert len(scored) == 997
    assert "c000003" not in set(scored["customer"])
    rejects = pd.read_parquet(tmp / "out.rejects.parquet")
    assert list(rejects["row"]) == [3, 7, 500]
    assert list(rejects["reason"]) == ["b: null", "c: not_finite", "b: null"]
    assert list(rejects["customer"]) == ["c000003", "c000007", "c000500"]
    assert outcome.run.rows_rejected == 3


def test_too_many_rejects_fail_the_job_and_leave_no_output(world) -> None:
    settings, model, tmp = world
    data = frame(20_000, seed=3)
    data.loc[:3_000, "a"] = np.nan
    write_parts(tmp / "in", data, parts=2, row_group=5_000)
    out = tmp / "out"
    with pytest.raises(InvalidInput, match="max-reject-rate"):
        run_batch(settings, BatchSpec(model="m", input=str(tmp / "in"), output=str(out),
                                      max_reject_rate=0.01))  # fmt: skip
    assert not out.exists()
    with Registry(settings) as registry:
        (run,) = BatchStore(registry.engine).runs("m")
    assert run.status == "failed"
    assert "rejected" in run.error


def test_an_interrupted_job_resumes_without_redoing_finished_tasks(world, monkeypatch) -> None:
    settings, model, tmp = world
    data = frame(9_000, seed=4)
    write_parts(tmp / "in", data, parts=3, row_group=3_000)
    out = tmp / "out"
    from watchkeeper.batch import tasks as tasks_module

    real_chunks = tasks_module.Worker._chunks  # a worker reads each task's chunks from here
    calls: list[str] = []

    def crash_on_third(self, task):
        calls.append(task.key)
        if len(calls) == 3:  # while the second task may still be writing: it stays done
            raise RuntimeError("power cut")
        return real_chunks(self, task)

    monkeypatch.setattr(tasks_module.Worker, "_chunks", crash_on_third)
    spec = BatchSpec(model="m", input=str(tmp / "in"), output=str(out), id_column="customer")
    with pytest.raises(RuntimeError, match="power cut"):
        run_batch(settings, spec)
    assert not out.exists()  # nothing half-written where readers look
    calls.clear()
    monkeypatch.setattr(tasks_module.Worker, "_chunks", lambda self, task: (
        calls.append(task.key), real_chunks(self, task))[1])  # fmt: skip
    outcome = run_batch(settings, BatchSpec(**{**spec.__dict__, "resume": True}))
    assert calls == ["00002-00000"]  # only the task that had not finished
    result = pd.read_parquet(out)
    assert list(result["customer"]) == list(data["customer"])
    assert outcome.run.rows_in == 9_000
    assert (out / "_SUCCESS").exists()


def test_user_mistakes_are_refused_before_any_work(world) -> None:
    settings, model, tmp = world
    data = frame(100)
    data.drop(columns=["c"]).to_parquet(tmp / "no_c.parquet")
    with pytest.raises(SchemaError, match="lacks column"):
        run_batch(settings, BatchSpec(model="m", input=str(tmp / "no_c.parquet"),
                                      output=str(tmp / "o.parquet")))  # fmt: skip
    data.to_parquet(tmp / "ok.parquet")
    with pytest.raises(InvalidInput, match="id-column"):
        run_batch(settings, BatchSpec(model="m", input=str(tmp / "ok.parquet"),
                                      output=str(tmp / "o.parquet"),
                                      id_column="ghost"))  # fmt: skip
    with pytest.raises(InvalidInput, match="no input files"):
        run_batch(settings, BatchSpec(model="m", input=str(tmp / "missing/*.parquet"),
                                      output=str(tmp / "o.parquet")))  # fmt: skip
    run_batch(settings, BatchSpec(model="m", input=str(tmp / "ok.parquet"),
                                  output=str(tmp / "o.parquet")))  # fmt: skip
    with pytest.raises(Conflict, match="exists"):
        run_batch(settings, BatchSpec(model="m", input=str(tmp / "ok.parquet"),
                                      output=str(tmp / "o.parquet")))  # fmt: skip
    again = BatchSpec(model="m", input=str(tmp / "ok.parquet"), output=str(tmp / "o.parquet"),
                      if_exists="replace")  # fmt: skip
    replaced = run_batch(settings, again)
    assert replaced.run.rows_out == 100


class _Unexpected(Exception):
    """Not a type the job knows: what a model's own bug raises."""


def test_a_run_ended_by_any_exception_is_recorded_failed_never_left_running(
    world, monkeypatch
) -> None:
    """Promise: whatever ends a batch run (here an exception type nothing expects, raised from
    inside the model call), its record says ``failed`` with the exception named; no run stays
    ``running`` for the dashboard and the scheduler to wait on forever."""
    settings, model, tmp = world
    write_parts(tmp / "in", frame(2_000, seed=5), parts=1, row_group=1_000)
    from watchkeeper.batch import tasks as tasks_module

    def broken(*args, **kwargs):
        raise _Unexpected("the model's own bug")

    monkeypatch.setattr(tasks_module, "score_chunk", broken)
    with pytest.raises(_Unexpected):
        run_batch(settings, BatchSpec(model="m", input=str(tmp / "in"), output=str(tmp / "o")))
    with Registry(settings) as registry:
        (run,) = BatchStore(registry.engine).runs("m")
    assert run.status == "failed"
    assert run.error == "_Unexpected: the model's own bug"
