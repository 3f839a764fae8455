from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from watchkeeper.errors import InvalidInput, SchemaError
from watchkeeper.models import load_model, save_model


@pytest.fixture(scope="module")
def float_iris(iris) -> tuple[pd.DataFrame, pd.Series]:
    X, y = iris
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def classifier(float_iris) -> LogisticRegression:
    X, y = float_iris
    return LogisticRegression(max_iter=500).fit(X.to_numpy(), y)


@pytest.mark.parametrize("zipmap", [True, False])
def test_classifier_labels_and_probabilities(
    tmp_path: Path, classifier, float_iris, zipmap: bool
) -> None:
    X, _ = float_iris
    graph = to_onnx(classifier, X.to_numpy()[:1], options={"zipmap": zipmap})
    manifest = save_model(graph, tmp_path / "m", input_example=X)
    assert manifest.flavor == "onnx"
    assert manifest.files.keys() == {"model.onnx"}
    assert manifest.options["classes"] == [0, 1, 2]
    loaded = load_model(tmp_path / "m")
    assert loaded.has_proba
    np.testing.assert_array_equal(loaded.classes, [0, 1, 2])
    for batch in (X, X.to_numpy(np.float64), {c: X[c].tolist() for c in X.columns}):
        np.testing.assert_array_equal(loaded.predict(batch), classifier.predict(X.to_numpy()))
        proba = loaded.predict_proba(batch)
        assert proba.shape == (len(X), 3)
        np.testing.assert_allclose(proba, classifier.predict_proba(X.to_numpy()), atol=1e-5)


def test_bytes_and_file_path_are_onnx(tmp_path: Path, classifier, float_iris) -> None:
    X, _ = float_iris
    data = to_onnx(classifier, X.to_numpy()[:1]).SerializeToString()
    save_model(data, tmp_path / "from-bytes")
    (tmp_path / "graph.onnx").write_bytes(data)
    manifest = save_model(tmp_path / "graph.onnx", tmp_path / "from-path")
    assert manifest.flavor == "onnx"
    a = load_model(tmp_path / "from-bytes").predict(X.to_numpy())
    b = load_model(tmp_path / "from-path").predict(X.to_numpy())
    np.testing.assert_array_equal(a, b)


def test_regressor_output_is_flat_and_has_no_proba(tmp_path: Path, diabetes) -> None:
    X, y = diabetes
    X32 = X.to_numpy(np.float32)
    model = LinearRegression().fit(X32, y)
    save_model(to_onnx(model, X32[:1]), tmp_path / "m", input_example=X)
    loaded = load_model(tmp_path / "m")
    out = loaded.predict(X)
    assert out.shape == (len(X),)
    np.testing.assert_allclose(out, model.predict(X32), rtol=1e-4)
    with pytest.raises(InvalidInput, match="has no predict_proba"):
        loaded.predict_proba(X)


def test_one_input_per_column_graph(tmp_path: Path, iris) -> None:
    X, y = iris
    frame = pd.DataFrame(
        {
            "length": X["sepal length (cm)"].astype(np.float32),
            "width": X["sepal width (cm)"].astype(np.float32),
            "kind": np.where(X["petal width (cm)"] > 1.0, "big", "small"),
        }
    )
    columns = ColumnTransformer(
        [("num", StandardScaler(), ["length", "width"]), ("cat", OneHotEncoder(), ["kind"])]
    )
    model = make_pipeline(columns, LogisticRegression(max_iter=500)).fit(frame, y)
    graph = to_onnx(model, frame[:1], options={"zipmap": False})
    save_model(graph, tmp_path / "m", input_example=frame)
    loaded = load_model(tmp_path / "m")
    expected = model.predict(frame)
    reordered = frame[["kind", "width", "length"]]
    for batch in (frame, reordered, {c: frame[c].tolist() for c in frame.columns}):
        np.testing.assert_array_equal(loaded.predict(batch), expected)
    with pytest.raises(SchemaError, match="missing input column.*kind"):
        loaded.predict(frame[["length", "width"]])


def test_named_inputs_without_signature(tmp_path: Path, iris) -> None:
    X, y = iris
    frame = pd.DataFrame(
        {"a": X.iloc[:, 0].astype(np.float32), "b": X.iloc[:, 1].astype(np.float32)}
    )
    columns = ColumnTransformer([("num", StandardScaler(), ["a", "b"])])
    model = make_pipeline(columns, LinearRegression()).fit(frame, y)
    save_model(to_onnx(model, frame[:1]), tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.input_names == ["a", "b"]
    np.testing.assert_allclose(loaded.predict(frame[["b", "a"]]), model.predict(frame), rtol=1e-4)
