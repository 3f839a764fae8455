"""The one small protocol every flavor implements, and the helpers flavors share.

A flavor saves a model object into a package directory (returning its manifest options),
adopts a model file someone else wrote (an MLflow export, a single file), and loads a package
back into a :class:`Predictor`. Flavors import their library lazily, inside these methods.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any, Literal, NoReturn, Protocol

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import (
    Detail,
    IntegrityError,
    InvalidInput,
    UnreadableModel,
    missing_dependency,
)
from watchkeeper.models.manifest import Manifest

Array = npt.NDArray[Any]
InputKind = Literal["array", "frame"]
Options = dict[str, Any]
TrustedTypes = Sequence[str] | None


class Predictor(Protocol):
    """A loaded model, as the flavor exposes it to :class:`~watchkeeper.models.LoadedModel`.

    ``input_kind`` says what ``predict`` takes: ``"array"`` (a 2-D ndarray with columns in
    signature order) or ``"frame"`` (a DataFrame with the signature's columns).
    ``feature_names`` are the input names the model itself knows, used when the package has no
    signature.
    """

    @property
    def input_kind(self) -> InputKind: ...

    @property
    def feature_names(self) -> list[str] | None: ...

    @property
    def has_proba(self) -> bool: ...

    @property
    def classes(self) -> Array | None: ...

    def predict(self, x: Any) -> Array: ...

    def predict_proba(self, x: Any) -> Array: ...


@dataclass(frozen=True)
class PackageFiles:
    """Read access to a package's files; with ``check``, bytes must match the manifest sha256.

    Flavors load models from the bytes returned here, so what is deserialized is exactly what
    was hashed (no window between verification and unpickling).
    """

    directory: Path
    manifest: Manifest
    check: bool = True

    @property
    def options(self) -> dict[str, Any]:
        return self.manifest.options

    def read_bytes(self, name: str) -> bytes:
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise UnreadableModel(f"{self.directory}: file name {name!r} leaves the package")
        path = self.directory / relative
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise IntegrityError(
                f"{path} is missing", details=[Detail(field=name, problem="missing")]
            ) from exc
        if self.check:
            expected = self.manifest.files.get(name)
            actual = hashlib.sha256(data).hexdigest()
            if expected != actual:
                problem = f"sha256 differs (expected {expected}, found {actual})"
                raise IntegrityError(
                    f"package {self.directory} failed verification: {name}: {problem}",
                    details=[Detail(field=name, problem=problem)],
                )
        return data

    def model_file(self) -> tuple[str, bytes]:
        name = str(self.options["model_file"])
        return name, self.read_bytes(name)


@dataclass(frozen=True, kw_only=True)
class Adoption:
    """A model file someone else wrote, to be adopted into the package ``directory``:
    ``hints`` are what its source says about it (an MLflow export's model class, serialization),
    ``trusted_types`` the types a skops file may hold."""

    file: Path
    directory: Path
    hints: Mapping[str, Any]
    trusted_types: TrustedTypes = None

    def copy_in(self) -> Path:
        """Copy the file into the directory under its own name; returns the copy's path."""
        copy = self.directory / self.file.name
        shutil.copyfile(self.file, copy)
        return copy


class Flavor(Protocol):
    """How one kind of model is saved, adopted from a file, and loaded."""

    @property
    def name(self) -> str: ...

    def libraries(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        """Distributions whose versions the manifest records (python is always added)."""
        ...

    def matches(self, obj: object) -> bool:
        """Whether ``obj`` is a model of this flavor (never imports the flavor's library)."""
        ...

    def matches_path(self, path: Path) -> bool:
        """Whether the file at ``path`` looks like this flavor's native format."""
        ...

    def save(self, obj: Any, directory: Path, *, serialization: str | None) -> Options: ...

    def adopt(self, source: Adoption) -> Options:
        """Copy (or convert) an existing model file into the package directory; return options."""
        ...

    def load(self, files: PackageFiles, *, trusted_types: TrustedTypes) -> Predictor: ...


def require(module: str, extra: str) -> ModuleType:
    """Import an optional library or raise ``MissingDependency`` naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_dependency(module, extra) from exc


def comes_from(obj: object, *top_level: str) -> bool:
    """Whether ``obj``'s type, or a base class, is defined in one of these top-level packages."""
    return any(klass.__module__.split(".", 1)[0] in top_level for klass in type(obj).__mro__)


def qualified_name(obj: object) -> str:
    klass = type(obj)
    return f"{klass.__module__}.{klass.__qualname__}"


def head(path: Path, size: int = 64) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def unreadable(file: Path | str, expected: str, exc: BaseException) -> NoReturn:
    """Raise ``UnreadableModel`` naming the file and what it was expected to be."""
    raise UnreadableModel(f"cannot read {file} as {expected}: {type(exc).__name__}: {exc}") from exc


def jsonable_classes(classes: Any) -> list[Any] | None:
    """Class labels as a JSON list, or None when there are none or they are not plain values."""
    if classes is None:
        return None
    values = np.asarray(classes).tolist()
    if isinstance(values, list) and all(isinstance(v, (str, int, float, bool)) for v in values):
        return values
    return None


def proba_from_positive(p: Array) -> Array:
    """Two columns ``[1 - p, p]`` from the positive-class probability, as scikit-learn returns."""
    return np.vstack((1.0 - p, p)).T


def check_serialization(flavor: str, serialization: str | None, allowed: tuple[str, ...]) -> str:
    choice = serialization or allowed[0]
    if choice not in allowed:
        raise InvalidInput(
            f"the {flavor} flavor saves with serialization {', '.join(map(repr, allowed))}, "
            f"not {choice!r}"
        )
    return choice


def as_1d(out: Any) -> Array:
    """Predictions as a numpy array; a single output column is flattened to 1-D."""
    array = np.asarray(out)
    if array.ndim == 2 and array.shape[1] == 1:
        return array.ravel()
    return array
