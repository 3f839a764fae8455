"""Picking the flavor for an object or a file, and importing single model files."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io

from watchkeeper.errors import InvalidInput, UnreadableModel
from watchkeeper.models import load_model, package_from_path, read_manifest, save_model

EXPECTED_FLAVOR = {
    "lgbm wrapper": "lightgbm",
    "lgbm booster": "lightgbm",
    "xgb wrapper": "xgboost",
    "xgb booster": "xgboost",
    "onnx proto": "onnx",
    "sklearn": "sklearn",
    "python object": "python",
    "python function": "python",
}


@pytest.mark.parametrize("name", list(EXPECTED_FLAVOR))
def test_auto_flavor_for_objects(tmp_path: Path, models, name: str) -> None:
    manifest = save_model(models[name], tmp_path / "m")
    assert manifest.flavor == EXPECTED_FLAVOR[name]
    assert read_manifest(tmp_path / "m") == manifest
    load_model(tmp_path / "m")


def test_undetectable_object_and_wrong_flavor(tmp_path: Path, models) -> None:
    with pytest.raises(InvalidInput, match="cannot tell which flavor a int is"):
        save_model(3, tmp_path / "m")
    with pytest.raises(InvalidInput, match="not a lightgbm model"):
        save_model(models["sklearn"], tmp_path / "m", flavor="lightgbm")
    with pytest.raises(InvalidInput, match="unknown flavor 'tensorflow'"):
        save_model(models["sklearn"], tmp_path / "m", flavor="tensorflow")


def test_sklearn_model_can_be_forced_into_the_python_flavor(tmp_path: Path, models, iris) -> None:
    manifest = save_model(models["sklearn"], tmp_path / "m", flavor="python")
    assert manifest.flavor == "python"
    X, _ = iris
    np.testing.assert_array_equal(
        load_model(tmp_path / "m").predict(X), models["sklearn"].predict(X)
    )


def _write_file(kind: str, models: dict, directory: Path) -> Path:
    if kind == "skops":
        skops.io.dump(models["sklearn"], directory / "model.skops")
        return directory / "model.skops"
    if kind == "joblib":
        joblib.dump(models["sklearn"], directory / "model.joblib")
        return directory / "model.joblib"
    if kind == "pkl sklearn":
        (directory / "model.pkl").write_bytes(pickle.dumps(models["sklearn"]))
        return directory / "model.pkl"
    if kind == "joblib as pkl":
        joblib.dump(models["sklearn"], directory / "model.pkl")
        return directory / "model.pkl"
    if kind == "pickle python":
        (directory / "model.pickle").write_bytes(pickle.dumps(models["python object"]))
        return directory / "model.pickle"
    if kind == "pkl lgbm wrapper":
        (directory / "model.pkl").write_bytes(pickle.dumps(models["lgbm wrapper"]))
        return directory / "model.pkl"
    if kind == "onnx":
        (directory / "model.onnx").write_bytes(models["onnx proto"].SerializeToString())
        return directory / "model.onnx"
    if kind == "onnx no suffix":
        (directory / "graph").write_bytes(models["onnx proto"].SerializeToString())
        return directory / "graph"
    if kind in ("ubj", "json"):
        models["xgb wrapper"].save_model(str(directory / f"model.{kind}"))
        return directory / f"model.{kind}"
    if kind == "xgb as .model":
        models["xgb booster"].save_model(str(directory / "x.ubj"))
        return (directory / "x.ubj").rename(directory / "booster.model")
    suffix = {"txt": ".txt", "lgb": ".lgb", "lgb as .model": ".model", "lgb as .bin": ".bin"}[kind]
    models["lgbm booster"].save_model(str(directory / f"model{suffix}"))
    return directory / f"model{suffix}"


FILE_CASES = {
    "skops": ("sklearn", "skops"),
    "joblib": ("sklearn", "joblib"),
    "pkl sklearn": ("sklearn", "pickle"),
    "joblib as pkl": ("sklearn", "pickle"),
    "pickle python": ("python", "cloudpickle"),
    "pkl lgbm wrapper": ("lightgbm", None),
    "onnx": ("onnx", None),
    "onnx no suffix": ("onnx", None),
    "ubj": ("xgboost", None),
    "json": ("xgboost", None),
    "xgb as .model": ("xgboost", None),
    "txt": ("lightgbm", None),
    "lgb": ("lightgbm", None),
    "lgb as .model": ("lightgbm", None),
    "lgb as .bin": ("lightgbm", None),
}


@pytest.mark.parametrize("kind", list(FILE_CASES))
def test_auto_flavor_for_files(tmp_path: Path, models, iris, kind: str) -> None:
    source = _write_file(kind, models, tmp_path)
    manifest = package_from_path(source, tmp_path / "pkg", input_example=iris[0])
    flavor, serialization = FILE_CASES[kind]
    assert manifest.flavor == flavor
    assert manifest.options.get("serialization") == serialization
    assert manifest.signature is not None
    loaded = load_model(tmp_path / "pkg")
    assert loaded.predict(iris[0].to_numpy(np.float32)).shape == (len(iris[0]),)


def test_xgboost_file_remembers_the_wrapper_class(tmp_path: Path, models) -> None:
    source = _write_file("ubj", models, tmp_path)
    assert package_from_path(source, tmp_path / "pkg").options["model_class"] == "XGBRegressor"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("model.pkl", b"\x80\x05garbage", r"cannot read .*model\.pkl as a pickle model file"),
        ("model.skops", b"PK\x03\x04garbage", r"model\.skops as a skops model file"),
        ("model.onnx", b"\x08garbage", r"model\.onnx as an ONNX model"),
        ("model.ubj", b"{garbage", r"model\.ubj as an XGBoost model"),
        ("model.txt", b"just some notes", r"cannot tell what kind of model file .*model\.txt"),
        ("model.json", b'{"not": "xgboost"}', r"cannot tell what kind of model file"),
        ("weights.h5", b"\x89HDF\r\n", r"cannot tell what kind of model file .*weights\.h5"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UnreadableModel, match=message):
        package_from_path(tmp_path / name, tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()


def test_pickle_of_a_non_model_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"weights": [1, 2]}))
    with pytest.raises(UnreadableModel, match=r"model\.pkl: cannot tell which flavor a dict is"):
        package_from_path(tmp_path / "model.pkl", tmp_path / "pkg")


def test_explicit_flavor_for_a_file(tmp_path: Path, models) -> None:
    source = _write_file("lgb as .bin", models, tmp_path)
    assert package_from_path(source, tmp_path / "pkg", flavor="lightgbm").flavor == "lightgbm"
    with pytest.raises(UnreadableModel, match="not a LightGBM text model"):
        package_from_path(_write_file("onnx", models, tmp_path), tmp_path / "x", flavor="lightgbm")
