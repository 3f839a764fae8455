"""score_chunk: one model pass for forests, outputs identical to the model's own calls."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.batch.test_job import FEATURES, frame, world  # noqa: F401 (world: a fixture)
from watchkeeper.batch.job import BatchSpec, run_batch
from watchkeeper.batch.score import OutputSpec, score_chunk
from watchkeeper.batch.sinks import text_columns
from watchkeeper.errors import SchemaError
from watchkeeper.models import load_model, save_model
from watchkeeper.registry import Registry
from watchkeeper.registry.batch import BatchStore


def _loaded(model, tmp_path, example):
    save_model(model, tmp_path / "pkg", input_example=example)
    return load_model(tmp_path / "pkg")


@pytest.mark.parametrize(
    ("make", "one_pass"),
    [
        (lambda: RandomForestClassifier(20, max_depth=4, random_state=0), True),
        (lambda: make_pipeline(StandardScaler(), RandomForestClassifier(5, random_state=0)), True),
        (lambda: LogisticRegression(), False),
    ],
)
def test_forest_predictions_come_from_one_probability_pass(make, one_pass, tmp_path, monkeypatch):
    """Regression: a forest's predict walked all its trees a second time after predict_proba."""
    train = frame(3_000, seed=5)
    model = make().fit(train[FEATURES], np.where(train["a"] * train["b"] > 0, "yes", "no"))
    loaded = _loaded(model, tmp_path, train[FEATURES])
    data = frame(5_000, seed=6)
    chunk = pa.Table.from_pandas(data, preserve_index=False)
    calls: list[str] = []
    real = type(model).predict
    monkeypatch.setattr(type(model), "predict",
                        lambda self, x: (calls.append("p"), real(self, x))[1])  # fmt: skip
    scored = score_chunk(loaded, chunk, spec=OutputSpec(id_column="customer"), name="m",
                         version=1, scored_at=datetime.now(UTC))  # fmt: skip
    assert calls == ([] if one_pass else ["p"])
    out = scored.output.to_pandas()
    assert list(out["prediction"]) == list(real(model, data[FEATURES]))
    assert np.array_equal(out[["proba_no", "proba_yes"]].to_numpy(),
                          model.predict_proba(data[FEATURES]))  # fmt: skip


def test_parts_use_a_dictionary_for_text_columns_only(tmp_path) -> None:
    table = pa.table({"id": [1, 2], "p": [0.1, 0.2], "model": ["m", "m"]})
    assert text_columns(table.schema) == ["model"]
    pq.write_table(table, tmp_path / "t.parquet", use_dictionary=text_columns(table.schema))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), table.to_pandas())


def test_columns_missing_a_model_column_are_refused_before_a_run(world) -> None:  # noqa: F811
    """Regression: --columns without all the model's columns failed inside the job, as a run."""
    settings, _, tmp = world
    frame(100).to_parquet(tmp / "in.parquet")
    spec = BatchSpec(model="m", input=str(tmp / "in.parquet"), output=str(tmp / "o.parquet"),
                     columns=("a", "b"))  # fmt: skip
    with pytest.raises(SchemaError, match="lacks column"):
        run_batch(settings, spec)
    with Registry(settings) as registry:
        assert BatchStore(registry.engine).runs("m") == []
