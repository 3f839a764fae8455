"""The flavors a package can have, and how one is picked for an object or a file."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from watchkeeper.errors import InvalidInput, UnreadableModel
from watchkeeper.models.flavors.base import Flavor, PackageFiles, Predictor
from watchkeeper.models.flavors.lightgbm import LightGBMFlavor
from watchkeeper.models.flavors.onnx import OnnxFlavor
from watchkeeper.models.flavors.python import PythonFlavor
from watchkeeper.models.flavors.sklearn import SklearnFlavor
from watchkeeper.models.flavors.xgboost import XGBoostFlavor

# Detection order matters: the boosting wrappers are scikit-learn estimators too, and almost
# anything qualifies as a python model.
_REGISTRY: dict[str, Flavor] = {
    flavor.name: flavor
    for flavor in (
        OnnxFlavor(),
        LightGBMFlavor(),
        XGBoostFlavor(),
        SklearnFlavor(),
        PythonFlavor(),
    )
}
FLAVORS: tuple[str, ...] = tuple(_REGISTRY)

__all__ = ["FLAVORS", "Flavor", "PackageFiles", "Predictor", "detect", "detect_file", "get"]


def get(name: str) -> Flavor:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidInput(
            f"unknown flavor {name!r}; expected one of {', '.join(FLAVORS)} or 'auto'"
        ) from None


def detect(obj: object) -> Flavor:
    """The first flavor (in ``FLAVORS`` order) that recognizes ``obj``."""
    for flavor in _REGISTRY.values():
        if flavor.matches(obj):
            return flavor
    if isinstance(obj, (str, PathLike)):
        raise InvalidInput(f"{obj} is a path: to import a model file use package_from_path")
    raise InvalidInput(
        f"cannot tell which flavor a {type(obj).__name__} is; pass flavor= one of "
        f"{', '.join(FLAVORS)}"
    )


def detect_file(path: Path) -> Flavor:
    """The first flavor whose native format the file at ``path`` looks like."""
    for flavor in _REGISTRY.values():
        if flavor.matches_path(path):
            return flavor
    raise UnreadableModel(
        f"cannot tell what kind of model file {path} is; expected a scikit-learn file "
        "(.skops, .joblib, .pkl), an ONNX graph (.onnx), an XGBoost model (.ubj, .json) "
        "or a LightGBM text model (.txt, .lgb)"
    )
