"""XGBoost boosters and scikit-learn wrappers, stored in XGBoost's native UBJSON or JSON format.

Wrappers (``XGBClassifier``…) are loaded back as the same wrapper class, so predictions are
exactly the wrapper's. Raw boosters with ``binary:logistic`` or ``multi:softprob`` objectives
return class labels ``0 .. k-1`` from ``predict`` and probabilities from ``predict_proba``;
other objectives return the booster's output unchanged.
"""

from __future__ import annotations

import json
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
    check_serialization,
    comes_from,
    head,
    jsonable_classes,
    proba_from_positive,
    require,
    unreadable,
)
from watchkeeper.models.inputs import MODEL_INPUTS, carried_option
from watchkeeper.models.signature import ColumnType

WRAPPERS = ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor", "XGBRanker")
PROBABILISTIC = ("binary:logistic", "multi:softprob")
_BY_ESTIMATOR_TYPE = {"classifier": "XGBClassifier", "regressor": "XGBRegressor"}
_SUFFIXES = (".ubj", ".xgb", ".bst")
_FEATURE_TYPES: dict[str, ColumnType] = {"int": "int", "i": "int", "c": "string"}


def import_xgboost() -> Any:
    return require("xgboost", "xgboost")


@dataclass(frozen=True)
class XGBoostPredictor:
    """Either a scikit-learn wrapper (``wrapper=True``) or a raw ``xgboost.Booster``."""

    model: Any
    wrapper: bool
    objective: str
    classes: Array | None
    input_kind: InputKind
    feature_names: list[str] | None = None

    @property
    def has_proba(self) -> bool:
        if self.wrapper:
            return hasattr(self.model, "predict_proba")
        return self.objective in PROBABILISTIC

    def predict(self, x: Any) -> Array:
        if self.wrapper:
            return np.asarray(self.model.predict(x))
        raw = np.asarray(self.model.inplace_predict(x))
        if self.objective not in PROBABILISTIC:
            return raw
        return np.asarray(np.argmax(self._proba(raw), axis=1))

    def predict_proba(self, x: Any) -> Array:
        if self.wrapper:
            return np.asarray(self.model.predict_proba(x))
        return self._proba(np.asarray(self.model.inplace_predict(x)))

    @staticmethod
    def _proba(raw: Array) -> Array:
        return proba_from_positive(raw) if raw.ndim == 1 else raw


def objective_of(booster: Any) -> str:
    return str(json.loads(booster.save_config())["learner"]["objective"]["name"])


def wrapper_name(obj: Any) -> str | None:
    """The XGBoost wrapper class ``obj`` is (or derives from), or None for a raw booster."""
    for klass in type(obj).__mro__:
        if klass.__module__.startswith("xgboost") and klass.__name__ in WRAPPERS:
            return klass.__name__
    return None


def describe(model: Any, model_class: str) -> Options:
    booster = model if model_class == "Booster" else model.get_booster()
    objective = objective_of(booster)
    if model_class == "Booster":
        has_proba = objective in PROBABILISTIC
        count = int(
            json.loads(booster.save_config())["learner"]["learner_model_param"].get(
                "num_class", "0"
            )
        )
        classes: list[Any] | None = list(range(max(count, 2))) if has_proba else None
    else:
        has_proba = hasattr(model, "predict_proba")
        classes = jsonable_classes(getattr(model, "classes_", None))
    return {
        "model_class": model_class,
        "objective": objective,
        "has_proba": has_proba,
        "classes": classes,
        MODEL_INPUTS: booster_inputs(booster),
    }


def booster_inputs(booster: Any) -> dict[str, Any] | None:
    """The booster's feature names (else ``num_features`` unnamed ones) and types: XGBoost's
    ``int``/``i`` are ints, ``c`` (categorical) strings, the rest floats; all nullable, as
    XGBoost treats a missing value natively."""
    names = booster.feature_names
    count = len(names) if names else int(booster.num_features())
    kinds = list(booster.feature_types or ["float"] * count)
    types: list[ColumnType] = [_FEATURE_TYPES.get(str(k), "float") for k in kinds]
    return carried_option(list(names) if names else None, types, nullable=True)


class XGBoostFlavor:
    name = "xgboost"

    def libraries(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        return ("numpy", "xgboost")

    def matches(self, obj: object) -> bool:
        if not comes_from(obj, "xgboost"):
            return False
        xgb = import_xgboost()
        return isinstance(obj, (xgb.Booster, xgb.XGBModel))

    def matches_path(self, path: Path) -> bool:
        start = head(path, 256)
        if path.suffix.lower() in _SUFFIXES:
            return True
        return start.startswith(b"{") and b"learner" in start

    def save(self, obj: Any, directory: Path, *, serialization: str | None) -> Options:
        choice = check_serialization(self.name, serialization, ("ubj", "json"))
        xgb = import_xgboost()
        if isinstance(obj, xgb.XGBModel):
            model_class = wrapper_name(obj)
            if model_class is None:
                raise InvalidInput(f"unsupported XGBoost model class {type(obj).__name__}")
        elif isinstance(obj, xgb.Booster):
            model_class = "Booster"
        else:
            raise InvalidInput(f"a {type(obj).__name__} is not an XGBoost model")
        path = directory / f"model.{choice}"
        try:
            obj.save_model(str(path))
        except xgb.core.XGBoostError as exc:
            raise InvalidInput(f"cannot save this {type(obj).__name__}: {exc}") from exc
        return {"model_file": path.name, "format": choice, **describe(obj, model_class)}

    def adopt(self, source: Adoption) -> Options:
        hinted = str(source.hints.get("model_class") or "").rsplit(".", 1)[-1]
        if hinted and hinted not in (*WRAPPERS, "Booster"):
            raise UnreadableModel(f"{source.file}: unsupported XGBoost model class {hinted!r}")
        copy = source.copy_in()
        data = copy.read_bytes()
        model_class = hinted or self._class_from_attributes(data, str(source.file))
        model = self._read(data, model_class, str(source.file))
        file_format = "json" if data.lstrip()[:2] == b'{"' else "ubj"
        return {"model_file": copy.name, "format": file_format, **describe(model, model_class)}

    def load(self, files: PackageFiles, *, trusted_types: TrustedTypes) -> XGBoostPredictor:
        name, data = files.model_file()
        model_class = str(files.options.get("model_class", "Booster"))
        model = self._read(data, model_class, str(files.directory / name))
        booster = model if model_class == "Booster" else model.get_booster()
        classes = files.options.get("classes")
        if model_class != "Booster" and hasattr(model, "classes_"):
            classes = model.classes_
        return XGBoostPredictor(
            model=model,
            wrapper=model_class != "Booster",
            objective=str(files.options.get("objective") or objective_of(booster)),
            classes=np.asarray(classes) if classes is not None else None,
            input_kind="frame" if "c" in (booster.feature_types or ()) else "array",
        )

    def _read(self, data: bytes, model_class: str, source: str) -> Any:
        xgb = import_xgboost()
        if model_class not in (*WRAPPERS, "Booster"):
            raise UnreadableModel(f"{source}: unsupported XGBoost model class {model_class!r}")
        model = getattr(xgb, model_class)()
        try:
            model.load_model(bytearray(data))
        except WatchkeeperError:
            raise
        except Exception as exc:  # translated at this boundary
            unreadable(source, "an XGBoost model (UBJSON or JSON)", exc)
        return model

    def _class_from_attributes(self, data: bytes, source: str) -> str:
        """Wrappers record their estimator type in the booster's ``scikit_learn`` attribute."""
        booster = self._read(data, "Booster", source)
        recorded = booster.attr("scikit_learn")
        if not recorded:
            return "Booster"
        estimator_type = json.loads(recorded).get("_estimator_type")
        return _BY_ESTIMATOR_TYPE.get(str(estimator_type), "Booster")
