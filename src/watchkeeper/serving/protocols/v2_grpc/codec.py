"""The Open Inference Protocol over gRPC: ``ModelInferRequest`` in, ``ModelInferResponse`` out.

A request is read as its REST twin is (``v2.py``): one tensor per input column (``[n]`` or
``[n, 1]``) or a single ``[n, k]`` tensor in signature column order, each declared shape checked
before anything is laid out from it, at most the row limit of values in all. A tensor's values
come either from ``raw_input_contents`` (what tritonclient sends: one entry per input, the layout
of the binary tensor data extension, decoded by ``v2_binary.py``) or from the typed list of its
``contents`` that matches its datatype. Probabilities are asked for by naming the
``probabilities`` output or with the request parameter ``return_probabilities``; ``predictions``
always come back. Outputs always travel in ``raw_output_contents`` (tritonclient reads nothing
else).

Only protobuf is needed here; the gRPC server lives in ``serving/grpc_service.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from watchkeeper.errors import Detail, MalformedRequest, PayloadTooLarge
from watchkeeper.models.signature import Signature
from watchkeeper.serving.batch import ParsedBatch
from watchkeeper.serving.protocols import v2, v2_binary
from watchkeeper.serving.protocols._bounds import max_values
from watchkeeper.serving.protocols.v2_grpc import open_inference_pb2 as pb

# the typed list of InferTensorContents that holds each datatype (FP16 has none: raw only)
_CONTENTS = {
    "BOOL": "bool_contents",
    **{f"INT{b}": "int_contents" for b in (8, 16, 32)},
    "INT64": "int64_contents",
    **{f"UINT{b}": "uint_contents" for b in (8, 16, 32)},
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_ITEM_BYTES = {"BOOL": 1, **{f"{s}INT{b}": b // 8 for s in ("", "U") for b in (8, 16, 32, 64)},
               **{f"FP{b}": b // 8 for b in (16, 32, 64)}}  # fmt: skip


def read_request(body: bytes) -> pb.ModelInferRequest:
    """The request message of a ``ModelInfer`` call (400 when it is not one)."""
    try:
        return pb.ModelInferRequest.FromString(body)
    except DecodeError as exc:
        raise MalformedRequest("the body is not a ModelInferRequest message") from exc


def model_ref(name: str, version: str) -> str:
    """The model reference a request names: ``name``, or ``name@version`` when it asks for one."""
    return f"{name}@{version}" if version else name


def parse(
    request: pb.ModelInferRequest, signature: Signature | None, *, max_rows: int
) -> ParsedBatch:
    """The rows of ``request``; ``request_id`` is its ``id`` (echoed in the response)."""
    names = signature.names if signature is not None else None
    if not request.inputs:
        raise MalformedRequest(
            "inputs must be a non-empty list of tensors", details=[Detail("inputs", "missing")]
        )
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise MalformedRequest(
            f"raw_input_contents holds {len(raw)} entries for {len(request.inputs)} inputs; send "
            "one per input, in the order of the inputs, or none",
            details=[Detail("raw_input_contents", "count_mismatch")],
        )
    left = max_values(max_rows, len(names) if names else None)
    tensors: list[v2.Tensor] = []
    for index, tensor in enumerate(request.inputs):
        name, shape, datatype = _declared(tensor, index, max_rows)
        left -= math.prod(shape)
        if left < 0:
            raise PayloadTooLarge(
                f"input {name!r}: the tensors hold more values than {max_rows} rows can",
                details=[Detail(name, "too_many_values")],
            )
        if raw:
            values = _raw(tensor, shape, datatype, raw[index], index)
        else:
            values = _contents(tensor, shape, datatype)
        tensors.append((name, shape, values))
    rows, columns = v2.layout(tensors, names)
    return ParsedBatch(rows=rows, columns=columns, return_probabilities=_probabilities(request),
                       request_id=request.id or None)  # fmt: skip


def _declared(
    tensor: pb.ModelInferRequest.InferInputTensor, index: int, max_rows: int
) -> tuple[str, list[int], str]:
    """A tensor's name, shape and datatype, checked before any value is read."""
    name, datatype = tensor.name, tensor.datatype
    if not name:
        raise MalformedRequest(
            f"inputs[{index}] has no name", details=[Detail(f"inputs[{index}].name", "missing")]
        )
    if datatype not in v2.DATATYPES:
        raise MalformedRequest(
            f"input {name!r}: unknown datatype {v2_binary.clip_value(datatype)} (expected one of "
            f"{', '.join(v2.DATATYPES)})",
            details=[Detail(name, "unknown_datatype")],
        )
    shape = list(tensor.shape)
    v2.check_shape(name, shape, datatype, max_rows)
    return name, shape, datatype


def _raw(
    tensor: pb.ModelInferRequest.InferInputTensor, shape: list[int], datatype: str, data: bytes,
    index: int,
) -> list[Any]:  # fmt: skip
    """A tensor's values from its entry in ``raw_input_contents``."""
    where = f"raw_input_contents[{index}]"
    if tensor.HasField("contents"):
        raise MalformedRequest(
            f"input {tensor.name!r} has contents and the request has raw_input_contents; send "
            "every input one way",
            details=[Detail(f"{tensor.name}.contents", "conflict")],
        )
    count = math.prod(shape)
    if datatype != "BYTES" and len(data) != count * _ITEM_BYTES[datatype]:
        raise MalformedRequest(
            f"input {tensor.name!r}: shape {shape} of {datatype} takes "
            f"{count * _ITEM_BYTES[datatype]} bytes but {where} holds {len(data)}",
            details=[Detail(where, "size_mismatch")],
        )
    blob = v2_binary.Blob(memoryview(data), max_values=count)
    return blob.take(tensor.name, shape, datatype, len(data))


def _contents(
    tensor: pb.ModelInferRequest.InferInputTensor, shape: list[int], datatype: str
) -> list[Any]:
    """A tensor's values from the typed list of its ``contents`` that matches its datatype."""
    name, expected = tensor.name, _CONTENTS.get(datatype)
    filled = [field.name for field, _ in tensor.contents.ListFields()]
    stray = [field for field in filled if field != expected]
    if expected is None or stray:
        where = stray[0] if stray else "contents"
        raise MalformedRequest(
            f"input {name!r} is declared {datatype} but its values are in {where}"
            + ("; send FP16 in raw_input_contents" if expected is None else f", not {expected}"),
            details=[Detail(name, "datatype_mismatch")],
        )
    values = getattr(tensor.contents, expected)
    count = math.prod(shape)
    if len(values) != count:
        raise MalformedRequest(
            f"input {name!r}: shape {shape} holds {count} values but {expected} has {len(values)}",
            details=[Detail(f"{name}.contents", "shape_mismatch")],
        )
    if datatype == "BYTES":
        return [_text(name, index, value) for index, value in enumerate(values)]
    return list(values)


def _text(name: str, index: int, value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRequest(
            f"input {name!r}: element {index} is not UTF-8 text",
            details=[Detail(name, "not_utf8", index)],
        ) from exc


def _probabilities(request: pb.ModelInferRequest) -> bool:
    """Whether probabilities are asked for: by output name, or the ``return_probabilities``
    request parameter. An output the model does not give is refused."""
    for index, output in enumerate(request.outputs):
        if output.name not in v2.OUTPUTS:
            raise MalformedRequest(
                f"output {v2_binary.clip_value(output.name)} is not one of this model's outputs "
                f"({', '.join(v2.OUTPUTS)})",
                details=[Detail(f"outputs[{index}].name", "unknown_output")],
            )
    if any(output.name == "probabilities" for output in request.outputs):
        return True
    if "return_probabilities" not in request.parameters:
        return False
    parameter = request.parameters["return_probabilities"]
    if parameter.WhichOneof("parameter_choice") != "bool_param":
        raise MalformedRequest(
            "the return_probabilities parameter must be a bool_param",
            details=[Detail("parameters.return_probabilities", "expected_bool")],
        )
    return parameter.bool_param


def render(
    *,
    model: str,
    version: int | str,
    request_id: str | None,
    predictions: Any,
    probabilities: Any = None,
) -> bytes:
    """The serialized ``ModelInferResponse``: ``predictions`` (and ``probabilities`` when
    given), each output's values in ``raw_output_contents``."""
    response = pb.ModelInferResponse(
        model_name=model, model_version=str(version), id=request_id or ""
    )
    outputs = [("predictions", predictions)]
    if probabilities is not None:
        outputs.append(("probabilities", np.asarray(probabilities, dtype=np.float64)))
    for name, values in outputs:
        tensor = v2.output_tensor(name, values)
        response.outputs.add(name=name, datatype=tensor["datatype"], shape=tensor["shape"])
        response.raw_output_contents.append(v2_binary.encode(tensor["data"], tensor["datatype"]))
    return response.SerializeToString()


def metadata(meta: dict[str, Any]) -> pb.ModelMetadataResponse:
    """``ModelMetadata``'s answer from REST's (``v2.metadata``)."""
    response = pb.ModelMetadataResponse(
        name=meta["name"], versions=meta["versions"], platform=meta["platform"]
    )
    for key in ("inputs", "outputs"):
        for tensor in meta[key]:
            getattr(response, key).add(
                name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
            )
    return response


def server_metadata(meta: dict[str, Any]) -> pb.ServerMetadataResponse:
    """``ServerMetadata``'s answer from REST's (``v2.server_metadata``)."""
    return pb.ServerMetadataResponse(
        name=meta["name"], version=meta["version"], extensions=meta["extensions"]
    )
