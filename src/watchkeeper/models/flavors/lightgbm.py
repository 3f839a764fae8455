"""LightGBM boosters and scikit-learn wrappers, stored in LightGBM's native text format.

Models are always loaded as a ``lightgbm.Booster``. For classification objectives
(``binary``, ``multiclass``, ``multiclassova``) ``predict`` returns class labels and
``predict_proba`` one column per class (two for binary, like scikit-learn); raw boosters get
the labels ``0 .. k-1``. Other objectives return the booster's output unchanged.
"""

from __future__ import annotations

import pickle
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
    qualified_name,
    require,
    unreadable,
)
from watchkeeper.models.inputs import MODEL_INPUTS, carried_option
from watchkeeper.models.signature import ColumnType

CLASSIFICATION = ("binary", "multiclass", "multiclassova")
MODEL_FILE = "model.txt"
_BOOSTER_CLASSES = ("lightgbm.basic.Booster", "lightgbm.Booster")


def import_lightgbm() -> Any:
    return require("lightgbm", "lightgbm")


@dataclass(frozen=True)
class LightGBMPredictor:
    booster: Any
    classes: Array | None
    input_kind: InputKind
    feature_names: list[str] | None = None

    @property
    def has_proba(self) -> bool:
        return self.classes is not None

    def predict(self, x: Any) -> Array:
        raw = np.asarray(self.booster.predict(x))
        if self.classes is None:
            return raw
        return np.asarray(self.classes[np.argmax(self._proba(raw), axis=1)])

    def predict_proba(self, x: Any) -> Array:
        return self._proba(np.asarray(self.booster.predict(x)))

    @staticmethod
    def _proba(raw: Array) -> Array:
        return proba_from_positive(raw) if raw.ndim == 1 else raw


def read_header(text: str) -> dict[str, str]:
    """The ``key=value`` lines at the top of a LightGBM text model."""
    header: dict[str, str] = {}
    for line in text.splitlines()[:64]:
        if not line.strip():
            break
        key, sep, value = line.partition("=")
        if sep:
            header[key.strip()] = value.strip()
    return header


def describe(text: str, classes: list[Any] | None, model_class: str) -> Options:
    header = read_header(text)
    objective = header.get("objective", "").split(" ", 1)[0]
    if classes is None and objective in CLASSIFICATION:
        count = int(header.get("num_class", "1"))
        classes = list(range(max(count, 2)))
    if objective not in CLASSIFICATION:
        classes = None
    return {
        "model_class": model_class,
        "objective": objective,
        "has_proba": classes is not None,
        "classes": classes,
        MODEL_INPUTS: booster_inputs(text, header),
    }


def booster_inputs(text: str, header: Mapping[str, str]) -> dict[str, Any] | None:
    """Feature names from the model text (LightGBM's own ``Column_<i>`` ones mean unnamed).
    Numeric features are floats; categorical ones (``feature_infos`` listing values) strings
    when the model was fitted on pandas categories, else ints. All nullable (LightGBM treats
    a missing value natively). LightGBM stored names with spaces as underscores."""
    names = header.get("feature_names", "").split(" ")
    infos = header.get("feature_infos", "").split(" ")
    if not names or not names[0] or len(infos) != len(names):
        return None
    pandas = any(
        line.startswith("pandas_categorical:") and line.strip() != "pandas_categorical:null"
        for line in text[-65536:].splitlines()
    )
    types: list[ColumnType] = [
        "float" if info.startswith("[") or info == "none" else "string" if pandas else "int"
        for info in infos
    ]
    unnamed = names == [f"Column_{i}" for i in range(len(names))]
    return carried_option(
        None if unnamed else names, types, nullable=True, spaces_as_underscores=True
    )


class LightGBMFlavor:
    name = "lightgbm"

    def libraries(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        return ("numpy", "lightgbm")

    def matches(self, obj: object) -> bool:
        if not comes_from(obj, "lightgbm"):
            return False
        lgb = import_lightgbm()
        return isinstance(obj, (lgb.Booster, lgb.LGBMModel))

    def matches_path(self, path: Path) -> bool:
        return head(path, 5) in (b"tree\n", b"tree\r")

    def save(self, obj: Any, directory: Path, *, serialization: str | None) -> Options:
        check_serialization(self.name, serialization, ("text",))
        lgb = import_lightgbm()
        classes: list[Any] | None = None
        if isinstance(obj, lgb.LGBMModel):
            if not obj.__sklearn_is_fitted__():
                raise InvalidInput(f"this {type(obj).__name__} is not fitted")
            booster = obj.booster_
            if isinstance(obj, lgb.LGBMClassifier):
                classes = jsonable_classes(obj.classes_)
                if classes is None:
                    raise InvalidInput("LightGBM class labels must be strings or numbers")
        elif isinstance(obj, lgb.Booster):
            booster = obj
        else:
            raise InvalidInput(f"a {type(obj).__name__} is not a LightGBM model")
        path = directory / MODEL_FILE
        booster.save_model(str(path))
        text = path.read_text(encoding="utf-8")
        return {"model_file": MODEL_FILE, **describe(text, classes, qualified_name(obj))}

    def adopt(self, source: Adoption) -> Options:
        model_class = str(source.hints.get("model_class") or "lightgbm.basic.Booster")
        if model_class not in _BOOSTER_CLASSES:
            return self.save(_unpickle_wrapper(source.file), source.directory, serialization=None)
        import_lightgbm()
        if not self.matches_path(source.file):
            raise UnreadableModel(
                f"{source.file} is not a LightGBM text model (it should start with 'tree')"
            )
        copy = source.copy_in()
        text = copy.read_text(encoding="utf-8")
        self._booster(text, str(source.file))
        return {"model_file": copy.name, **describe(text, None, model_class)}

    def load(self, files: PackageFiles, *, trusted_types: TrustedTypes) -> LightGBMPredictor:
        name, data = files.model_file()
        booster = self._booster(data.decode("utf-8"), str(files.directory / name))
        classes = files.options.get("classes")
        return LightGBMPredictor(
            booster=booster,
            classes=np.asarray(classes) if classes is not None else None,
            input_kind="frame" if booster.pandas_categorical else "array",
        )

    @staticmethod
    def _booster(text: str, source: str) -> Any:
        lgb = import_lightgbm()
        try:
            return lgb.Booster(model_str=text)
        except Exception as exc:  # translated at this boundary
            unreadable(source, "a LightGBM text model", exc)


def _unpickle_wrapper(file: Path) -> Any:
    """MLflow pickles LightGBM's scikit-learn wrappers; read one to re-save it natively."""
    lgb = import_lightgbm()
    try:
        model = pickle.loads(file.read_bytes())
    except WatchkeeperError:
        raise
    except Exception as exc:  # translated at this boundary
        unreadable(file, "a pickled LightGBM model", exc)
    if not isinstance(model, lgb.LGBMModel):
        raise UnreadableModel(f"{file} holds a {type(model).__name__}, not a LightGBM model")
    return model
