"""A version registered without a signature (a model file, no input example) is served on the
fast path: keyed rows become one float64 array in a column plan built once per version, and
the answers are the model's own, on every protocol; input that does not fit the plan takes the
old path and gets the same answer it got before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from tests.serving.conftest import start_server
from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook, LogbookConfig
from watchkeeper.registry import Registry
from watchkeeper.serving import predict
from watchkeeper.serving.app import ServeOptions
from watchkeeper.serving.batch import ParsedBatch

NAMES = [f"f{i}" for i in range(6)]


def bare_lr(X: np.ndarray, y: np.ndarray) -> LogisticRegression:
    """An LR that tells nothing of its inputs (no feature names, no count): no signature."""
    model = LogisticRegression(max_iter=1000).fit(X, y)
    del model.n_features_in_
    return model


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Any, Any]]:
    X, y = make_classification(n_samples=300, n_features=6, random_state=0)
    home: Path = tmp_path_factory.mktemp("nosig")
    model = bare_lr(X, y)
    joblib.dump(model, home / "model.joblib")
    settings = Settings(home=home / "home", user="tester")
    with Registry(settings) as registry:
        for name in ("lr", "counted"):
            version = registry.register(name, home / "model.joblib", stage="production")
            assert version.signature is None
    options = ServeOptions(poll_interval=0.05, mlflow_model="lr")
    url, server, thread = start_server(settings, options)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client, model, X
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def records(X: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(NAMES, row, strict=True)) for row in X.tolist()]


def test_kserve_v1_answers_the_models_predictions(served) -> None:
    client, model, X = served
    rows = X[:7]
    got = client.post("/v1/models/lr:predict", json={"instances": records(rows)})
    assert got.status_code == 200, got.text
    assert got.json()["predictions"] == model.predict(rows).tolist()
    one = client.post("/v1/models/lr:predict", json={"instances": records(X[7:8])})
    assert one.json()["predictions"] == model.predict(X[7:8]).tolist()


def test_mlflow_invocations_answers_the_models_predictions(served) -> None:
    client, model, X = served
    rows = X[10:15]
    got = client.post("/invocations", json={"dataframe_records": records(rows)})
    assert got.status_code == 200, got.text
    assert got.json()["predictions"] == model.predict(rows).tolist()
    split = {"dataframe_split": {"columns": NAMES, "data": rows.tolist()}}
    got = client.post("/invocations", json=split)
    assert got.status_code == 200, got.text
    assert got.json()["predictions"] == model.predict(rows).tolist()


def test_v2_answers_the_models_predictions(served) -> None:
    client, model, X = served
    rows = X[20:24]
    inputs = [{"name": n, "shape": [4, 1], "datatype": "FP64", "data": rows[:, i].tolist()}
              for i, n in enumerate(NAMES)]  # fmt: skip
    got = client.post("/v2/models/lr/infer", json={"inputs": inputs})
    assert got.status_code == 200, got.text
    out = got.json()["outputs"][0]
    assert out["data"] == model.predict(rows).tolist()


def test_keys_that_do_not_fit_take_the_old_path(served) -> None:
    """A missing or an extra column gets exactly what the unplanned path gives it: without a
    signature nothing checks the columns, the model is called and fails (a 500 whose body
    names the request id, not the exception)."""
    client, _, X = served
    base = records(X[:1])[0]
    missing = {k: v for k, v in base.items() if k != "f3"}
    extra = {**base, "zzz": 1.0}
    for record in (missing, extra):
        got = client.post("/v1/models/lr:predict", json={"instances": [record]})
        # unvalidated, as before: the model itself refuses the width, the server's 500
        assert got.status_code == 500, got.text
        assert got.json()["code"] == "prediction_failed"
        assert "expecting" not in got.text  # sklearn's message stays in the server log
        assert "Traceback" not in got.text
    # a planned model still answers right after the misfits
    ok = client.post("/v1/models/lr:predict", json={"instances": [base]})
    assert ok.status_code == 200


def test_the_plan_is_built_once_per_version(served, monkeypatch) -> None:
    client, model, X = served
    calls: list[predict.RowPlan | None] = []
    real = predict.build_plan

    def counting(loaded: Any, parsed: ParsedBatch) -> Any:
        calls.append(real(loaded, parsed))
        return calls[-1]

    monkeypatch.setattr(predict, "build_plan", counting)
    for i in range(12):
        got = client.post("/v1/models/counted:predict", json={"instances": records(X[i : i + 2])})
        assert got.status_code == 200, got.text
        assert got.json()["predictions"] == model.predict(X[i : i + 2]).tolist()
    assert len(calls) == 1
    plan = calls[0]
    assert plan is not None
    assert plan.names == tuple(NAMES)  # the first request's keys
    assert plan.array(ParsedBatch(records=records(X[:3]))) is not None  # the array path


def test_the_plan_turns_records_into_one_array() -> None:
    """In-process: records in plan order become a float64 array; other shapes do not."""
    plan = predict.RowPlan(("a", "b"), by_model=False)
    arr = plan.array(ParsedBatch(records=[{"a": 1, "b": 2.5}, {"a": 3, "b": 4}]))
    assert arr is not None
    assert arr.dtype == np.float64
    assert arr.tolist() == [[1.0, 2.5], [3.0, 4.0]]
    cols = plan.array(ParsedBatch(columns={"a": [1, 2], "b": [3, 4]}))
    assert cols is not None
    assert cols.tolist() == [[1.0, 3.0], [2.0, 4.0]]
    assert plan.array(ParsedBatch(records=[{"b": 2, "a": 1}])) is None  # other order
    assert plan.array(ParsedBatch(records=[{"a": "x", "b": 2}])) is None  # a string
    assert plan.array(ParsedBatch(records=[{"a": True, "b": 2}])) is None  # a boolean
    assert plan.array(ParsedBatch(records=[{"a": None, "b": 2}])) is None  # a null
    named = predict.RowPlan(("a", "b"), by_model=True)
    got = named.array(ParsedBatch(records=[{"b": 2, "a": 1}]))
    assert got is not None
    assert got.tolist() == [[1.0, 2.0]]


def test_positional_rows_are_logged_with_their_positions(tmp_path: Path) -> None:
    """Rows as lists to a version without a signature reach the logbook under ``f0 ..``: the
    record was dropped (features without names) before."""
    X, y = make_classification(n_samples=100, n_features=4, random_state=1)
    joblib.dump(bare_lr(X, y), tmp_path / "m.joblib")
    settings = Settings(home=tmp_path / "home", user="tester")
    with Registry(settings) as registry:
        registry.register("raw", tmp_path / "m.joblib", stage="production")
    options = ServeOptions(poll_interval=0.05, logbook=LogbookConfig(flush_interval=0.05))
    url, server, thread = start_server(settings, options)
    try:
        got = httpx.post(f"{url}/v1/models/raw:predict", json={"instances": X[:2].tolist()})
        assert got.status_code == 200, got.text
        metrics = httpx.get(f"{url}/metrics").text
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    dropped = [line for line in metrics.splitlines()
               if line.startswith("watchkeeper_prediction_records_dropped_total{")]  # fmt: skip
    assert all(line.endswith(" 0.0") for line in dropped), dropped
    # the shutdown flushed the logbook: both rows are there, under their positions
    now = datetime.now(UTC)
    with Logbook(settings.resolved_logbook_url) as book:
        logged = book.read("raw", now - timedelta(hours=1), now + timedelta(hours=1))
    assert logged.num_rows == 2
    for i in range(4):
        assert logged.column(f"feature_f{i}").to_pylist() == X[:2, i].tolist()
