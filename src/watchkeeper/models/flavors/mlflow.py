"""Reading MLflow model directories (an ``MLmodel`` YAML file plus the model file), without MLflow.

This is an importer, not a runtime flavor: it picks the native flavor MLflow recorded
(``sklearn``, ``lightgbm``, ``xgboost`` or ``onnx``; ``python_function`` only when its loader is
one of those), finds the model file, and converts MLflow's column signature. The package built
from it uses our own flavor of the same name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from watchkeeper.errors import UnreadableModel
from watchkeeper.models.inputs import Carried
from watchkeeper.models.signature import ColumnSpec, ColumnType, Signature

MLMODEL = "MLmodel"
NATIVE = ("sklearn", "lightgbm", "xgboost", "onnx")
_LOADERS = {f"mlflow.{name}": name for name in NATIVE}
_FILE_KEYS = {"sklearn": "pickled_model", "lightgbm": "data", "xgboost": "data", "onnx": "data"}
_COLUMN_TYPES: dict[str, ColumnType] = {
    "double": "float",
    "float": "float",
    "long": "int",
    "integer": "int",
    "boolean": "bool",
    "string": "string",
    "datetime": "datetime",
}
_INFO_KEYS = ("run_id", "model_uuid", "mlflow_version", "utc_time_created", "artifact_path")


@dataclass(frozen=True, kw_only=True)
class MlflowModel:
    """What an MLflow directory holds, in our terms."""

    flavor: str
    model_file: Path
    hints: dict[str, Any] = field(default_factory=dict)
    signature: Signature | None = None
    info: dict[str, str] = field(default_factory=dict)
    tensor: bool = False  # the signature is one 2-D tensor: its columns are unnamed (f0 ..)

    @property
    def carried(self) -> Carried | None:
        """MLflow's signature, as what the model carries."""
        return Carried(self.signature, named=not self.tensor) if self.signature else None


def is_mlflow_dir(path: Path) -> bool:
    return (path / MLMODEL).is_file()


def read_mlflow_model(directory: Path, *, with_signature: bool = True) -> MlflowModel:
    """Parse ``directory/MLmodel``; raises ``UnreadableModel`` for what needs MLflow itself.

    ``with_signature=False`` skips MLflow's signature (the caller brings its own).
    """
    path = directory / MLMODEL
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UnreadableModel(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("flavors"), dict):
        raise UnreadableModel(f"{path} has no 'flavors' section")
    flavor, conf = _pick_flavor(document["flavors"], path)
    hints = _hints(flavor, conf)
    signature = _signature(document.get("signature"), path) if with_signature else None
    return MlflowModel(
        flavor=flavor,
        model_file=_model_file(directory, flavor, conf),
        hints=hints,
        signature=signature,
        info={k: str(document[k]) for k in _INFO_KEYS if document.get(k) is not None},
        tensor=signature is not None and signature.names == _unnamed(len(signature)),
    )


def _unnamed(count: int) -> list[str]:
    return [f"f{i}" for i in range(count)]


def _pick_flavor(flavors: Mapping[str, Any], path: Path) -> tuple[str, Mapping[str, Any]]:
    for name in NATIVE:
        if isinstance(flavors.get(name), dict):
            return name, flavors[name]
    pyfunc = flavors.get("python_function")
    if isinstance(pyfunc, dict) and pyfunc.get("loader_module") in _LOADERS:
        return _LOADERS[pyfunc["loader_module"]], pyfunc
    loader = pyfunc.get("loader_module") if isinstance(pyfunc, dict) else None
    raise UnreadableModel(
        f"{path} holds flavors {', '.join(map(str, flavors)) or 'none'}"
        + (f" (python_function loader {loader})" if loader else "")
        + f"; only MLflow {', '.join(NATIVE)} models can be imported. Arbitrary "
        "python_function models need mlflow itself: load the model with mlflow and save it "
        "with watchkeeper's python flavor instead"
    )


def _hints(flavor: str, conf: Mapping[str, Any]) -> dict[str, Any]:
    hints: dict[str, Any] = {}
    if flavor == "sklearn":
        hints["serialization"] = str(conf.get("serialization_format") or "cloudpickle")
    if conf.get("model_class"):
        hints["model_class"] = str(conf["model_class"])
    if conf.get("model_format"):
        hints["model_format"] = str(conf["model_format"])
    return hints


def _model_file(directory: Path, flavor: str, conf: Mapping[str, Any]) -> Path:
    relative = conf.get(_FILE_KEYS[flavor]) or conf.get("model_path") or conf.get("data")
    if not relative:
        raise UnreadableModel(f"{directory / MLMODEL}: the {flavor} flavor names no model file")
    root = directory.resolve()
    file = (root / str(relative)).resolve()
    if not file.is_relative_to(root):
        raise UnreadableModel(f"{directory / MLMODEL}: model file {relative!r} is outside it")
    if not file.is_file():
        raise UnreadableModel(f"{directory / MLMODEL} names model file {relative!r}: not found")
    return file


def _signature(signature: Any, path: Path) -> Signature | None:
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return None
    try:
        inputs = json.loads(signature["inputs"])
    except (TypeError, json.JSONDecodeError) as exc:
        raise UnreadableModel(f"{path}: the signature inputs are not JSON: {exc}") from exc
    if not isinstance(inputs, list) or not inputs:
        return None
    if all(isinstance(c, dict) and c.get("type") == "tensor" for c in inputs):
        return _tensor_signature(inputs, path)
    return Signature(tuple(_column(i, c, path) for i, c in enumerate(inputs)))


def _column(index: int, spec: Any, path: Path) -> ColumnSpec:
    kind = _COLUMN_TYPES.get(str(spec.get("type"))) if isinstance(spec, dict) else None
    if kind is None:
        raise _unsupported(path, f"column {spec!r}")
    # MLflow accepts NaN in double/float columns; "required" says whether a value must be given
    required = bool(spec.get("required", True))
    return ColumnSpec(
        name=str(spec.get("name") or f"f{index}"),
        dtype=kind,
        nullable=kind == "float" or not required,
    )


def _tensor_signature(inputs: list[dict[str, Any]], path: Path) -> Signature:
    """One 2-D tensor of known width becomes columns ``f0 .. f{n-1}``."""
    tensor = inputs[0].get("tensor-spec") or {}
    shape = tensor.get("shape") or []
    if len(inputs) != 1 or len(shape) != 2 or not isinstance(shape[1], int) or shape[1] < 1:
        raise _unsupported(path, "tensor inputs other than one 2-D tensor")
    try:
        kind = np.dtype(str(tensor.get("dtype"))).kind
    except TypeError as exc:
        raise _unsupported(path, f"tensor dtype {tensor.get('dtype')!r}") from exc
    dtypes: dict[str, ColumnType] = {"f": "float", "i": "int", "u": "int", "b": "bool"}
    if kind not in dtypes:
        raise _unsupported(path, f"tensor dtype {tensor.get('dtype')!r}")
    return Signature(
        tuple(
            ColumnSpec(name=f"f{i}", dtype=dtypes[kind], nullable=kind == "f")
            for i in range(shape[1])
        )
    )


def _unsupported(path: Path, what: str) -> UnreadableModel:
    return UnreadableModel(
        f"{path}: cannot convert the MLflow signature ({what} is not supported); "
        "pass signature= or input_example= to package_from_path"
    )
