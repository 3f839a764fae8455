"""A package cannot point registration at files outside itself (issue 16, item 7).

Regression: a package folder whose manifest named ``model_file: ../../etc/passwd`` (or an
absolute path, or whose model file was a symlink to a file elsewhere) was registered: the
symlink's target was copied into the artifact store, the other cases registered a version that
could never load.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression

from watchkeeper.errors import UnreadableModel
from watchkeeper.models import save_model
from watchkeeper.models.manifest import read_manifest, write_manifest
from watchkeeper.registry import Registry


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_text("the database password\n")
    return path


def _package(tmp_path: Path, model: LogisticRegression) -> Path:
    package = tmp_path / "pkg"
    save_model(model, package)
    return package


def _set_options(package: Path, **options: Any) -> None:
    manifest = read_manifest(package)
    write_manifest(package, replace(manifest, options={**manifest.options, **options}))


def _nothing_stored(registry: Registry) -> None:
    assert registry.list_models() == []
    assert [p for p in (registry.settings.home / "artifacts").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    "model_file",
    ["../../etc/passwd", "../outside/secret.txt", "/etc/passwd", "sub/../../x", "a\\..\\..\\b"],
)
def test_a_model_file_outside_the_package_is_refused(
    tmp_path: Path, registry: Registry, model: LogisticRegression, model_file: str
) -> None:
    """``model_file`` that is absolute or climbs out with ``..`` is refused at registration."""
    package = _package(tmp_path, model)
    _set_options(package, model_file=model_file)
    with pytest.raises(UnreadableModel, match="model_file .* leads outside the package"):
        registry.register("churn", package)
    _nothing_stored(registry)


def test_a_model_file_that_is_not_a_package_file_is_refused(
    tmp_path: Path, registry: Registry, model: LogisticRegression
) -> None:
    """``model_file`` must be one of the files the manifest lists."""
    package = _package(tmp_path, model)
    _set_options(package, model_file="other.skops")
    with pytest.raises(UnreadableModel, match="not a file of the package"):
        registry.register("churn", package)
    _nothing_stored(registry)


def test_a_symlinked_model_file_leading_outside_is_refused(
    tmp_path: Path, registry: Registry, model: LogisticRegression, secret: Path
) -> None:
    """A model file that is a symlink to a file outside the package is refused, even when the
    manifest carries the target's correct sha256; the target is never copied into the store."""
    package = _package(tmp_path, model)
    (package / "model.skops").unlink()
    os.symlink(secret, package / "model.skops")
    manifest = read_manifest(package)
    files = {**manifest.files, "model.skops": hashlib.sha256(secret.read_bytes()).hexdigest()}
    write_manifest(package, replace(manifest, files=files))
    with pytest.raises(UnreadableModel, match="model.skops is a symlink leading outside"):
        registry.register("churn", package)
    _nothing_stored(registry)


def test_a_symlinked_directory_leading_outside_is_refused(
    tmp_path: Path, registry: Registry, model: LogisticRegression, secret: Path
) -> None:
    """A directory symlink inside the package that leads elsewhere is refused."""
    package = _package(tmp_path, model)
    os.symlink(secret.parent, package / "extra")
    with pytest.raises(UnreadableModel, match="extra is a symlink leading outside"):
        registry.register("churn", package)
    _nothing_stored(registry)


def test_an_mlflow_model_file_outside_its_folder_is_refused(
    tmp_path: Path, registry: Registry, secret: Path
) -> None:
    """An MLflow ``MLmodel`` naming a file outside its folder is refused too."""
    folder = tmp_path / "mlflow-model"
    folder.mkdir()
    (folder / "MLmodel").write_text(
        "flavors:\n  sklearn:\n    pickled_model: ../outside/secret.txt\n"
        "    serialization_format: cloudpickle\n"
    )
    with pytest.raises(UnreadableModel, match="is outside it"):
        registry.register("churn", folder)
    _nothing_stored(registry)


def test_a_symlink_inside_the_package_is_fine(
    tmp_path: Path, registry: Registry, model: LogisticRegression
) -> None:
    """A symlink that stays inside the package is not a reason to refuse it."""
    package = _package(tmp_path, model)
    (package / "notes").mkdir()
    (package / "notes" / "README").write_text("hello")
    os.symlink(package / "notes" / "README", package / "README")
    manifest = read_manifest(package)
    digest = hashlib.sha256(b"hello").hexdigest()
    write_manifest(
        package,
        replace(manifest, files={**manifest.files, "README": digest, "notes/README": digest}),
    )
    assert registry.register("churn", package).version == 1
