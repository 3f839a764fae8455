"""Every way a package is made gives it the signature the information allows (models/inputs.py):
what the caller gave wins, the model's own inputs otherwise, and the two must agree."""

from __future__ import annotations

import warnings
from pathlib import Path

import joblib
import lightgbm as lgb
import numpy as np
import onnx
import pandas as pd
import pytest
import xgboost as xgb
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from watchkeeper.errors import InvalidInput
from watchkeeper.models import Signature, load_model, package_from_path, save_model

IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def _kinds(signature: Signature | None) -> list[tuple[str, str, bool]]:
    assert signature is not None
    return [(c.name, c.dtype, c.nullable) for c in signature.columns]


# --- what the model carries -------------------------------------------------------------------


def test_joblib_sklearn_with_feature_names(tmp_path: Path, logreg) -> None:
    """A joblib estimator fitted on a DataFrame: its feature_names_in_, as floats, not nullable
    (LogisticRegression refuses NaN)."""
    joblib.dump(logreg, tmp_path / "lr.joblib")
    manifest = package_from_path(tmp_path / "lr.joblib", tmp_path / "pkg")
    assert _kinds(manifest.signature) == [(n, "float", False) for n in IRIS]


def test_joblib_sklearn_without_feature_names(tmp_path: Path, array_forest, iris) -> None:
    """Fitted on a bare array: n_features_in_ unnamed columns f0..f3 (nullable: forests take
    NaN), and rows still predict."""
    joblib.dump(array_forest, tmp_path / "rf.joblib")
    manifest = package_from_path(tmp_path / "rf.joblib", tmp_path / "pkg")
    assert _kinds(manifest.signature) == [(f"f{i}", "float", True) for i in range(4)]
    X = iris[0].to_numpy()
    np.testing.assert_array_equal(load_model(tmp_path / "pkg").predict(X), array_forest.predict(X))


def test_sklearn_pipeline_string_column_and_nan(tmp_path: Path, pipeline, mixed) -> None:
    """A column a OneHotEncoder was fitted on as strings is a string column. Columns are
    nullable when NaN is filled in (an imputer first) or accepted (HistGradientBoosting), not
    when a scaler passes it on to a LogisticRegression."""
    manifest = save_model(pipeline, tmp_path / "p")
    assert _kinds(manifest.signature) == [*((n, "float", False) for n in IRIS),
                                          ("kind", "string", False)]  # fmt: skip
    X, y = mixed
    hist = HistGradientBoostingClassifier(max_iter=5).fit(X[IRIS], y)
    assert _kinds(save_model(hist, tmp_path / "h").signature) == [(n, "float", True) for n in IRIS]
    imputed = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500)).fit(X[IRIS], y)
    assert {c.nullable for c in save_model(imputed, tmp_path / "i").signature.columns} == {True}


def test_onnx_single_tensor_input(tmp_path: Path, iris) -> None:
    """One [n, 4] float graph input: four unnamed nullable float columns."""
    X, y = iris
    X32 = X.to_numpy(np.float32)
    graph = to_onnx(LogisticRegression(max_iter=500).fit(X32, y), X32[:1])
    manifest = save_model(graph, tmp_path / "m")
    assert _kinds(manifest.signature) == [(f"f{i}", "float", True) for i in range(4)]


def test_onnx_one_input_per_column(tmp_path: Path) -> None:
    """Several [n, 1] graph inputs: one column each, by input name and element type."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["count"], ["count_f"], to=TensorProto.FLOAT),
         helper.make_node("Add", ["price", "count_f"], ["total"])],
        "two_inputs",
        [helper.make_tensor_value_info("price", TensorProto.FLOAT, [None, 1]),
         helper.make_tensor_value_info("count", TensorProto.INT64, [None, 1])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [None, 1])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "two.onnx")
    manifest = package_from_path(tmp_path / "two.onnx", tmp_path / "pkg")
    assert _kinds(manifest.signature) == [("price", "float", True), ("count", "int", False)]
    frame = pd.DataFrame({"count": [2, 3], "price": [1.5, 0.5]})
    np.testing.assert_allclose(load_model(tmp_path / "pkg").predict(frame), [3.5, 3.5])


def test_xgboost_feature_names_and_types(tmp_path: Path, iris) -> None:
    """XGBoost's feature names and types (an int column stays int), nullable; a booster trained
    on an array gets f0..f{n-1}."""
    X, y = iris
    frame = X.assign(count=(X[IRIS[0]] * 10).astype("int64"))
    wrapper = xgb.XGBClassifier(n_estimators=2, max_depth=2).fit(frame, y)
    kinds = _kinds(save_model(wrapper, tmp_path / "w").signature)
    assert kinds == [*((n, "float", True) for n in IRIS), ("count", "int", True)]
    booster = xgb.train({}, xgb.DMatrix(X.to_numpy(), y), 2)
    assert _kinds(save_model(booster, tmp_path / "b").signature) == [
        (f"f{i}", "float", True) for i in range(4)
    ]


def test_lightgbm_feature_names(tmp_path: Path, iris) -> None:
    """LightGBM's names as it stored them (spaces as underscores) when nothing else is given;
    an input example with the original names agrees and keeps them; Column_<i> is unnamed."""
    X, y = iris
    model = lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(X, y)
    stored = [n.replace(" ", "_") for n in IRIS]
    assert _kinds(save_model(model, tmp_path / "a").signature) == [
        (n, "float", True) for n in stored
    ]
    kept = save_model(model, tmp_path / "b", input_example=X[list(reversed(IRIS))])
    assert kept.signature is not None
    assert kept.signature.names == IRIS  # the model's order, the example's names
    unnamed = lgb.LGBMClassifier(n_estimators=2, verbose=-1).fit(X.to_numpy(), y)
    assert save_model(unnamed, tmp_path / "c").signature.names == ["f0", "f1", "f2", "f3"]


def test_python_model_carries_nothing(tmp_path: Path, models) -> None:
    """A plain Python model tells nothing: no signature unless one is given."""
    assert save_model(models["python function"], tmp_path / "m").signature is None


# --- what the caller gives, against what the model carries ------------------------------------


def test_input_example_wins_over_the_model_types(tmp_path: Path, logreg, iris) -> None:
    """The example's types and ranges are the signature, in the model's column order."""
    X, _ = iris
    example = X[list(reversed(IRIS))].head(10)
    manifest = save_model(logreg, tmp_path / "m", input_example=example)
    assert manifest.signature is not None
    assert manifest.signature.names == IRIS
    assert manifest.signature.columns[0].max == X[IRIS[0]].head(10).max()


def test_reference_data_leaves_out_what_the_model_does_not_take(
    tmp_path: Path, logreg, iris
) -> None:
    """Training data with its target column: the signature is the model's inputs only."""
    X, y = iris
    train = X.assign(target=y)
    manifest = save_model(logreg, tmp_path / "m", reference_data=train)
    assert manifest.signature is not None
    assert manifest.signature.names == IRIS
    assert manifest.signature.columns[0].min == X[IRIS[0]].min()


def test_copied_package_keeps_its_signature_over_reference_data(
    tmp_path: Path, logreg, models, iris
) -> None:
    """A package saved with an example keeps that signature when registered with reference
    data (as a retrained candidate is); a package without one gets it from the data."""
    X, y = iris
    own = save_model(logreg, tmp_path / "own", input_example=X.head(10))
    kept = package_from_path(tmp_path / "own", tmp_path / "a", reference_data=X.assign(y=y))
    assert kept.signature == own.signature
    save_model(models["python function"], tmp_path / "bare")
    given = package_from_path(tmp_path / "bare", tmp_path / "b", reference_data=X)
    assert given.signature is not None
    assert given.signature.names == IRIS


def test_disagreements_are_refused(tmp_path: Path, logreg, array_forest, iris) -> None:
    """Given data that lacks a model input, adds one, or has another width is InvalidInput."""
    X, _ = iris
    with pytest.raises(InvalidInput, match=r"reference data .*lacks the model's input.*petal"):
        save_model(logreg, tmp_path / "a", reference_data=X[IRIS[:2]])
    with pytest.raises(InvalidInput, match="does not take: extra"):
        save_model(logreg, tmp_path / "b", input_example=X.assign(extra=1.0))
    with pytest.raises(InvalidInput, match="has 3 column.* takes 4 input"):
        save_model(array_forest, tmp_path / "c", input_example=X[IRIS[:3]])
    explicit = Signature.from_dict({"columns": [{"name": "x", "dtype": "float"}]})
    with pytest.raises(InvalidInput, match="the signature given disagrees"):
        save_model(logreg, tmp_path / "d", signature=explicit)


def test_array_example_takes_the_model_names(tmp_path: Path, logreg, iris) -> None:
    """A 2-D array example for a model that names its inputs: the names are the model's."""
    manifest = save_model(logreg, tmp_path / "m", input_example=iris[0].to_numpy()[:5])
    assert manifest.signature is not None
    assert manifest.signature.names == IRIS


# --- a model saved by MLflow itself -----------------------------------------------------------


def test_real_mlflow_sklearn_model(tmp_path: Path, iris) -> None:
    """A model saved by ``mlflow.sklearn.save_model`` with a signature: MLflow's column types
    (double -> nullable float, long -> int), and MLflow's own predictions reproduced."""
    with warnings.catch_warnings():  # MLflow's own (as errors, its inference falls back to "any")
        warnings.simplefilter("ignore")
        import mlflow.pyfunc
        import mlflow.sklearn
        from mlflow.models import infer_signature as mlflow_signature
    X, y = iris
    frame = X.assign(count=(X[IRIS[0]] * 10).astype("int64"))
    model = LogisticRegression(max_iter=2000).fit(frame, y)
    source = tmp_path / "mlflow-model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            model,
            source,
            signature=mlflow_signature(frame, model.predict(frame)),
            pip_requirements=["scikit-learn"],
        )
        expected = mlflow.pyfunc.load_model(str(source)).predict(frame)
    manifest = package_from_path(source, tmp_path / "pkg")
    assert _kinds(manifest.signature) == [*((n, "float", True) for n in IRIS),
                                          ("count", "int", False)]  # fmt: skip
    np.testing.assert_array_equal(load_model(tmp_path / "pkg").predict(frame), expected)
    with pytest.raises(InvalidInput, match="disagrees.*lacks the model's input.*count"):
        package_from_path(source, tmp_path / "other", input_example=X)
