"""Refusing changed packages before deserializing, and optional-library errors."""

from __future__ import annotations

import logging
import pickle
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests.models.helpers import TouchOnUnpickle
from watchkeeper.errors import IntegrityError, MissingDependency, UnreadableModel
from watchkeeper.models import load_model, save_model, verify_package
from watchkeeper.models.manifest import write_manifest


@pytest.mark.parametrize(
    ("model_name", "serialization"), [("python object", None), ("sklearn", "pickle")]
)
def test_tampered_pickle_is_refused_before_unpickling(
    tmp_path: Path, models, model_name: str, serialization: str | None
) -> None:
    manifest = save_model(models[model_name], tmp_path / "m", serialization=serialization)
    marker = tmp_path / "unpickled.marker"
    (tmp_path / "m" / manifest.options["model_file"]).write_bytes(
        pickle.dumps(TouchOnUnpickle(marker))
    )
    with pytest.raises(IntegrityError, match=r"model\.pkl: sha256 differs"):
        load_model(tmp_path / "m")
    assert not marker.exists()


def test_tampered_manifest_is_caught_by_the_expected_digest(tmp_path: Path, models) -> None:
    manifest = save_model(models["python object"], tmp_path / "m")
    marker = tmp_path / "unpickled.marker"
    evil = pickle.dumps(TouchOnUnpickle(marker))
    (tmp_path / "m" / "model.pkl").write_bytes(evil)
    import hashlib

    forged = replace(manifest, files={"model.pkl": hashlib.sha256(evil).hexdigest()})
    write_manifest(tmp_path / "m", forged)  # a consistent forgery: only the digest catches it
    with pytest.raises(IntegrityError, match=r"manifest\.json was changed"):
        load_model(tmp_path / "m", verify=False, expected_digest=manifest.digest())
    assert not marker.exists()


def test_model_bytes_are_checked_as_they_are_read(tmp_path: Path, models, monkeypatch) -> None:
    """Swapping the file between verification and loading is caught too."""
    manifest = save_model(models["python object"], tmp_path / "m")
    marker = tmp_path / "unpickled.marker"
    real_verify = verify_package

    def verify_then_swap(directory, expected_digest=None, *, defer=()):
        result = real_verify(directory, expected_digest, defer=defer)
        (Path(directory) / "model.pkl").write_bytes(pickle.dumps(TouchOnUnpickle(marker)))
        return result

    monkeypatch.setattr("watchkeeper.models.package.verify_package", verify_then_swap)
    with pytest.raises(IntegrityError, match=r"model\.pkl: sha256 differs"):
        load_model(tmp_path / "m", expected_digest=manifest.digest())
    assert not marker.exists()


def test_verify_false_skips_the_directory_check(tmp_path: Path, models, iris) -> None:
    save_model(models["sklearn"], tmp_path / "m")
    (tmp_path / "m" / "notes.txt").write_text("added later")
    with pytest.raises(IntegrityError, match=r"notes\.txt: extra file"):
        load_model(tmp_path / "m")
    loaded = load_model(tmp_path / "m", verify=False)
    assert loaded.predict(iris[0]).shape == (len(iris[0]),)


# --- optional libraries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [
        ("lgbm wrapper", "lightgbm", "lightgbm"),
        ("xgb booster", "xgboost", "xgboost"),
        ("onnx proto", "onnxruntime", "onnx"),
    ],
)
def test_missing_library_names_the_extra(
    tmp_path: Path, models, monkeypatch, name: str, module: str, extra: str
) -> None:
    save_model(models[name], tmp_path / "saved")
    monkeypatch.setitem(sys.modules, module, None)
    pattern = rf"{module} is not installed.*watchkeeper\[{extra}\]"
    with pytest.raises(MissingDependency, match=pattern):
        save_model(models[name], tmp_path / "again")
    with pytest.raises(MissingDependency, match=pattern):
        load_model(tmp_path / "saved")
    assert not (tmp_path / "again").exists()


def test_library_version_drift_is_logged(tmp_path: Path, models, caplog) -> None:
    manifest = save_model(models["sklearn"], tmp_path / "m")
    versions = {**manifest.library_versions, "scikit-learn": "0.24.2", "not-installed-lib": "1.0"}
    write_manifest(tmp_path / "m", replace(manifest, library_versions=versions))
    with caplog.at_level(logging.WARNING, logger="watchkeeper.models"):
        load_model(tmp_path / "m")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "saved with scikit-learn 0.24.2" in messages[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="watchkeeper.models"):
        save_model(models["sklearn"], tmp_path / "n")
        load_model(tmp_path / "n")  # saved with the installed versions: nothing to log
    assert caplog.records == []


def test_unknown_flavor_in_manifest(tmp_path: Path, models) -> None:
    manifest = save_model(models["sklearn"], tmp_path / "m")
    write_manifest(tmp_path / "m", replace(manifest, flavor="tensorflow"))
    with pytest.raises(UnreadableModel, match="unknown flavor 'tensorflow'"):
        load_model(tmp_path / "m")


def test_model_file_outside_the_package_is_refused(tmp_path: Path, models) -> None:
    manifest = save_model(models["sklearn"], tmp_path / "m")
    options = {**manifest.options, "model_file": "../elsewhere.skops"}
    write_manifest(tmp_path / "m", replace(manifest, options=options))
    with pytest.raises(UnreadableModel, match="leaves the package"):
        load_model(tmp_path / "m", verify=False)
