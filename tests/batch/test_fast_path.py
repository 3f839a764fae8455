"""The numeric path (one float64 matrix, the model given an array) against the column-by-column
path (a DataFrame): the same outputs, rejects, reasons and logbook sample; and a job's reading
and writing threads: their errors end the job, recorded, without output."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.batch.test_job import FEATURES, frame, world, write_parts  # noqa: F401 (world)
from watchkeeper.batch import validate
from watchkeeper.batch.job import BatchSpec, run_batch
from watchkeeper.batch.score import OutputSpec, score_chunk
from watchkeeper.batch.validate import validate_chunk
from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import Logbook
from watchkeeper.models import load_model, save_model
from watchkeeper.models.signature import Signature
from watchkeeper.models.validation import ValidationPolicy
from watchkeeper.registry import Registry
from watchkeeper.registry.batch import BatchStore

SCORED_AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _column_by_column(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate, "_plain_number", lambda table, spec: False)


def _messy(n: int, seed: int) -> pd.DataFrame:
    """Nulls, infinities and values far outside the training range, here and there."""
    data = frame(n, seed=seed)
    rng = np.random.default_rng(seed)
    for column, value in (("a", np.nan), ("b", np.inf), ("c", 1e6), ("a", -np.inf)):
        data.loc[rng.choice(n, 40, replace=False), column] = value
    return data


@pytest.mark.parametrize(
    "make",
    [
        lambda: LogisticRegression(),
        lambda: RandomForestClassifier(15, max_depth=5, random_state=0),
        lambda: make_pipeline(StandardScaler(), LogisticRegression()),
    ],
    ids=["lr", "forest", "pipeline"],
)
@pytest.mark.parametrize("out_of_range", ["count", "reject"])
def test_the_numeric_path_scores_exactly_as_the_dataframe_path(
    make, out_of_range, tmp_path, monkeypatch
) -> None:
    train = frame(3_000, seed=5)
    model = make().fit(train[FEATURES], np.where(train["a"] * train["b"] > 0, "yes", "no"))
    save_model(model, tmp_path / "pkg", input_example=train[FEATURES])
    loaded = load_model(tmp_path / "pkg")
    data = _messy(6_000, seed=6)
    chunk = pa.Table.from_pandas(data, preserve_index=False)
    spec = OutputSpec(id_column="customer", passthrough=("region",),
                      validation=ValidationPolicy(out_of_range=out_of_range,
                                                  max_rows=1 << 62))  # fmt: skip
    assert validate_chunk(chunk, loaded.signature, spec.validation).matrix is not None

    def score():
        return score_chunk(loaded, chunk, spec=spec, name="m", version=3, scored_at=SCORED_AT,
                           first_row=1_000)  # fmt: skip

    fast = score()
    _column_by_column(monkeypatch)
    slow = score()
    assert fast.output.equals(slow.output)
    assert fast.rejects.equals(slow.rejects)
    assert fast.out_of_range == slow.out_of_range > 0
    assert fast.rejects.num_rows > 0
    kept = data[~data["customer"].isin(fast.rejects.column("customer").to_pylist())]
    assert fast.output.column("prediction").to_pylist() == list(model.predict(kept[FEATURES]))
    assert np.array_equal(np.asarray(fast.inputs), slow.inputs.to_numpy())


@pytest.mark.parametrize("path", ["matrix", "columns"])
def test_rejects_name_the_first_problem_of_each_row(path, monkeypatch) -> None:
    """Written out: column order first, then the order of the checks."""
    if path == "columns":
        _column_by_column(monkeypatch)
    signature = Signature.from_dict({"columns": [
        {"name": "a", "dtype": "float", "nullable": False, "min": 0, "max": 10},
        {"name": "n", "dtype": "int", "nullable": True},
    ]})  # fmt: skip
    table = pa.table({
        "a": pa.array([1.0, None, 20.0, np.inf, 5.0, None, 3.0], pa.float64()),
        "n": pa.array([1.0, 2.0, 2.5, 1.0, np.inf, 0.5, None], pa.float64()),
    })  # fmt: skip
    policy = ValidationPolicy(out_of_range="reject", max_rows=1 << 62)
    checked = validate_chunk(table, signature, policy)
    assert (checked.matrix is not None) == (path == "matrix")
    assert list(checked.reasons) == ["", "a: null", "a: out_of_range", "a: not_finite",
                                     "n: not_finite", "a: null", ""]  # fmt: skip
    assert checked.keep.tolist() == [True, False, False, False, False, False, True]
    assert checked.out_of_range == 2  # 20.0 and the infinity
    counted = validate_chunk(table, signature, ValidationPolicy(max_rows=1 << 62))
    assert list(counted.reasons)[2] == "n: not_integer"  # 20.0 is scored and counted; 2.5 not
    assert counted.out_of_range == 2


def test_int_columns_take_the_numeric_path_and_text_columns_do_not() -> None:
    numbers = Signature.from_dict({"columns": [{"name": "k", "dtype": "int"}]})
    ints = pa.table({"k": pa.array([1, None, 3], pa.int64())})
    checked = validate_chunk(ints, numbers, ValidationPolicy(max_rows=1 << 62))
    assert checked.matrix is not None
    assert list(checked.reasons) == ["", "k: null", ""]
    as_text = pa.table({"k": ["1", "x", "3"]})
    checked = validate_chunk(as_text, numbers, ValidationPolicy(max_rows=1 << 62))
    assert checked.matrix is None
    assert list(checked.reasons) == ["", "k: expected_number", ""]


def test_the_logbook_gets_the_same_rows_on_both_paths(world, monkeypatch) -> None:  # noqa: F811
    """Every row logged (--log-sample 1: which rows a sample takes depends on the run id)."""
    settings, model, tmp = world
    data = _messy(5_000, seed=8)
    write_parts(tmp / "in", data, parts=1, row_group=2_000)
    logged: list[tuple[list[str], np.ndarray, np.ndarray]] = []

    def capture(self, batch):
        features = batch.features
        values = features.to_numpy() if isinstance(features, pd.DataFrame) else features
        logged.append((batch.feature_names, np.asarray(values), batch.predictions))
        return True

    monkeypatch.setattr(Logbook, "log_predictions", capture)
    spec = BatchSpec(model="m", input=str(tmp / "in"), output=str(tmp / "fast.parquet"),
                     log_sample=1, chunk_rows=1_500, max_reject_rate=1)  # fmt: skip
    fast_run = run_batch(settings, spec).run
    fast, logged[:] = list(logged), []
    _column_by_column(monkeypatch)
    slow = BatchSpec(**{**spec.__dict__, "output": str(tmp / "slow.parquet")})
    slow_run = run_batch(settings, slow)
    assert len(fast) == len(logged) == 4
    for one, other in zip(fast, logged, strict=True):
        assert one[0] == other[0] == FEATURES
        assert np.array_equal(one[1], other[1], equal_nan=True)
        assert np.array_equal(one[2], other[2])
    assert pd.read_parquet(tmp / "fast.parquet").drop(columns="scored_at").equals(
        pd.read_parquet(tmp / "slow.parquet").drop(columns="scored_at"))  # fmt: skip
    assert fast_run.rows_rejected == slow_run.run.rows_rejected > 0


def _failed_run(settings) -> str:
    with Registry(settings) as registry:
        runs = BatchStore(registry.engine).runs("m")
    assert runs[0].status == "failed"
    return runs[0].error or ""


@pytest.mark.parametrize("workers", [1, 2])
def test_a_write_error_in_the_writing_thread_fails_the_job(world, monkeypatch, workers) -> None:  # noqa: F811
    """Regression guard for the write-behind thread: its error must end the job (not vanish,
    not hang it), and the one-file output must not appear."""
    settings, model, tmp = world
    write_parts(tmp / "in", frame(12_000, seed=9), parts=3, row_group=2_000)
    from watchkeeper.batch import sinks

    real = sinks.TaskWriter.write
    calls = [0]

    def full_disk(self, output, rejects):
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(28, "No space left on device")
        real(self, output, rejects)

    monkeypatch.setattr(sinks.TaskWriter, "write", full_disk)  # with 2 workers: this process's
    out = tmp / "out.parquet"
    spec = BatchSpec(model="m", input=str(tmp / "in"), output=str(out), chunk_rows=1_000,
                     workers=workers)  # fmt: skip
    with pytest.raises(OSError, match="No space left"):
        run_batch(settings, spec)
    assert "No space left" in _failed_run(settings)
    assert not out.exists()
    assert not Path(str(out) + ".tmp").exists()


def test_a_read_error_in_the_reading_thread_fails_the_job(world) -> None:  # noqa: F811
    settings, model, tmp = world
    path = tmp / "in.parquet"
    pq.write_table(pa.Table.from_pandas(frame(20_000, seed=10), preserve_index=False), path,
                   row_group_size=5_000, compression="snappy")  # fmt: skip
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 4_000] = b"\xff" * 4_000  # a page in the middle, footer intact
    path.write_bytes(bytes(raw))
    out = tmp / "out.parquet"
    with pytest.raises(InvalidInput, match="cannot read"):
        run_batch(settings, BatchSpec(model="m", input=str(path), output=str(out),
                                      chunk_rows=1_000))  # fmt: skip
    assert "cannot read" in _failed_run(settings)
    assert not out.exists()
