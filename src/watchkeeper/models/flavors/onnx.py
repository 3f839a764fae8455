"""ONNX graphs, run with onnxruntime (one session, created at load).

Inputs: a graph with one input gets one 2-D tensor holding every column in signature order,
cast to the input's element type; a graph with several inputs gets one tensor per column,
matched by name. Outputs: the first is the prediction (label); a second one, when present, holds
class probabilities, either a tensor or the list of ``{class: probability}`` dicts skl2onnx's
ZipMap produces (convert with ``options={"zipmap": False}`` to skip that slow path).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from watchkeeper.errors import InvalidInput, SchemaError, UnreadableModel
from watchkeeper.models.flavors.base import (
    Adoption,
    Array,
    InputKind,
    Options,
    PackageFiles,
    TrustedTypes,
    as_1d,
    check_serialization,
    head,
    require,
    unreadable,
)
from watchkeeper.models.inputs import MODEL_INPUTS, carried_option
from watchkeeper.models.signature import ColumnType

MODEL_FILE = "model.onnx"
_ELEMENT_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
    "tensor(string)": object,
}


_COLUMN_TYPES: dict[str, ColumnType] = {
    "tensor(float)": "float",
    "tensor(double)": "float",
    "tensor(float16)": "float",
    "tensor(int64)": "int",
    "tensor(int32)": "int",
    "tensor(int8)": "int",
    "tensor(uint8)": "int",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


def import_onnxruntime() -> Any:
    return require("onnxruntime", "onnx")


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: Any
    rank: int


@dataclass(frozen=True)
class OnnxPredictor:
    session: Any
    inputs: tuple[InputSpec, ...]
    label_output: str
    proba_output: str | None
    classes: Array | None

    @property
    def input_kind(self) -> InputKind:
        return "array" if len(self.inputs) == 1 else "frame"

    @property
    def feature_names(self) -> list[str] | None:
        return None if len(self.inputs) == 1 else [i.name for i in self.inputs]

    @property
    def has_proba(self) -> bool:
        return self.proba_output is not None

    def predict(self, x: Any) -> Array:
        return as_1d(self.session.run([self.label_output], self._feeds(x))[0])

    def predict_proba(self, x: Any) -> Array:
        if self.proba_output is None:
            raise InvalidInput("this ONNX model has no probability output")
        out = self.session.run([self.proba_output], self._feeds(x))[0]
        if isinstance(out, list):
            return self._from_zipmap(out)
        return np.asarray(out)

    def _feeds(self, x: Any) -> dict[str, Any]:
        if len(self.inputs) == 1:
            spec = self.inputs[0]
            return {spec.name: np.asarray(x, dtype=spec.dtype)}
        frame: pd.DataFrame = x
        feeds: dict[str, Any] = {}
        missing = [s.name for s in self.inputs if s.name not in frame.columns]
        if missing:
            raise SchemaError(f"the ONNX graph needs input column(s) {', '.join(missing)}")
        for spec in self.inputs:
            column = np.asarray(frame[spec.name].to_numpy(), dtype=spec.dtype)
            feeds[spec.name] = column.reshape(-1, 1) if spec.rank == 2 else column
        return feeds

    def _from_zipmap(self, rows: list[dict[Any, float]]) -> Array:
        keys = list(self.classes) if self.classes is not None else list(rows[0]) if rows else []
        return np.array([[row[k] for k in keys] for row in rows], dtype=np.float64)


def session_for(data: bytes, source: str) -> Any:
    ort = import_onnxruntime()
    try:
        return ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # translated at this boundary
        unreadable(source, "an ONNX model", exc)


def graph_classes(data: bytes) -> list[Any] | None:
    """Class labels from the graph's classifier or ZipMap node (needs the ``onnx`` package)."""
    try:
        import onnx
    except ImportError:
        return None
    classes: list[Any] | None = None
    for node in onnx.load_from_string(data).graph.node:
        for attribute in node.attribute:
            if attribute.name in ("classlabels_int64s", "classlabels_ints") and attribute.ints:
                classes = [int(v) for v in attribute.ints]
            elif attribute.name == "classlabels_strings" and attribute.strings:
                classes = [v.decode("utf-8") for v in attribute.strings]
    return classes


def describe(session: Any, data: bytes) -> Options:
    inputs = session.get_inputs()
    outputs = session.get_outputs()
    for spec in inputs:
        if spec.type not in _ELEMENT_TYPES:
            raise UnreadableModel(f"ONNX input {spec.name!r} has unsupported type {spec.type}")
    return {
        "inputs": [{"name": i.name, "type": i.type, "shape": list(i.shape)} for i in inputs],
        "outputs": [{"name": o.name, "type": o.type} for o in outputs],
        "has_proba": len(outputs) > 1,
        "classes": graph_classes(data) if len(outputs) > 1 else None,
        MODEL_INPUTS: graph_inputs(inputs),
    }


def graph_inputs(inputs: list[Any]) -> dict[str, Any] | None:
    """One ``[n, k]`` input of known ``k``: ``k`` unnamed columns of its element type; several
    one-column inputs: one column each, by input name. Float columns are nullable."""
    types = [_COLUMN_TYPES[i.type] for i in inputs]
    if len(inputs) == 1:
        shape = list(inputs[0].shape or ())
        width = shape[1] if len(shape) == 2 else None
        if not isinstance(width, int) or width < 1:
            return None
        return carried_option(None, types * width, nullable=types[0] == "float")
    if not all(_one_column(i.shape) for i in inputs):
        return None
    nullable = [t == "float" for t in types]
    return carried_option([i.name for i in inputs], types, nullable=nullable)


def _one_column(shape: Any) -> bool:
    dims = list(shape or ())
    return len(dims) == 1 or (len(dims) == 2 and dims[1] == 1)


def model_bytes(obj: Any) -> bytes:
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj)
    if isinstance(obj, (str, os.PathLike)):
        return Path(obj).read_bytes()
    if hasattr(obj, "SerializeToString"):
        return bytes(obj.SerializeToString())
    raise InvalidInput(f"a {type(obj).__name__} is not an ONNX model")


class OnnxFlavor:
    name = "onnx"

    def libraries(self, options: Mapping[str, Any]) -> tuple[str, ...]:
        return ("numpy", "onnxruntime")

    def matches(self, obj: object) -> bool:
        if isinstance(obj, (bytes, bytearray)):
            return True
        if isinstance(obj, (str, os.PathLike)):
            return Path(obj).suffix.lower() == ".onnx"
        module = type(obj).__module__.split(".", 1)[0]
        return module == "onnx" and hasattr(obj, "SerializeToString")

    def matches_path(self, path: Path) -> bool:
        # a protobuf whose first field is ir_version (field 1, varint) starts with 0x08
        return path.suffix.lower() == ".onnx" or head(path, 1) == b"\x08"

    def save(self, obj: Any, directory: Path, *, serialization: str | None) -> Options:
        check_serialization(self.name, serialization, ("onnx",))
        data = model_bytes(obj)
        session = session_for(data, f"the {type(obj).__name__} given")
        (directory / MODEL_FILE).write_bytes(data)
        return {"model_file": MODEL_FILE, **describe(session, data)}

    def adopt(self, source: Adoption) -> Options:
        copy = source.copy_in()
        data = copy.read_bytes()
        return {"model_file": copy.name, **describe(session_for(data, str(source.file)), data)}

    def load(self, files: PackageFiles, *, trusted_types: TrustedTypes) -> OnnxPredictor:
        name, data = files.model_file()
        session = session_for(data, str(files.directory / name))
        inputs = tuple(
            InputSpec(i.name, _ELEMENT_TYPES.get(i.type, np.float32), len(i.shape or ()))
            for i in session.get_inputs()
        )
        outputs = [o.name for o in session.get_outputs()]
        classes = files.options.get("classes")
        return OnnxPredictor(
            session=session,
            inputs=inputs,
            label_output=outputs[0],
            proba_output=outputs[1] if len(outputs) > 1 else None,
            classes=np.asarray(classes) if classes is not None else None,
        )
