"""The binary tensor data extension of the Open Inference Protocol: requests parsed from binary
tensors equal their JSON twins, answers decode with tritonclient's own reader, and every size
that does not add up is a clear 400 (or 413), never a crash."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tritonclient.http import InferResult

from watchkeeper.errors import MalformedRequest, PayloadTooLarge, WatchkeeperError
from watchkeeper.models.signature import ColumnSpec, Signature
from watchkeeper.serving.protocols import v2
from watchkeeper.serving.protocols.wire import Rendered

SIG = Signature((ColumnSpec(name="a", dtype="float"), ColumnSpec(name="b", dtype="float")))
TEXT_SIG = Signature((ColumnSpec(name="city", dtype="string"), ColumnSpec(name="x", dtype="float")))
NUMERIC = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


def strings(values: list[str]) -> bytes:
    """BYTES elements as the extension lays them out: a 4-byte little-endian length each."""
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def binary_body(
    inputs: list[tuple[dict[str, Any], bytes | None]], **extra: Any
) -> tuple[bytes, str]:
    """A request of tensors, each with its raw bytes (sent as binary) or None (sent as JSON),
    and its Inference-Header-Content-Length header."""
    tensors = []
    for tensor, raw in inputs:
        if raw is not None:
            tensor = {**tensor, "parameters": {"binary_data_size": len(raw)}}
        tensors.append(tensor)
    header = orjson.dumps({"inputs": tensors, **extra})
    return header + b"".join(raw for _, raw in inputs if raw is not None), str(len(header))


def column(name: str, values: np.ndarray, datatype: str) -> dict[str, Any]:
    return {"name": name, "shape": list(values.shape), "datatype": datatype}


@pytest.mark.parametrize("datatype", list(NUMERIC))
def test_binary_tensors_parse_to_what_their_json_twins_parse_to(datatype: str) -> None:
    """Promise: every numeric datatype sent as little-endian binary data reads exactly as the
    same values sent as JSON."""
    values = np.array([0, 1, 1, 0, 1, 1], dtype=NUMERIC[datatype]).reshape(3, 2)
    if datatype.startswith(("INT", "FP")):
        values = values * -3
    body, length = binary_body(
        [(column("t", values, datatype), values.astype("<" + values.dtype.str[1:]).tobytes())]
    )
    as_json = orjson.dumps({"inputs": [{**column("t", values, datatype), "data": values.tolist()}]})
    binary = v2.parse(body, SIG, header_length=length)
    assert binary == v2.parse(as_json, SIG)
    assert binary.rows == values.tolist()


def test_bytes_tensor_beside_a_json_tensor() -> None:
    """Promise: a BYTES tensor (length-prefixed UTF-8, empty and non-ASCII text included) and a
    JSON tensor may share one request; each column reads as sent."""
    cities = ["zürich", "", "rome"]
    x = np.array([1.5, 2.0, -1.0])
    body, length = binary_body(
        [
            ({"name": "city", "shape": [3], "datatype": "BYTES"}, strings(cities)),
            ({**column("x", x, "FP64"), "data": x.tolist()}, None),
        ]
    )
    parsed = v2.parse(body, TEXT_SIG, header_length=length)
    assert parsed.columns == {"city": cities, "x": x.tolist()}


def test_a_header_of_the_whole_body_is_plain_json() -> None:
    """Promise: an Inference-Header-Content-Length covering the whole body (no binary tensor)
    reads as the plain JSON request."""
    tensors = [{"name": n, "shape": [1], "datatype": "FP64", "data": [1.0]} for n in "ab"]
    body = orjson.dumps({"inputs": tensors})
    assert v2.parse(body, SIG, header_length=str(len(body))) == v2.parse(body, SIG)


FP32 = {"name": "a", "shape": [2], "datatype": "FP32"}
TWO_FLOATS = np.array([1.0, 2.0], dtype="<f4").tobytes()


@pytest.mark.parametrize(
    ("tensor", "raw", "length", "message", "problem"),
    [
        ({**FP32, "parameters": {"binary_data_size": 8}}, b"", None,
         "no Inference-Header-Content-Length header", "missing"),
        (FP32, TWO_FLOATS, "12x", "must be the byte length of the JSON part", "bad_header"),
        (FP32, TWO_FLOATS, "99999", "must be the byte length of the JSON part", "bad_header"),
        ({**FP32, "shape": [3]}, TWO_FLOATS, "", r"shape \[3\] of FP32 takes 12 bytes but its "
         "binary_data_size is 8", "size_mismatch"),
        (FP32, TWO_FLOATS + b"\0", "", "binary_data_size is 9", "size_mismatch"),
        ({**FP32, "parameters": {"binary_data_size": 12}}, TWO_FLOATS, "",
         "at most the 8 bytes left", "bad_size"),
        ({**FP32, "parameters": {"binary_data_size": -1}}, TWO_FLOATS, "",
         "at most the 8 bytes left", "bad_size"),
        ({**FP32, "parameters": {"binary_data_size": "8"}}, TWO_FLOATS, "",
         "at most the 8 bytes left", "bad_size"),
        ({**FP32, "shape": [1], "parameters": {"binary_data_size": 4}}, TWO_FLOATS, "",
         "4 bytes after the binary data", "size_mismatch"),
        ({**FP32, "data": [1.0, 2.0]}, TWO_FLOATS, "", "both data and a binary_data_size",
         "conflict"),
        ({"name": "a", "shape": [2], "datatype": "BYTES"}, strings(["x"]), "",
         "does not hold exactly the 2 length-prefixed BYTES elements", "size_mismatch"),
        ({"name": "a", "shape": [1], "datatype": "BYTES"}, strings(["x", "y"]), "",
         "does not hold exactly the 1 length-prefixed BYTES elements", "size_mismatch"),
        ({"name": "a", "shape": [1], "datatype": "BYTES"}, struct.pack("<I", 9) + b"x", "",
         "does not hold exactly", "size_mismatch"),
        ({"name": "a", "shape": [1], "datatype": "BYTES"}, struct.pack("<I", 2) + b"\xff\xfe",
         "", "element 0 is not UTF-8 text", "not_utf8"),
    ],
)  # fmt: skip
def test_sizes_that_do_not_add_up_are_400s_naming_the_problem(
    tensor: dict[str, Any], raw: bytes, length: str | None, message: str, problem: str
) -> None:
    """Promise: a binary request whose header, sizes, shapes and bytes disagree is refused with
    a 400 saying which, never read past its end or half-used."""
    parameters = tensor.get("parameters", {"binary_data_size": len(raw)})
    header = orjson.dumps({"inputs": [{**tensor, "parameters": parameters}]})
    if length == "":
        length = str(len(header))
    with pytest.raises(MalformedRequest, match=message) as info:
        v2.parse(header + raw, SIG, header_length=length)
    assert info.value.details[0].problem == problem


def test_binary_values_count_against_the_row_limit_before_they_are_read() -> None:
    """Promise: binary tensors holding more values than ``max_rows`` rows could are refused
    (413) as a JSON body of as many values would be, before any value is read."""
    values = np.zeros((10, 200), dtype=np.int8)
    body, length = binary_body([(column("t", values, "INT8"), values.tobytes())])
    with pytest.raises(PayloadTooLarge, match="more values than the row limit allows"):
        v2.parse(body, SIG, max_rows=10, header_length=length)
    fits = np.zeros((10, 2), dtype=np.int8)
    body, length = binary_body([(column("t", fits, "INT8"), fits.tobytes())])
    assert v2.parse(body, SIG, max_rows=10, header_length=length).n_rows == 10


def decoded(rendered: bytes | Rendered) -> InferResult:
    """The answer as tritonclient reads it."""
    assert isinstance(rendered, Rendered)
    headers = dict(rendered.headers)
    assert headers[b"content-type"] == b"application/octet-stream"
    length = int(headers[b"inference-header-content-length"])
    return InferResult.from_response_body(rendered.body, header_length=length)


@pytest.mark.parametrize(
    "predictions",
    [
        np.array([1, 0, 2], dtype=np.int64),
        np.array([0.5, -1.25, 3.0]),
        np.array([True, False, True]),
        np.array(["setosa", "virginica", "ünï"], dtype=object),
    ],
)
def test_binary_outputs_decode_with_tritonclient(predictions: np.ndarray) -> None:
    """Promise: outputs asked for as binary data are read back by tritonclient's own decoder as
    the values the model answered, probabilities included."""
    probabilities = np.array([[0.25, 0.75], [1.0, 0.0], [0.5, 0.5]])
    rendered = v2.render(model="m", version=1, request_id=None, predictions=predictions,
                         probabilities=probabilities,
                         binary=frozenset({"predictions", "probabilities"}))  # fmt: skip
    result = decoded(rendered)
    got = result.as_numpy("predictions")
    if predictions.dtype == object:
        assert [v.decode() for v in got] == list(predictions)
    else:
        np.testing.assert_array_equal(got, predictions)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), probabilities)


def test_which_outputs_come_back_binary() -> None:
    """Promise: ``binary_data_output`` asks for every output as binary data, a requested output's
    own ``binary_data`` overrides it, and JSON stays the default."""
    inputs = [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]},
              {"name": "b", "shape": [1], "datatype": "FP64", "data": [2.0]}]  # fmt: skip

    def asked(**request: Any) -> frozenset[str]:
        return v2.parse(orjson.dumps({"inputs": inputs, **request}), SIG).binary_outputs

    assert asked() == frozenset()
    assert asked(parameters={"binary_data_output": True}) == {"predictions", "probabilities"}
    assert asked(parameters={"binary_data_output": True},
                 outputs=[{"name": "predictions", "parameters": {"binary_data": False}}]
                 ) == {"probabilities"}  # fmt: skip
    assert asked(outputs=[{"name": "probabilities", "parameters": {"binary_data": True}}]) == {
        "probabilities"
    }
    json_answer = v2.render(model="m", version=1, request_id=None, predictions=[1.0])
    assert isinstance(json_answer, bytes)
    with pytest.raises(MalformedRequest, match="'scores' is not one of this model's outputs"):
        asked(outputs=[{"name": "scores"}])
    with pytest.raises(MalformedRequest, match='binary_data" must be true or false'):
        asked(outputs=[{"name": "predictions", "parameters": {"binary_data": 1}}])


@settings(max_examples=200, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=2),
    datatype=st.sampled_from([*NUMERIC, "BYTES"]),
    size=st.integers(-2, 40) | st.none(),
    raw=st.binary(max_size=40),
    length_delta=st.integers(-3, 3),
)
def test_any_binary_request_fails_only_with_watchkeeper_errors(
    shape: list[int], datatype: str, size: int | None, raw: bytes, length_delta: int
) -> None:
    """Promise: whatever sizes, shapes and bytes a binary request holds, it is parsed or refused
    with one of watchkeeper's own errors."""
    parameters = {"binary_data_size": len(raw) if size is None else size}
    header = orjson.dumps({"inputs": [{"name": "a", "shape": shape, "datatype": datatype,
                                       "parameters": parameters}]})  # fmt: skip
    try:
        v2.parse(header + raw, SIG, header_length=str(len(header) + length_delta))
    except WatchkeeperError:
        pass
