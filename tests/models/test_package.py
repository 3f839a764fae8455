"""save_model / package_from_path / load_model: destinations, copies, batches, API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import watchkeeper.models
from watchkeeper.errors import IntegrityError, InvalidInput, SchemaError, UnreadableModel
from watchkeeper.models import FLAVORS, load_model, package_from_path, read_manifest, save_model


def test_public_exports_are_sorted() -> None:
    assert watchkeeper.models.__all__ == sorted(watchkeeper.models.__all__)
    assert set(watchkeeper.models.__all__) == {
        "ColumnSpec",
        "FLAVORS",
        "LoadedModel",
        "Manifest",
        "Signature",
        "infer_signature",
        "load_model",
        "package_from_path",
        "read_manifest",
        "save_model",
        "verify_package",
    }
    assert FLAVORS == ("onnx", "lightgbm", "xgboost", "sklearn", "python")


def test_missing_source_and_plain_directory(tmp_path: Path) -> None:
    with pytest.raises(UnreadableModel, match="does not exist"):
        package_from_path(tmp_path / "nothing", tmp_path / "pkg")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UnreadableModel, match="without manifest.json"):
        package_from_path(tmp_path / "plain", tmp_path / "pkg")


def test_existing_package_is_copied_and_verified(tmp_path: Path, models, iris) -> None:
    original = save_model(models["sklearn"], tmp_path / "a", input_example=iris[0])
    copied = package_from_path(tmp_path / "a", tmp_path / "b")
    assert copied == original
    assert copied.digest() == original.digest()
    replaced = package_from_path(tmp_path / "a", tmp_path / "c", input_example=iris[0].head(3))
    assert replaced.signature is not None
    assert replaced.signature != original.signature  # ranges of 3 rows, not 150
    assert replaced.files == original.files
    with pytest.raises(InvalidInput, match="lacks the model's input"):
        package_from_path(tmp_path / "a", tmp_path / "f", input_example=iris[0].iloc[:, :2])
    with pytest.raises(InvalidInput, match="is a sklearn package, not onnx"):
        package_from_path(tmp_path / "a", tmp_path / "d", flavor="onnx")
    (tmp_path / "a" / "model.skops").write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="model.skops"):
        package_from_path(tmp_path / "a", tmp_path / "e")


# --- destinations ---------------------------------------------------------------------------


def test_destination_must_be_new_or_empty(tmp_path: Path, models) -> None:
    (tmp_path / "empty").mkdir()
    save_model(models["sklearn"], tmp_path / "empty")
    assert (tmp_path / "empty" / "manifest.json").is_file()
    with pytest.raises(InvalidInput, match="is not empty"):
        save_model(models["sklearn"], tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="is not a directory"):
        save_model(models["sklearn"], tmp_path / "file")
    save_model(models["sklearn"], tmp_path / "new" / "nested")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file", "new"]


# --- batches --------------------------------------------------------------------------------


def test_batch_errors(tmp_path: Path, models, iris) -> None:
    X, _ = iris
    save_model(models["sklearn"], tmp_path / "m", input_example=X)
    loaded = load_model(tmp_path / "m")
    with pytest.raises(SchemaError, match=r"missing input column\(s\): petal width \(cm\)") as info:
        loaded.predict(X.drop(columns=["petal width (cm)"]))
    assert [d.field for d in info.value.details] == ["petal width (cm)"]
    with pytest.raises(SchemaError, match="sepal length"):
        loaded.predict({"petal width (cm)": [1.0]})
    with pytest.raises(SchemaError, match=r"expected 4 column\(s\)"):
        loaded.predict(X.to_numpy()[:, :3])
    with pytest.raises(SchemaError, match="2-D array"):
        loaded.predict(X.to_numpy()[0])
    with pytest.raises(InvalidInput, match="cannot predict on a list"):
        loaded.predict([[1, 2, 3, 4]])
    extra = X.assign(unused=1)
    np.testing.assert_array_equal(loaded.predict(extra), loaded.predict(X))


def test_repr_and_properties(tmp_path: Path, models, iris) -> None:
    save_model(models["sklearn"], tmp_path / "m", input_example=iris[0])
    loaded = load_model(tmp_path / "m")
    assert repr(loaded) == f"LoadedModel(flavor='sklearn', path='{tmp_path / 'm'}')"
    assert loaded.signature is not None
    assert loaded.input_names == loaded.signature.names
    assert loaded.manifest == read_manifest(tmp_path / "m")
    assert loaded.path == tmp_path / "m"
    json.dumps(loaded.manifest.to_dict())
