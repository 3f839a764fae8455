"""Importing MLflow model directories, built by hand the way MLflow writes them."""

from __future__ import annotations

import shutil
from pathlib import Path

import cloudpickle
import lightgbm as lgb
import numpy as np
import pytest
import skops.io
import xgboost as xgb
from skl2onnx import to_onnx

from tests.models.helpers import pyfunc, write_mlmodel
from watchkeeper.errors import InvalidInput, UnreadableModel
from watchkeeper.models import ColumnSpec, Signature, load_model, package_from_path

MLFLOW_TYPES = {"float64": "double", "float32": "float", "int64": "long", "int32": "integer"}


def _inputs(frame) -> list[dict]:
    return [
        {"type": MLFLOW_TYPES[str(frame[c].dtype)], "name": c, "required": True}
        for c in frame.columns
    ]


def _sklearn_dir(root: Path, model, serialization: str, inputs: list[dict] | None) -> Path:
    directory = root / "mlflow-model"
    file_name = "model.skops" if serialization == "skops" else "model.pkl"
    flavors = {
        "python_function": pyfunc("mlflow.sklearn", "model_path", file_name),
        "sklearn": {
            "code": None,
            "pickled_model": file_name,
            "serialization_format": serialization,
            "sklearn_version": "1.9.1",
        },
    }
    write_mlmodel(directory, flavors, inputs=inputs)
    if serialization == "skops":
        skops.io.dump(model, directory / file_name)
    else:
        (directory / file_name).write_bytes(cloudpickle.dumps(model))
    return directory


@pytest.mark.parametrize("serialization", ["cloudpickle", "pickle", "skops"])
@pytest.mark.parametrize("model_name", ["logreg", "forest"])
def test_sklearn(tmp_path: Path, request, iris, serialization: str, model_name: str) -> None:
    X, _ = iris
    model = request.getfixturevalue(model_name)
    source = _sklearn_dir(tmp_path, model, serialization, _inputs(X))
    manifest = package_from_path(source, tmp_path / "pkg")
    assert manifest.flavor == "sklearn"
    assert manifest.options["imported_from"] == "mlflow"
    assert manifest.options["serialization"] == serialization
    assert manifest.options["mlflow"]["run_id"] == "0123456789abcdef0123456789abcdef"
    model_file = manifest.options["model_file"]
    assert set(manifest.files) == {model_file}  # only the model file is copied in
    assert (tmp_path / "pkg" / model_file).read_bytes() == (source / model_file).read_bytes()
    assert manifest.signature is not None
    assert manifest.signature.names == list(X.columns)
    assert manifest.signature.columns[0] == ColumnSpec(
        name="sepal length (cm)", dtype="float", nullable=True
    )
    loaded = load_model(tmp_path / "pkg")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X.to_numpy()), model.predict_proba(X))


def test_sklearn_without_signature(tmp_path: Path, logreg, iris) -> None:
    """An MLmodel without a signature: the estimator's feature_names_in_ become it (floats)."""
    source = _sklearn_dir(tmp_path, logreg, "cloudpickle", None)
    manifest = package_from_path(source, tmp_path / "pkg")
    assert manifest.signature is not None
    assert manifest.signature.names == list(logreg.feature_names_in_)
    assert {c.dtype for c in manifest.signature.columns} == {"float"}
    X, _ = iris
    np.testing.assert_array_equal(load_model(tmp_path / "pkg").predict(X), logreg.predict(X))


def test_explicit_example_replaces_mlflow_signature(tmp_path: Path, logreg, iris) -> None:
    X, _ = iris
    source = _sklearn_dir(tmp_path, logreg, "cloudpickle", _inputs(X))
    manifest = package_from_path(source, tmp_path / "pkg", input_example=X)
    assert manifest.signature is not None
    assert manifest.signature.columns[0].min == 4.3


def test_pyfunc_only_with_a_native_loader(tmp_path: Path, logreg, iris) -> None:
    source = tmp_path / "mlflow-model"
    write_mlmodel(source, {"python_function": pyfunc("mlflow.sklearn", "model_path", "model.pkl")})
    (source / "model.pkl").write_bytes(cloudpickle.dumps(logreg))
    manifest = package_from_path(source, tmp_path / "pkg")
    assert manifest.flavor == "sklearn"
    assert manifest.options["serialization"] == "cloudpickle"
    X, _ = iris
    np.testing.assert_array_equal(load_model(tmp_path / "pkg").predict(X), logreg.predict(X))


def test_arbitrary_pyfunc_needs_mlflow(tmp_path: Path) -> None:
    source = tmp_path / "mlflow-model"
    flavors = {
        "python_function": {**pyfunc("mlflow.pyfunc.model", "model_path", "python_model.pkl")}
    }
    write_mlmodel(source, flavors)
    with pytest.raises(UnreadableModel, match="python_function models need mlflow"):
        package_from_path(source, tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()


def test_lightgbm_booster(tmp_path: Path, cancer) -> None:
    X, y = cancer
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), 5)
    source = tmp_path / "mlflow-model"
    flavors = {
        "lightgbm": {
            "code": None,
            "data": "model.lgb",
            "lgb_version": "4.7.0",
            "model_class": "lightgbm.basic.Booster",
        },
        "python_function": pyfunc("mlflow.lightgbm", "data", "model.lgb"),
    }
    write_mlmodel(source, flavors, inputs=_inputs(X))
    booster.save_model(str(source / "model.lgb"))
    manifest = package_from_path(source, tmp_path / "pkg")
    assert manifest.flavor == "lightgbm"
    assert manifest.options["model_file"] == "model.lgb"
    assert manifest.signature is not None
    assert len(manifest.signature) == X.shape[1]
    p = booster.predict(X.to_numpy())
    np.testing.assert_array_equal(load_model(tmp_path / "pkg").predict_proba(X)[:, 1], p)


def test_lightgbm_pickled_wrapper_is_stored_natively(tmp_path: Path, iris) -> None:
    X, y = iris
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
    source = tmp_path / "mlflow-model"
    flavors = {
        "lightgbm": {
            "code": None,
            "data": "model.pkl",
            "lgb_version": "4.7.0",
            "model_class": "lightgbm.sklearn.LGBMClassifier",
        },
    }
    write_mlmodel(source, flavors)
    (source / "model.pkl").write_bytes(cloudpickle.dumps(model))
    manifest = package_from_path(source, tmp_path / "pkg", input_example=X)
    assert manifest.files.keys() == {"model.txt"}
    loaded = load_model(tmp_path / "pkg")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_xgboost_classifier(tmp_path: Path, cancer) -> None:
    X, y = cancer
    model = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
    source = tmp_path / "mlflow-model"
    flavors = {
        "python_function": pyfunc("mlflow.xgboost", "data", "model.xgb"),
        "xgboost": {
            "code": None,
            "data": "model.xgb",
            "model_class": "xgboost.sklearn.XGBClassifier",
            "model_format": "xgb",
            "xgb_version": "3.2.0",
        },
    }
    write_mlmodel(source, flavors, inputs=_inputs(X))
    model.save_model(str(tmp_path / "saved.ubj"))
    shutil.move(tmp_path / "saved.ubj", source / "model.xgb")
    manifest = package_from_path(source, tmp_path / "pkg")
    assert manifest.flavor == "xgboost"
    assert manifest.options["model_class"] == "XGBClassifier"
    loaded = load_model(tmp_path / "pkg")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_onnx_with_tensor_signature(tmp_path: Path, iris) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    X32 = X.to_numpy(np.float32)
    model = LogisticRegression(max_iter=500).fit(X32, y)
    source = tmp_path / "mlflow-model"
    flavors = {
        "onnx": {
            "code": None,
            "data": "model.onnx",
            "onnx_version": "1.16.0",
            "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        },
        "python_function": pyfunc("mlflow.onnx", "data", "model.onnx"),
    }
    tensor = [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]
    write_mlmodel(source, flavors, inputs=tensor)
    (source / "model.onnx").write_bytes(to_onnx(model, X32[:1]).SerializeToString())
    manifest = package_from_path(source, tmp_path / "pkg")
    assert manifest.flavor == "onnx"
    assert manifest.signature == Signature(
        tuple(ColumnSpec(name=f"f{i}", dtype="float", nullable=True) for i in range(4))
    )
    np.testing.assert_array_equal(load_model(tmp_path / "pkg").predict(X32), model.predict(X32))


def test_signature_types_and_optional_columns(tmp_path: Path, logreg) -> None:
    inputs = [
        {"type": "long", "name": "n", "required": True},
        {"type": "string", "name": "s", "required": False},
        {"type": "boolean", "name": "b"},
        {"type": "datetime", "name": "t", "required": True},
        {"type": "integer", "name": "i", "required": False},
    ]
    source = _sklearn_dir(tmp_path, logreg, "cloudpickle", inputs)
    manifest = package_from_path(source, tmp_path / "pkg")
    assert manifest.signature == Signature(
        (
            ColumnSpec(name="n", dtype="int"),
            ColumnSpec(name="s", dtype="string", nullable=True),
            ColumnSpec(name="b", dtype="bool"),
            ColumnSpec(name="t", dtype="datetime"),
            ColumnSpec(name="i", dtype="int", nullable=True),
        )
    )


def test_unsupported_signature_asks_for_an_explicit_one(tmp_path: Path, logreg, iris) -> None:
    source = _sklearn_dir(tmp_path, logreg, "cloudpickle", [{"type": "binary", "name": "blob"}])
    with pytest.raises(UnreadableModel, match="pass signature= or input_example="):
        package_from_path(source, tmp_path / "pkg")
    manifest = package_from_path(source, tmp_path / "pkg", input_example=iris[0])
    assert manifest.signature is not None
    assert manifest.signature.names == list(iris[0].columns)


def test_broken_directories(tmp_path: Path, logreg) -> None:
    source = _sklearn_dir(tmp_path, logreg, "cloudpickle", None)
    with pytest.raises(InvalidInput, match="MLflow sklearn model, not onnx"):
        package_from_path(source, tmp_path / "pkg", flavor="onnx")
    (source / "model.pkl").unlink()
    with pytest.raises(UnreadableModel, match="model file 'model.pkl': not found"):
        package_from_path(source, tmp_path / "pkg")
    write_mlmodel(source, {"sklearn": {"pickled_model": "../../etc/passwd"}})
    with pytest.raises(UnreadableModel, match="outside"):
        package_from_path(source, tmp_path / "pkg")
    (source / "MLmodel").write_text("flavors: [unclosed")
    with pytest.raises(UnreadableModel, match="cannot read"):
        package_from_path(source, tmp_path / "pkg")
    (source / "MLmodel").write_text("artifact_path: model\n")
    with pytest.raises(UnreadableModel, match="no 'flavors' section"):
        package_from_path(source, tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()
