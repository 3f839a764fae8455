"""scikit-learn estimators and pipelines, saved with skops (default), joblib or pickle.

skops files load without unpickling and without running code: a file may hold only skops'
default trusted types and the named types of :mod:`watchkeeper.models.flavors._skops`; any other
type must be named in ``trusted_types`` (see that module). joblib and pickle files run code by
nature: they are loaded only once their sha256 matches the manifest.
"""

from __future__ import annotations

import io
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from watchkeeper.errors import InvalidInput, UnreadableModel, WatchkeeperError
from watchkeeper.models.flavors import _skops
from watchkeeper.models.flavors._sklearn_inputs import model_inputs
from watchkeeper.models.flavors.base import (
    Adoption,
    Array,
    InputKind,
    Options,
    PackageFiles,
    TrustedTypes,
    check_serialization,
    comes_from,
    head,
    jsonable_classes,
    qualified_name,
    unreadable,
)
from watchkeeper.models.inputs import MODEL_INPUTS

logger = logging.getLogger("watchkeeper.models")

SERIALIZATIONS = ("skops", "joblib", "pickle", "cloudpickle")
_FILE_NAMES = {"skops": "model.skops", "joblib": "model.joblib", "pickle": "model.pkl"}
_FILE_NAMES["cloudpickle"] = "model.pkl"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class SklearnPredictor:
    """Calls the estimator; gives it a DataFrame only when it was fitted on one."""

    model: Any
    input_kind: InputKind
    feature_names: list[str] | None
    has_proba: bool
    classes: Array | None
    predicts_by_argmax: bool = False

    @classmethod
    def wrap(cls, model: Any) -> SklearnPredictor:
        names = getattr(model, "feature_names_in_", None)
        classes = getattr(model, "classes_", None)
        return cls(
            model=model,
            input_kind="frame" if names is not None else "array",
            feature_names=[str(n) for n in names] if names is not None else None,
            has_proba=hasattr(model, "predict_proba"),
            classes=np.asarray(classes) if classes is not None else None,
            predicts_by_argmax=_predicts_by_argmax(model),
        )

    def predict(self, x: Any) -> Array:
        return np.asarray(self.model.predict(x))

    def predict_proba(self, x: Any) -> Array:
        return np.asarray(self.model.predict_proba(x))


def _predicts_by_argmax(model: Any) -> bool:
    """Whether ``model.predict`` is, by its own code, ``classes_[argmax(predict_proba)]``: a
    single-output forest classifier, or a pipeline ending in one. Then one probability pass
    gives both (a forest's ``predict`` walks every tree again otherwise)."""
    from sklearn.ensemble._forest import ForestClassifier
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        return _predicts_by_argmax(model.steps[-1][1])
    classes = getattr(model, "classes_", None)
    return (
        isinstance(model, ForestClassifier)
        and type(model).predict is ForestClassifier.predict
        and getattr(model, "n_outputs_", 0) == 1
        and classes is not None
        and np.ndim(classes) == 1
    )


def describe(model: Any) -> Options:
    names = getattr(model, "feature_names_in_", None)
    return {
        "estimator": qualified_name(model),
        "has_proba": hasattr(model, "predict_proba"),
        "classes": jsonable_classes(getattr(model, "classes_", None)),
        "feature_names": [str(n) for n in names] if names is not None else None,
        MODEL_INPUTS: model_inputs(model),
    }


def dump(model: Any, path: Path, serialization: str) -> None:
    if serialization == "skops":
        import skops.io

        skops.io.dump(model, path)
    elif serialization == "joblib":
        import joblib

        joblib.dump(model, path)
    elif serialization == "cloudpickle":
        import cloudpickle

        path.write_bytes(cloudpickle.dumps(model))
    else:
        path.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))


def loads(data: bytes, serialization: str, trusted_types: TrustedTypes, source: str) -> Any:
    """Deserialize model bytes; skops files go through the trust check first."""
    if serialization == "skops":
        return _skops.loads(data, trusted_types, source)
    if serialization == "joblib":
        import joblib

        return joblib.load(io.BytesIO(data))
    if serialization in ("pickle", "cloudpickle"):
        return pickle.loads(data)  # callers check the sha256 first
    raise UnreadableModel(f"{source}: unknown serialization {serialization!r}")


def warn_untrusted(path: Path) -> None:
    """Tell the user at save time which types loading will need them to trust."""
    refused = _skops.untrusted_types(path.read_bytes(), str(path))
    if refused:
        logger.warning(
            "%s holds types that must be trusted explicitly at load time: "
            "load_model(..., trusted_types=%r)",
            path,
            refused,
        )


class SklearnFlavor:
    name = "sklearn"

    def libraries(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        serializer = {"skops": "skops", "joblib": "joblib", "cloudpickle": "cloudpickle"}
        extra = serializer.get(str(options.get("serialization")))
        return ("numpy", "scipy", "scikit-learn", *((extra,) if extra else ()))

    def matches(self, obj: object) -> bool:
        if not comes_from(obj, "sklearn"):
            return False
        from sklearn.base import BaseEstimator

        return isinstance(obj, BaseEstimator)

    def matches_path(self, path: Path) -> bool:
        if path.suffix.lower() in (".skops", *PICKLE_SUFFIXES):
            return True
        start = head(path, 2)
        return start.startswith(_ZIP_MAGIC[:2]) or start[:1] == b"\x80"

    def save(self, obj: Any, directory: Path, *, serialization: str | None) -> Options:
        choice = check_serialization(self.name, serialization, SERIALIZATIONS)
        path = directory / _FILE_NAMES[choice]
        try:
            dump(obj, path, choice)
        except WatchkeeperError:
            raise
        except Exception as exc:  # translated at this boundary
            hint = "; try serialization='joblib'" if choice == "skops" else ""
            raise InvalidInput(
                f"cannot save this {type(obj).__name__} with {choice}: {exc}{hint}"
            ) from exc
        if choice == "skops":
            warn_untrusted(path)
        return {"model_file": path.name, "serialization": choice, **describe(obj)}

    def adopt(self, source: Adoption) -> Options:
        serialization = str(source.hints.get("serialization") or file_serialization(source.file))
        if serialization not in SERIALIZATIONS:
            raise UnreadableModel(
                f"{source.file}: unknown scikit-learn serialization {serialization!r}"
            )
        copy = source.copy_in()
        model = read_model(copy, serialization, source.trusted_types)
        return {"model_file": copy.name, "serialization": serialization, **describe(model)}

    def load(self, files: PackageFiles, *, trusted_types: TrustedTypes) -> SklearnPredictor:
        name, data = files.model_file()
        serialization = str(files.options.get("serialization", "skops"))
        source = str(files.directory / name)
        try:
            model = loads(data, serialization, trusted_types, source)
        except WatchkeeperError:
            raise
        except Exception as exc:  # translated at this boundary
            unreadable(source, f"a {serialization} scikit-learn model", exc)
        return SklearnPredictor.wrap(model)


def file_serialization(path: Path) -> str:
    """skops, joblib or pickle, from the suffix, else from the first bytes."""
    suffix = path.suffix.lower()
    if suffix == ".skops" or head(path, 4) == _ZIP_MAGIC:
        return "skops"
    return "joblib" if suffix == ".joblib" else "pickle"


def read_model(path: Path, serialization: str, trusted_types: TrustedTypes) -> Any:
    """Read a model file from the user's disk (import time, before any manifest exists)."""
    # joblib reads plain pickles as well as its own files
    reader = "joblib" if serialization in ("joblib", "pickle") else serialization
    try:
        return loads(path.read_bytes(), reader, trusted_types, str(path))
    except WatchkeeperError:
        raise
    except Exception as exc:  # translated at this boundary
        unreadable(path, f"a {serialization} model file", exc)
