"""Saving, importing and loading model packages.

A package is written into a hidden staging directory next to its destination and renamed into
place once complete, so a half-written package is never visible. Loading verifies every file
against the manifest before anything is deserialized.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from watchkeeper.errors import InvalidInput, UnreadableModel
from watchkeeper.models import flavors
from watchkeeper.models._versions import library_versions, log_version_drift
from watchkeeper.models.flavors.base import Flavor, Options, PackageFiles
from watchkeeper.models.flavors.mlflow import is_mlflow_dir, read_mlflow_model
from watchkeeper.models.flavors.python import PythonFlavor
from watchkeeper.models.flavors.sklearn import file_serialization, read_model
from watchkeeper.models.loaded import LoadedModel
from watchkeeper.models.manifest import (
    MANIFEST_NAME,
    Manifest,
    hash_directory,
    read_manifest,
    verify_package,
    write_manifest,
)
from watchkeeper.models.signature import Signature, infer_signature

PathLike = str | os.PathLike[str]
Example = pd.DataFrame | Mapping[str, Any] | np.ndarray[Any, Any]
SignatureLike = Signature | Mapping[str, Any]


def save_model(
    model: Any,
    path: PathLike,
    *,
    flavor: str = "auto",
    input_example: Example | None = None,
    signature: SignatureLike | None = None,
    import_path: str | None = None,
    serialization: str | None = None,
) -> Manifest:
    """Write ``model`` as a package directory at ``path`` (new or empty) and return its manifest.

    ``flavor="auto"`` picks the flavor from the object's type. The signature is ``signature``
    when given, else inferred from ``input_example``. ``import_path="pkg.module:attr"`` (with
    ``model=None``) stores a python-flavor model by reference instead of pickling it.
    ``serialization`` picks the file format: ``skops`` (default), ``joblib`` or ``pickle`` for
    scikit-learn, ``ubj`` (default) or ``json`` for XGBoost.
    """
    resolved = _resolve_signature(signature, input_example)
    if import_path is not None:
        return _save_import_path(model, Path(path), flavor, import_path, resolved)
    chosen = _choose(flavor, model)
    with _staged(Path(path)) as staging:
        options = chosen.save(model, staging, serialization=serialization)
        return _finish(staging, chosen, options, resolved)


def package_from_path(
    source: PathLike,
    destination: PathLike,
    *,
    flavor: str = "auto",
    signature: SignatureLike | None = None,
    input_example: Example | None = None,
    trusted_types: Sequence[str] | None = None,
) -> Manifest:
    """Build a package at ``destination`` from what is on disk at ``source``.

    ``source`` may be a watchkeeper package (copied and verified), an MLflow model directory
    (its native model file is copied in, ``options["imported_from"] == "mlflow"``), or a single
    model file: ``.skops``, ``.joblib``/``.pkl``/``.pickle`` (scikit-learn, or the python flavor
    when the object is not an estimator), ``.onnx``, ``.ubj``/``.json`` (XGBoost) or
    ``.txt``/``.lgb``/``.model`` (LightGBM); the content decides when the suffix does not.
    """
    src, dest = Path(source), Path(destination)
    if not src.exists():
        raise UnreadableModel(f"{src} does not exist")
    resolved = _resolve_signature(signature, input_example)
    if src.is_dir():
        if (src / MANIFEST_NAME).is_file():
            return _copy_package(src, dest, flavor, resolved)
        if is_mlflow_dir(src):
            return _import_mlflow(src, dest, flavor, resolved, trusted_types)
        raise UnreadableModel(
            f"{src} is a directory without {MANIFEST_NAME} (a watchkeeper package) "
            "or MLmodel (an MLflow model)"
        )
    return _import_file(src, dest, flavor, resolved, trusted_types)


def load_model(
    path: PathLike,
    *,
    verify: bool = True,
    expected_digest: str | None = None,
    trusted_types: Sequence[str] | None = None,
) -> LoadedModel:
    """Load a package for prediction.

    With ``verify`` (or an ``expected_digest``, the digest the registry recorded) every file's
    sha256 is checked against the manifest before anything is deserialized, and the model
    bytes are checked again as they are read. ``trusted_types`` names extra types a skops file
    may contain.
    """
    directory = Path(path)
    check = verify or expected_digest is not None
    manifest = read_manifest(directory)
    if check:
        # The model file is hashed as the flavor reads it (PackageFiles), so hash it only then.
        model_file = manifest.options.get("model_file")
        deferred = {str(model_file)} if model_file is not None else set()
        manifest = verify_package(directory, expected_digest, defer=deferred)
    if manifest.flavor not in flavors.FLAVORS:
        raise UnreadableModel(f"{directory}: unknown flavor {manifest.flavor!r}")
    log_version_drift(manifest.library_versions, directory)
    files = PackageFiles(directory, manifest, check=check)
    predictor = flavors.get(manifest.flavor).load(files, trusted_types=trusted_types)
    return LoadedModel(path=directory, manifest=manifest, predictor=predictor)


def _resolve_signature(
    signature: SignatureLike | None, input_example: Example | None
) -> Signature | None:
    if isinstance(signature, Signature):
        return signature
    if isinstance(signature, Mapping):
        return Signature.from_dict(signature)
    if signature is not None:
        raise InvalidInput(f"signature must be a Signature, not a {type(signature).__name__}")
    return infer_signature(input_example) if input_example is not None else None


def _choose(flavor: str, model: Any) -> Flavor:
    if flavor == "auto":
        return flavors.detect(model)
    chosen = flavors.get(flavor)
    if not chosen.matches(model):
        raise InvalidInput(f"a {type(model).__name__} is not a {flavor} model")
    return chosen


def _save_import_path(
    model: Any, path: Path, flavor: str, import_path: str, signature: Signature | None
) -> Manifest:
    if model is not None:
        raise InvalidInput("pass either a model object or import_path, not both")
    if flavor not in ("auto", "python"):
        raise InvalidInput(f"import_path models are python-flavor models, not {flavor}")
    python = PythonFlavor()
    with _staged(path) as staging:
        options = python.save_import_path(import_path, staging)
        return _finish(staging, python, options, signature)


def _copy_package(src: Path, dest: Path, flavor: str, signature: Signature | None) -> Manifest:
    manifest = verify_package(src)
    if flavor not in ("auto", manifest.flavor):
        raise InvalidInput(f"{src} is a {manifest.flavor} package, not {flavor}")
    with _staged(dest) as staging:
        shutil.copytree(src, staging, dirs_exist_ok=True)
        if signature is not None:
            write_manifest(staging, replace(manifest, signature=signature))
        return verify_package(staging)


def _import_mlflow(
    src: Path,
    dest: Path,
    flavor: str,
    signature: Signature | None,
    trusted_types: Sequence[str] | None,
) -> Manifest:
    found = read_mlflow_model(src, with_signature=signature is None)
    if flavor not in ("auto", found.flavor):
        raise InvalidInput(f"{src} is an MLflow {found.flavor} model, not {flavor}")
    chosen = flavors.get(found.flavor)
    with _staged(dest) as staging:
        options = chosen.adopt(
            found.model_file, staging, hints=found.hints, trusted_types=trusted_types
        )
        options.update(imported_from="mlflow", mlflow=found.info)
        return _finish(staging, chosen, options, signature or found.signature)


def _import_file(
    src: Path,
    dest: Path,
    flavor: str,
    signature: Signature | None,
    trusted_types: Sequence[str] | None,
) -> Manifest:
    chosen = flavors.detect_file(src) if flavor == "auto" else flavors.get(flavor)
    serialization = file_serialization(src)
    with _staged(dest) as staging:
        if chosen.name in ("sklearn", "python") and serialization != "skops":
            model = read_model(src, serialization, trusted_types)
            try:
                chosen = _choose(flavor, model)
            except InvalidInput as exc:
                raise UnreadableModel(f"{src}: {exc.message}") from exc
            keep = serialization if chosen.name == "sklearn" else None
            options = chosen.save(model, staging, serialization=keep)
        else:
            options = chosen.adopt(src, staging, hints={}, trusted_types=trusted_types)
        return _finish(staging, chosen, options, signature)


def _finish(
    directory: Path, flavor: Flavor, options: Options, signature: Signature | None
) -> Manifest:
    manifest = Manifest(
        flavor=flavor.name,
        files=hash_directory(directory),
        library_versions=library_versions(flavor.libraries(options)),
        signature=signature,
        created_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        options=options,
    )
    write_manifest(directory, manifest)
    return manifest


def _check_destination(destination: Path) -> None:
    if destination.exists() and not destination.is_dir():
        raise InvalidInput(f"{destination} exists and is not a directory")
    if destination.is_dir() and any(destination.iterdir()):
        raise InvalidInput(f"{destination} is not empty; save a package into a new directory")


@contextmanager
def _staged(destination: Path) -> Iterator[Path]:
    """A staging directory that becomes ``destination`` when the block succeeds."""
    _check_destination(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent)
    )
    try:
        yield staging
        staging.chmod(0o755)
        if destination.is_dir():
            destination.rmdir()
        os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
