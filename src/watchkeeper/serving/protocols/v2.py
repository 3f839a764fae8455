"""The Open Inference Protocol (KServe v2) over REST: ``POST /v2/models/{name}/infer``.

A request carries either one tensor per input column (shape ``[n]`` or ``[n, 1]``, matched to
the signature by name) or a single ``[n, k]`` tensor holding the whole table in signature column
order (any name, unless it is ``[n, 1]`` and named after a column). ``data`` may be flat
(row-major) or nested. Request ``outputs`` naming ``probabilities``, or a request parameter
``return_probabilities: true``, asks for probabilities; ``predictions`` always come back. Nulls
are accepted in any tensor (for nullable columns); element types must agree with the declared
datatype. Tensors may also travel as binary data, both ways (``v2_binary.py``).
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
from watchkeeper.serving.protocols import v2_binary
from watchkeeper.serving.protocols._bounds import check_json, max_values
from watchkeeper.serving.protocols._json import dumps, loads
from watchkeeper.serving.protocols.wire import Rendered

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


def parse(
    body: bytes,
    signature: Signature | None,
    *,
    max_rows: int = 10_000,
    header_length: str | None = None,
) -> ParsedBatch:
    """The rows of an inference request; ``request_id`` is the request's ``id``.

    ``header_length`` is the request's ``Inference-Header-Content-Length`` header: when given,
    the body is a JSON part of that many bytes followed by binary tensor data. Declared shapes
    are checked before anything is allocated from them: one or two dimensions, each a
    non-negative integer, at most ``max_rows`` rows (413 beyond), and as many values as the data
    holds.
    """
    names = signature.names if signature is not None else None
    width = len(names) if names else None
    header, binary = v2_binary.split(body, header_length)
    check_json(header, max_rows, width)
    obj, request_id, inputs = _request(loads(header))
    blob = v2_binary.Blob(binary, max_values=max_values(max_rows, width))
    tensors = [_tensor(item, index, max_rows, blob) for index, item in enumerate(inputs)]
    blob.finish()
    flag, binary_outputs = _outputs_asked(obj)
    rows, columns = layout(tensors, names)
    return ParsedBatch(rows=rows, columns=columns, return_probabilities=flag,
                       request_id=request_id, binary_outputs=binary_outputs)  # fmt: skip


def _request(obj: Any) -> tuple[dict[str, Any], str | None, list[Any]]:
    """The request object, its ``id`` and its ``inputs``."""
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
    return obj, request_id, inputs


def _tensor(
    item: Any, index: int, max_rows: int, blob: v2_binary.Blob
) -> tuple[str, list[int], list[Any]]:
    where = f"inputs[{index}]"
    if not isinstance(item, dict):
        raise MalformedRequest(
            f"{where} must be a tensor object", details=[Detail(where, "not_an_object")]
        )
    size = _binary_size(item, where)
    required = ["name", "shape", "datatype"] + (["data"] if size is None else [])
    absent = [key for key in required if key not in item]
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
    check_shape(name, shape, datatype, max_rows)
    if size is not None:
        return name, shape, blob.take(name, shape, datatype, size)
    data = _flatten(item["data"], name)
    _check_data(name, shape, datatype, data)
    return name, shape, data


def _binary_size(item: dict[str, Any], where: str) -> object | None:
    """The tensor's ``binary_data_size`` parameter; a tensor with one has no ``data``."""
    parameters = item.get("parameters")
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise MalformedRequest(
            f"{where}.parameters must be an object",
            details=[Detail(f"{where}.parameters", "bad")],
        )
    size = parameters.get("binary_data_size")
    if size is not None and "data" in item:
        raise MalformedRequest(
            f"{where} has both data and a binary_data_size; send one",
            details=[Detail(f"{where}.data", "conflict")],
        )
    return size


def check_shape(name: str, shape: Any, datatype: str, max_rows: int) -> None:
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


Tensor = tuple[str, list[int], list[Any]]  # name, shape, flat values


def layout(
    tensors: list[Tensor], names: list[str] | None
) -> tuple[list[list[Any]] | None, dict[str, list[Any]] | None]:
    """The rows (one ``[n, k]`` tensor holding the whole table) or the columns (one tensor per
    column) of a request's input tensors; shared by REST and gRPC."""
    name, shape, data = tensors[0]
    if len(tensors) == 1 and len(shape) == 2 and (shape[1] != 1 or not names or name not in names):
        width = shape[1]
        return [data[i * width : (i + 1) * width] for i in range(shape[0])], None
    return None, _columns(tensors)


def _columns(tensors: list[Tensor]) -> dict[str, list[Any]]:
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


OUTPUTS = ("predictions", "probabilities")


def _outputs_asked(obj: dict[str, Any]) -> tuple[bool, frozenset[str]]:
    """Whether probabilities are asked for, and which outputs are to come back as binary data:
    each requested output's ``binary_data``, else the request's ``binary_data_output``."""
    outputs = obj.get("outputs")
    if outputs is not None and (
        type(outputs) is not list
        or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs)
    ):
        raise MalformedRequest(
            '"outputs" must be a list of objects with a "name"',
            details=[Detail("outputs", "bad_outputs")],
        )
    parameters = _parameters(obj, "parameters")
    binary = set(OUTPUTS) if _flag(parameters, "binary_data_output", "parameters") else set()
    for index, output in enumerate(outputs or ()):
        name = output["name"]
        if name not in OUTPUTS:
            raise MalformedRequest(
                f"output {name!r} is not one of this model's outputs ({', '.join(OUTPUTS)})",
                details=[Detail(f"outputs[{index}].name", "unknown_output")],
            )
        where = f"outputs[{index}].parameters"
        wanted = _flag(_parameters(output, where), "binary_data", where)
        if wanted is not None:
            (binary.add if wanted else binary.discard)(name)
    asked = any(o["name"] == "probabilities" for o in outputs or ())
    return asked or parameters.get("return_probabilities") is True, frozenset(binary)


def _parameters(obj: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = obj.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise MalformedRequest(f'"{where}" must be an object', details=[Detail(where, "bad")])
    return parameters or {}


def _flag(parameters: dict[str, Any], key: str, where: str) -> bool | None:
    value = parameters.get(key)
    if value is not None and not isinstance(value, bool):
        raise MalformedRequest(
            f'"{where}.{key}" must be true or false',
            details=[Detail(f"{where}.{key}", "expected_bool")],
        )
    return value


def render(
    *,
    model: str,
    version: int | str,
    request_id: str | None,
    predictions: Any,
    probabilities: Any = None,
    binary: frozenset[str] = frozenset(),
) -> bytes | Rendered:
    """The inference response; ``id`` only when the request had one. The outputs named in
    ``binary`` come as binary tensor data after the JSON part, whose length is then given by
    an ``Inference-Header-Content-Length`` header."""
    out: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if request_id is not None:
        out["id"] = request_id
    outputs = [output_tensor("predictions", predictions)]
    if probabilities is not None:
        outputs.append(output_tensor("probabilities", np.asarray(probabilities, dtype=np.float64)))
    out["outputs"] = outputs
    chunks = []
    for output in outputs:
        if output["name"] in binary:
            chunks.append(v2_binary.encode(output.pop("data"), output["datatype"]))
            output["parameters"] = {"binary_data_size": len(chunks[-1])}
    if not chunks:
        return dumps(out)
    header = dumps(out)
    return Rendered(
        header + b"".join(chunks),
        [(b"content-type", b"application/octet-stream"),
         (v2_binary.HEADER.lower().encode(), str(len(header)).encode())],
    )  # fmt: skip


def output_tensor(name: str, values: Any) -> dict[str, Any]:
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
    """``GET /v2``: the server's name, version and protocol extensions."""
    from watchkeeper import __version__  # late: the package root imports the layers below

    return {"name": "watchkeeper", "version": __version__, "extensions": ["binary_tensor_data"]}
