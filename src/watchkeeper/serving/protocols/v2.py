"""The Open Inference Protocol (KServe v2) over REST: ``POST /v2/models/{name}/infer``.

A request carries either one tensor per input column (shape ``[n]`` or ``[n, 1]``, matched to
the signature by name) or a single ``[n, k]`` tensor holding the whole table in signature column
order (any name, unless it is ``[n, 1]`` and named after a column). ``data`` may be flat
(row-major) or nested. Request ``outputs`` naming ``probabilities``, or a request parameter
``return_probabilities: true``, asks for probabilities. Nulls are accepted in any tensor (for
nullable columns); element types must agree with the declared datatype.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any

import numpy as np

from watchkeeper.errors import Detail, MalformedRequest, PayloadTooLarge
from watchkeeper.models.signature import Signature
from watchkeeper.serving._convert import BOOL_TYPES, NULL, NUMBER_TYPES, TEXT_TYPES, describe
from watchkeeper.serving.batch import ParsedBatch
from watchkeeper.serving.protocols._bounds import check_json
from watchkeeper.serving.protocols._json import dumps, loads

_INTEGER_TYPES: frozenset[type] = frozenset({int, NULL})
DATATYPES: dict[str, frozenset[type]] = {
    "BOOL": BOOL_TYPES,
    **{f"{sign}INT{bits}": _INTEGER_TYPES for sign in ("", "U") for bits in (8, 16, 32, 64)},
    **{f"FP{bits}": NUMBER_TYPES for bits in (16, 32, 64)},
    "BYTES": TEXT_TYPES,
}
_COLUMN_DATATYPES = {
    "float": "FP64",
    "int": "INT64",
    "bool": "BOOL",
    "string": "BYTES",
    "datetime": "BYTES",
}


_DATATYPE_BYTES = {"BOOL": 1, "BYTES": 8, **{f"{s}INT{b}": b // 8 for s in ("", "U")
                                               for b in (8, 16, 32, 64)},
                   **{f"FP{b}": b // 8 for b in (16, 32, 64)}}  # fmt: skip
_MAX_DIM = 2**31 - 1


def parse(body: bytes, signature: Signature | None, *, max_rows: int = 10_000) -> ParsedBatch:
    """The rows of an inference request; ``request_id`` is the request's ``id``.

    Declared shapes are checked before anything is allocated from them: one or two dimensions,
    each a non-negative integer, at most ``max_rows`` rows (413 beyond), and as many values as
    the data holds.
    """
    names = signature.names if signature is not None else None
    check_json(body, max_rows, len(names) if names else None)
    obj = loads(body)
    if not isinstance(obj, dict):
        raise MalformedRequest('an inference request is a JSON object with "inputs"')
    request_id = obj.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise MalformedRequest('"id" must be a string', details=[Detail("id", "expected_string")])
    inputs = obj.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise MalformedRequest(
            '"inputs" must be a non-empty list of tensors',
            details=[Detail("inputs", "missing" if inputs is None else "expected_tensors")],
        )
    tensors = [_tensor(item, index, max_rows) for index, item in enumerate(inputs)]
    flag = _wants_probabilities(obj)
    name, shape, data = tensors[0]
    if len(tensors) == 1 and len(shape) == 2 and (shape[1] != 1 or not names or name not in names):
        width = shape[1]
        rows = [data[i * width : (i + 1) * width] for i in range(shape[0])]
        return ParsedBatch(rows=rows, return_probabilities=flag, request_id=request_id)
    return ParsedBatch(columns=_columns(tensors), return_probabilities=flag, request_id=request_id)


def _tensor(item: Any, index: int, max_rows: int) -> tuple[str, list[int], list[Any]]:
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise MalformedRequest(
            f"{where} must be a tensor object", details=[Detail(where, "not_an_object")]
        )
    absent = [key for key in ("name", "shape", "datatype", "data") if key not in item]
    if absent:
        raise MalformedRequest(
            f"{where} lacks {', '.join(absent)}",
            details=[Detail(f"{where}.{key}", "missing") for key in absent],
        )
    name, shape, datatype = item["name"], item["shape"], item["datatype"]
    if not isinstance(name, str):
        raise MalformedRequest(
            f"{where}.name must be a string", details=[Detail(where, "bad_name")]
        )
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise MalformedRequest(
            f"input {name!r}: unknown datatype {datatype!r} "
            f"(expected one of {', '.join(DATATYPES)})",
            details=[Detail(name, "unknown_datatype")],
        )
    _check_shape(name, shape, datatype, max_rows)
    data = _flatten(item["data"], name)
    _check_data(name, shape, datatype, data)
    return name, shape, data


def _check_shape(name: str, shape: Any, datatype: str, max_rows: int) -> None:
    """A declared shape, before any data is laid out by it."""
    if type(shape) is not list or not all(type(d) is int and 0 <= d <= _MAX_DIM for d in shape):
        raise MalformedRequest(
            f"input {name!r}: shape must be a list of integers from 0 to {_MAX_DIM}",
            details=[Detail(f"{name}.shape", "bad_shape")],
        )
    if len(shape) not in (1, 2):
        raise MalformedRequest(
            f"input {name!r}: shape has {len(shape)} dimensions; send [n], [n, 1] or one [n, k] "
            "tensor",
            details=[Detail(f"{name}.shape", "bad_shape")],
        )
    if shape[0] > max_rows:
        raise PayloadTooLarge(
            f"input {name!r}: shape {shape} declares {shape[0]} rows; at most {max_rows} are "
            "accepted at once",
            details=[Detail(f"{name}.shape", "too_many_rows")],
        )
    declared = math.prod(shape) * _DATATYPE_BYTES[datatype]
    if len(shape) == 2 and shape[1] == 0 and shape[0]:
        raise MalformedRequest(
            f"input {name!r}: shape {shape} has rows of no values",
            details=[Detail(f"{name}.shape", "bad_shape")],
        )
    if declared > _MAX_DIM:
        raise PayloadTooLarge(
            f"input {name!r}: shape {shape} of {datatype} declares {declared} bytes",
            details=[Detail(f"{name}.shape", "too_large")],
        )


def _flatten(data: Any, name: str) -> list[Any]:
    flat = data
    while isinstance(flat, list):
        kinds = set(map(type, flat))
        if list not in kinds:
            return flat
        if kinds != {list}:
            break
        flat = list(chain.from_iterable(flat))
    raise MalformedRequest(
        f"input {name!r}: data must be a list of values, flat or evenly nested",
        details=[Detail(name, "bad_data")],
    )


def _check_data(name: str, shape: list[int], datatype: str, data: list[Any]) -> None:
    size = math.prod(shape)
    if size != len(data):
        raise MalformedRequest(
            f"input {name!r}: shape {shape} holds {size} values but data has {len(data)}",
            details=[Detail(f"{name}.data", "shape_mismatch")],
        )
    allowed = DATATYPES[datatype]
    if not set(map(type, data)) <= allowed:
        stray = next(v for v in data if type(v) not in allowed)
        raise MalformedRequest(
            f"input {name!r} is declared {datatype} but holds {describe(stray)}",
            details=[Detail(name, "datatype_mismatch")],
        )


def _columns(tensors: list[tuple[str, list[int], list[Any]]]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    for name, shape, data in tensors:
        if len(shape) == 2 and shape[1] != 1:
            raise MalformedRequest(
                f"input {name!r} has shape {shape}: send one [n] or [n, 1] tensor per column, "
                "or a single [n, k] tensor with every column",
                details=[Detail(name, "bad_shape")],
            )
        if name in columns:
            raise MalformedRequest(
                f"input {name!r} is sent twice", details=[Detail(name, "duplicate")]
            )
        columns[name] = data
    return columns


def _wants_probabilities(obj: dict[str, Any]) -> bool:
    outputs = obj.get("outputs")
    if outputs is not None and (
        type(outputs) is not list
        or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs)
    ):
        raise MalformedRequest(
            '"outputs" must be a list of objects with a "name"',
            details=[Detail("outputs", "bad_outputs")],
        )
    parameters = obj.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise MalformedRequest(
            '"parameters" must be an object', details=[Detail("parameters", "bad")]
        )
    asked = any(o["name"] == "probabilities" for o in outputs or ())
    return asked or (parameters or {}).get("return_probabilities") is True


def render(
    *,
    model: str,
    version: int | str,
    request_id: str | None,
    predictions: Any,
    probabilities: Any = None,
) -> bytes:
    """The inference response; ``id`` only when the request had one."""
    out: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if request_id is not None:
        out["id"] = request_id
    outputs = [_output("predictions", predictions)]
    if probabilities is not None:
        outputs.append(_output("probabilities", np.asarray(probabilities, dtype=np.float64)))
    out["outputs"] = outputs
    return dumps(out)


def _output(name: str, values: Any) -> dict[str, Any]:
    arr = np.asarray(values)
    if arr.dtype.kind == "O":
        typed = np.asarray(arr.tolist())
        arr = typed if typed.dtype.kind in "biuf" else arr
    if arr.dtype.kind == "M":
        arr = np.datetime_as_string(arr)
    datatype = datatype_of(arr.dtype)
    data: Any = arr.ravel()
    if datatype == "BYTES":
        data = data.tolist()
    elif arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        data = data.astype(np.float64)  # long double: orjson does not write it
    return {"name": name, "datatype": datatype, "shape": list(arr.shape), "data": data}


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The v2 datatype of a numpy dtype; text, objects and anything else are BYTES."""
    bits = dtype.itemsize * 8
    if dtype.kind == "b":
        return "BOOL"
    if dtype.kind in "iu" and bits <= 64:
        return f"{'U' if dtype.kind == 'u' else ''}INT{bits}"
    if dtype.kind == "f":
        return f"FP{min(bits, 64)}"
    return "BYTES"


def metadata(
    model: str,
    versions: list[int] | list[str],
    signature: Signature | None,
    *,
    prediction_datatype: str = "FP64",
    probabilities: bool = False,
) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the model's versions, inputs (one per column) and outputs."""
    columns = signature.columns if signature is not None else ()
    outputs = [{"name": "predictions", "datatype": prediction_datatype, "shape": [-1]}]
    if probabilities:
        outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, -1]})
    return {
        "name": model,
        "versions": [str(v) for v in versions],
        "platform": "watchkeeper",
        "inputs": [
            {"name": c.name, "datatype": _COLUMN_DATATYPES[c.dtype], "shape": [-1]} for c in columns
        ],
        "outputs": outputs,
    }


def server_metadata() -> dict[str, Any]:
    """``GET /v2``: the server's name, version and protocol extensions (none)."""
    from watchkeeper import __version__  # late: the package root imports the layers below

    return {"name": "watchkeeper", "version": __version__, "extensions": []}
