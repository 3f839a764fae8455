"""Plain Python models: any object with ``predict`` (and maybe ``predict_proba``), or a callable
``f(DataFrame) -> array``.

Saved either by value with cloudpickle, or by reference as an import path
``"package.module:attribute"`` (nothing but the path is stored; the code must be importable
wherever the model is loaded). A class found at the import path is instantiated without
arguments. Both always receive a DataFrame with the signature's columns.
"""

from __future__ import annotations

import importlib
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from watchkeeper.errors import InvalidInput, UnreadableModel, WatchkeeperError
from watchkeeper.models.flavors.base import (
    Adoption,
    Array,
    InputKind,
    Options,
    PackageFiles,
    TrustedTypes,
    as_1d,
    check_serialization,
    jsonable_classes,
    qualified_name,
    unreadable,
)

MODEL_FILE = "model.pkl"
_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")  # fullmatch: "$" lets "\n" in


@dataclass(frozen=True)
class PythonPredictor:
    model: Any
    input_kind: InputKind = "frame"
    feature_names: list[str] | None = None

    @property
    def has_proba(self) -> bool:
        return hasattr(self.model, "predict_proba")

    @property
    def classes(self) -> Array | None:
        classes = getattr(self.model, "classes_", None)
        return np.asarray(classes) if classes is not None else None

    def predict(self, x: Any) -> Array:
        if hasattr(self.model, "predict"):
            return as_1d(self.model.predict(x))
        return as_1d(self.model(x))

    def predict_proba(self, x: Any) -> Array:
        return np.asarray(self.model.predict_proba(x))


def describe(model: Any) -> Options:
    return {
        "kind": "object" if hasattr(model, "predict") else "callable",
        "object": qualified_name(model),
        "has_proba": hasattr(model, "predict_proba"),
        "classes": jsonable_classes(getattr(model, "classes_", None)),
    }


def resolve(import_path: str) -> Any:
    """Import ``"package.module:attribute"``; instantiate it when it is a class."""
    if not _IMPORT_PATH.fullmatch(import_path):
        raise InvalidInput(f"import path {import_path!r} is not of the form 'package.module:attr'")
    module_name, _, attribute = import_path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise UnreadableModel(f"cannot import {import_path!r}: {exc}") from exc
    if isinstance(target, type):
        try:
            target = target()
        except TypeError as exc:
            raise UnreadableModel(
                f"{import_path!r} is a class that cannot be built without arguments: {exc}"
            ) from exc
    check_model(target)
    return target


def check_model(model: Any) -> None:
    if not (hasattr(model, "predict") or callable(model)):
        raise InvalidInput(f"a {type(model).__name__} has no predict method and is not callable")


class PythonFlavor:
    name = "python"

    def libraries(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        return ("numpy", "pandas", "cloudpickle")

    def matches(self, obj: object) -> bool:
        return hasattr(obj, "predict") or callable(obj)

    def matches_path(self, path: Path) -> bool:
        return False  # a pickle is unpickled first; its object decides the flavor

    def save(self, obj: Any, directory: Path, *, serialization: str | None) -> Options:
        check_serialization(self.name, serialization, ("cloudpickle",))
        check_model(obj)
        import cloudpickle

        try:
            data = cloudpickle.dumps(obj)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"cannot pickle this {type(obj).__name__}: {exc}") from exc
        (directory / MODEL_FILE).write_bytes(data)
        return {"model_file": MODEL_FILE, "serialization": "cloudpickle", **describe(obj)}

    def save_import_path(self, import_path: str, directory: Path) -> Options:
        model = resolve(import_path)
        return {"import_path": import_path, **describe(model)}

    def adopt(self, source: Adoption) -> Options:
        try:
            model = pickle.loads(source.file.read_bytes())
        except WatchkeeperError:
            raise
        except Exception as exc:  # translated at this boundary
            unreadable(source.file, "a pickled Python model", exc)
        return self.save(model, source.directory, serialization=None)

    def load(self, files: PackageFiles, *, trusted_types: TrustedTypes) -> PythonPredictor:
        import_path = files.options.get("import_path")
        if import_path is not None:
            return PythonPredictor(resolve(str(import_path)))
        name, data = files.model_file()
        try:
            model = pickle.loads(data)  # the bytes passed the sha256 check
        except WatchkeeperError:
            raise
        except Exception as exc:  # translated at this boundary
            unreadable(files.directory / name, "a cloudpickled Python model", exc)
        return PythonPredictor(model)
