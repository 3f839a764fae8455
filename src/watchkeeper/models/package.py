"""Saving, importing and loading model packages.

A package is written into a hidden staging directory next to its destination and renamed into
place once complete, so a half-written package is never visible. Loading verifies every file
against the manifest before anything is deserialized.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from watchkeeper.errors import InvalidInput, UnreadableModel
from watchkeeper.models import flavors
from watchkeeper.models._versions import library_versions, log_version_drift
from watchkeeper.models.flavors import _skops
from watchkeeper.models.flavors.base import Adoption, Flavor, Options, PackageFiles
from watchkeeper.models.flavors.mlflow import is_mlflow_dir, read_mlflow_model
from watchkeeper.models.flavors.python import PythonFlavor
from watchkeeper.models.flavors.sklearn import file_serialization, read_model
from watchkeeper.models.inputs import (
    Carried,
    Example,
    Given,
    SignatureLike,
    carried_inputs,
    decide,
)
from watchkeeper.models.loaded import LoadedModel
from watchkeeper.models.manifest import (
    MANIFEST_NAME,
    Manifest,
    hash_directory,
    read_manifest,
    verify_package,
    write_manifest,
)

PathLike = str | os.PathLike[str]


def save_model(
    model: Any,
    path: PathLike,
    *,
    flavor: str = "auto",
    input_example: Example | None = None,
    signature: SignatureLike | None = None,
    reference_data: pd.DataFrame | None = None,
    import_path: str | None = None,
    serialization: str | None = None,
    trusted_types: Sequence[str] | None = None,
) -> Manifest:
    """Write ``model`` as a package directory at ``path`` (new or empty) and return its manifest.

    ``flavor="auto"`` picks the flavor from the object's type. The signature is ``signature``
    when given, else inferred from ``input_example``, else from ``reference_data``, else what
    the model carries (the rule: :mod:`watchkeeper.models.inputs`).
    ``import_path="pkg.module:attr"`` (with ``model=None``) stores a python-flavor model by
    reference instead of pickling it.
    ``serialization`` picks the file format: ``skops`` (default), ``joblib`` or ``pickle`` for
    scikit-learn, ``ubj`` (default) or ``json`` for XGBoost. ``trusted_types`` names types of a
    skops file beyond the default allow-list that loading may accept; the ones the file holds
    are recorded in the manifest (``options["trusted_types"]``).
    """
    resolved = Given.of(signature, input_example, reference_data)
    if import_path is not None:
        return _save_import_path(model, Path(path), flavor, import_path, resolved)
    chosen = _choose(flavor, model)
    with _staged(Path(path)) as staging:
        options = chosen.save(model, staging, serialization=serialization)
        options = _with_trust(staging, options, trusted_types, strict=False)
        return _finish(staging, chosen, options, resolved)


def package_from_path(
    source: PathLike,
    destination: PathLike,
    *,
    flavor: str = "auto",
    signature: SignatureLike | None = None,
    input_example: Example | None = None,
    reference_data: pd.DataFrame | None = None,
    trusted_types: Sequence[str] | None = None,
) -> Manifest:
    """Build a package at ``destination`` from what is on disk at ``source``.

    ``source`` may be a watchkeeper package (copied and verified), an MLflow model directory
    (its native model file is copied in, ``options["imported_from"] == "mlflow"``), or a single
    model file: ``.skops``, ``.joblib``/``.pkl``/``.pickle`` (scikit-learn, or the python flavor
    when the object is not an estimator), ``.onnx``, ``.ubj``/``.json`` (XGBoost) or
    ``.txt``/``.lgb``/``.model`` (LightGBM); the content decides when the suffix does not.
    The signature is chosen as in :func:`save_model` (an MLflow signature is what the model
    carries); a copied package keeps its own unless a signature or input example is given.

    A skops model file may hold only default-trusted types and those named in
    ``trusted_types`` (else ``UntrustedTypes``, before anything is deserialized); the named
    types it holds are recorded in the manifest, replacing whatever a copied package recorded.
    A package whose files or ``model_file`` lead outside its directory is refused.
    """
    src, dest = Path(source), Path(destination)
    if not src.exists():
        raise UnreadableModel(f"{src} does not exist")
    resolved = Given.of(signature, input_example, reference_data)
    if src.is_dir():
        if (src / MANIFEST_NAME).is_file():
            return _copy_package(src, dest, flavor, resolved, trusted_types)
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
    bytes are checked again as they are read. A skops file may contain the default-trusted
    types, the types recorded as trusted in the manifest when the package was made, and
    ``trusted_types``.
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
    trusted = (*recorded_trust(manifest), *_skops.check_type_names(trusted_types))
    predictor = flavors.get(manifest.flavor).load(files, trusted_types=trusted)
    return LoadedModel(path=directory, manifest=manifest, predictor=predictor)


def _choose(flavor: str, model: Any) -> Flavor:
    if flavor == "auto":
        return flavors.detect(model)
    chosen = flavors.get(flavor)
    if not chosen.matches(model):
        raise InvalidInput(f"a {type(model).__name__} is not a {flavor} model")
    return chosen


def _save_import_path(
    model: Any, path: Path, flavor: str, import_path: str, given: Given
) -> Manifest:
    if model is not None:
        raise InvalidInput("pass either a model object or import_path, not both")
    if flavor not in ("auto", "python"):
        raise InvalidInput(f"import_path models are python-flavor models, not {flavor}")
    python = PythonFlavor()
    with _staged(path) as staging:
        options = python.save_import_path(import_path, staging)
        return _finish(staging, python, options, given)


def _copy_package(
    src: Path,
    dest: Path,
    flavor: str,
    given: Given,
    trusted_types: Sequence[str] | None,
) -> Manifest:
    check_package_paths(src)
    manifest = verify_package(src)
    if flavor not in ("auto", manifest.flavor):
        raise InvalidInput(f"{src} is a {manifest.flavor} package, not {flavor}")
    with _staged(dest) as staging:
        shutil.copytree(src, staging, dirs_exist_ok=True)
        options = _with_trust(staging, manifest.options, trusted_types, strict=True)
        # the package's own signature came from an example once: only a new one replaces it
        explicit = given.signature is not None or given.example is not None
        keep = manifest.signature is not None and not explicit
        signature = manifest.signature if keep else decide(given, carried_inputs(options))
        changed = replace(manifest, signature=signature, options=options)
        if changed != manifest:
            write_manifest(staging, changed)
        return verify_package(staging)


def _import_mlflow(
    src: Path,
    dest: Path,
    flavor: str,
    given: Given,
    trusted_types: Sequence[str] | None,
) -> Manifest:
    try:
        found = read_mlflow_model(src)
    except UnreadableModel:  # a signature we cannot convert does not matter if one is given
        if given.empty:
            raise
        found = read_mlflow_model(src, with_signature=False)
    if flavor not in ("auto", found.flavor):
        raise InvalidInput(f"{src} is an MLflow {found.flavor} model, not {flavor}")
    chosen = flavors.get(found.flavor)
    with _staged(dest) as staging:
        adoption = Adoption(file=found.model_file, directory=staging, hints=found.hints,
                            trusted_types=trusted_types)  # fmt: skip
        options = chosen.adopt(adoption)
        options.update(imported_from="mlflow", mlflow=found.info)
        options = _with_trust(staging, options, trusted_types, strict=True)
        return _finish(staging, chosen, options, given, found.carried)


def _import_file(
    src: Path,
    dest: Path,
    flavor: str,
    given: Given,
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
            options = chosen.adopt(Adoption(file=src, directory=staging, hints={},
                                            trusted_types=trusted_types))  # fmt: skip
        options = _with_trust(staging, options, trusted_types, strict=True)
        return _finish(staging, chosen, options, given)


TRUST_OPTION = "trusted_types"


def recorded_trust(manifest: Manifest) -> tuple[str, ...]:
    """The types trusted when the package was made (``options["trusted_types"]``)."""
    value = manifest.options.get(TRUST_OPTION) or []
    if not isinstance(value, list):
        raise UnreadableModel(f"manifest option {TRUST_OPTION} must be a list of type names")
    try:
        return _skops.check_type_names(value)
    except InvalidInput as exc:
        raise UnreadableModel(f"manifest option {TRUST_OPTION}: {exc.message}") from exc


def trust_package(directory: PathLike, trusted_types: Sequence[str] | None) -> Manifest:
    """Check a package's skops model file against the allow-list plus ``trusted_types``.

    Raises ``UntrustedTypes`` naming every other type. Records in the manifest exactly the
    named types the file holds (nothing when none), so a later load trusts no more than that.
    """
    root = Path(directory)
    manifest = read_manifest(root)
    options = _with_trust(root, manifest.options, trusted_types, strict=True)
    if options != manifest.options:
        manifest = replace(manifest, options=options)
        write_manifest(root, manifest)
    return manifest


def _with_trust(
    directory: Path, options: Options, trusted_types: Sequence[str] | None, *, strict: bool
) -> Options:
    """``options`` with ``trusted_types`` set to the named types the skops model file holds.

    ``strict`` refuses any type neither trusted by default nor named; otherwise such types
    are left for the loader to refuse (``save_model`` warns about them).
    """
    named = _skops.check_type_names(trusted_types)
    out = {k: v for k, v in options.items() if k != TRUST_OPTION}
    if options.get("serialization") != "skops" or "model_file" not in options:
        return out
    file = directory / _inside(directory, str(options["model_file"]))
    data = file.read_bytes()
    if strict:
        needed = _skops.named_types_needed(data, named, str(file))
    else:
        needed = [t for t in _skops.untrusted_types(data, str(file)) if t in named]
    if needed:
        out[TRUST_OPTION] = sorted(needed)
    return out


def check_package_paths(directory: PathLike) -> None:
    """Refuse a package with a symlink leading outside it, or whose manifest names a file
    (``model_file`` or any ``*_file`` option) that is absolute, climbs out with ``..`` or is
    not one of its files."""
    root = Path(directory).resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in (*dirnames, *filenames):
            path = Path(dirpath, entry)
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise UnreadableModel(
                    f"{directory}: {path.relative_to(root).as_posix()} is a symlink leading "
                    "outside the package"
                )
    manifest = read_manifest(root)
    for key, value in manifest.options.items():
        if key.endswith("_file") and value is not None:
            name = _inside(root, str(value), key=key)
            if name not in manifest.files:
                raise UnreadableModel(
                    f"{directory}: manifest option {key} names {value!r}, which is not a file "
                    "of the package"
                )


def _inside(directory: Path, name: str, *, key: str = "model_file") -> str:
    """``name`` as a relative POSIX path that stays inside ``directory``."""
    relative = PurePosixPath(name)
    if not name or relative.is_absolute() or "\\" in name or ".." in relative.parts:
        raise UnreadableModel(
            f"{directory}: manifest option {key} {name!r} leads outside the package"
        )
    return relative.as_posix()


def _finish(
    directory: Path,
    flavor: Flavor,
    options: Options,
    given: Given,
    carried: Carried | None = None,
) -> Manifest:
    signature = decide(given, carried or carried_inputs(options))
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
