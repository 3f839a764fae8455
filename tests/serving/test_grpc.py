"""Triton's own gRPC client (``tritonclient.grpc``), with its defaults, against a real
``watchkeeper serve --grpc-port`` process: health, metadata, inference on numeric and BYTES
tensors answered as the model itself and the REST v2 route answer, errors as gRPC status codes
with our messages, and every call in the logbook and in ``/metrics`` under its own protocol."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from tests.faults.test_requests import HANG, POISON, SECRET
from tests.processes import free_port, wait_for
from tests.serving.wire_server import Wire, wire_server
from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook
from watchkeeper.serving.protocols.v2_grpc import open_inference_pb2 as pb
from watchkeeper.serving.protocols.v2_grpc import open_inference_pb2_grpc as pb_grpc

NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64}


class GrpcWire:
    def __init__(self, wire: Wire, port: int, home: Path) -> None:
        self.wire, self.port, self.home = wire, port, home
        self.target = f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcWire]:
    home = Path(tmp_path_factory.mktemp("wire-grpc"))
    port = free_port()
    args = ["--grpc-port", str(port), "--predict-timeout-for", "faulty=1",
            "--log-flush-interval", "0.2"]  # fmt: skip
    with wire_server(home, args) as wire:
        yield GrpcWire(wire, port, home)


@pytest.fixture(scope="module")
def client(served: GrpcWire) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=served.target)
    yield client
    client.close()


def tensor(name: str, values: np.ndarray, datatype: str) -> triton.InferInput:
    out = triton.InferInput(name, list(values.shape), datatype)
    out.set_data_from_numpy(values)
    return out


def rest_v2(wire: Wire, model: str, inputs: list[dict[str, object]]) -> list[object]:
    answer = httpx.post(f"{wire.url}/v2/models/{model}/infer", json={"inputs": inputs}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["outputs"][0]["data"]


def test_health_and_metadata(served: GrpcWire, client: triton.InferenceServerClient) -> None:
    """Promise: tritonclient's health and metadata calls work over gRPC: the server is live and
    ready, a served model is ready, and its metadata lists its columns with their datatypes
    and its outputs."""
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert client.is_model_ready("iris", "1")
    assert client.get_server_metadata().name == "watchkeeper"
    meta = client.get_model_metadata("cities")
    assert [(i.name, i.datatype) for i in meta.inputs] == [("city", "BYTES"), ("x", "FP64")]
    assert list(meta.versions) == ["1"]
    iris = client.get_model_metadata("iris", as_json=True)
    assert [o["name"] for o in iris["outputs"]] == ["predictions", "probabilities"]


@pytest.mark.parametrize("datatype", list(NUMPY))
def test_numeric_tensors_answer_as_the_model_and_as_rest(
    served: GrpcWire, client: triton.InferenceServerClient, datatype: str
) -> None:
    """Promise: a [n, 4] tensor of FP32, FP64 or INT64 (tritonclient sends raw_input_contents)
    is answered with the model's own predictions, the same as REST v2 answers for the same
    values, and with its probabilities when asked for; the request id comes back."""
    wire = served.wire
    values = wire.iris_X.iloc[::7].to_numpy().astype(NUMPY[datatype])
    outputs = [triton.InferRequestedOutput(n) for n in ("predictions", "probabilities")]
    result = client.infer("iris", [tensor("input-0", values, datatype)], outputs=outputs,
                          request_id="mine-1")  # fmt: skip
    frame = pd.DataFrame(values.astype(np.float64), columns=wire.iris_X.columns)
    np.testing.assert_array_equal(result.as_numpy("predictions"), wire.iris.predict(frame))
    probabilities = result.as_numpy("probabilities")
    np.testing.assert_allclose(probabilities, wire.iris.predict_proba(frame), rtol=1e-12)
    sent = {"name": "input-0", "shape": list(values.shape), "datatype": datatype,
            "data": values.ravel().tolist()}  # fmt: skip
    rest = rest_v2(wire, "iris", [sent])
    assert result.as_numpy("predictions").tolist() == rest
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("iris", "1", "mine-1")


def test_predictions_only_unless_probabilities_are_asked(
    served: GrpcWire, client: triton.InferenceServerClient
) -> None:
    """Promise: without requested outputs (tritonclient's default) only predictions come back,
    as REST v2 does."""
    values = served.wire.iris_X.head(3).to_numpy()
    result = client.infer("iris", [tensor("input-0", values, "FP64")])
    assert [o.name for o in result.get_response().outputs] == ["predictions"]
    assert result.as_numpy("probabilities") is None


def test_bytes_tensor_for_a_string_column(
    served: GrpcWire, client: triton.InferenceServerClient
) -> None:
    """Promise: a BYTES tensor of text (non-ASCII included) feeds a Pipeline's string column,
    one tensor per column, and its text labels come back as BYTES: the model's own answer and
    REST's."""
    wire = served.wire
    X = wire.cities_X.head(30)
    city = tensor("city", np.array(X["city"].tolist(), dtype=np.object_), "BYTES")
    result = client.infer("cities", [city, tensor("x", X[["x"]].to_numpy(), "FP64")])
    answered = [v.decode() for v in result.as_numpy("predictions")]
    assert answered == wire.cities.predict(X).tolist()
    rest = rest_v2(wire, "cities", [
        {"name": "city", "shape": [len(X)], "datatype": "BYTES", "data": X["city"].tolist()},
        {"name": "x", "shape": [len(X), 1], "datatype": "FP64", "data": X["x"].tolist()},
    ])  # fmt: skip
    assert answered == rest


def test_typed_contents_are_read_like_raw_bytes(served: GrpcWire) -> None:
    """Promise: a client that sends typed ``contents`` instead of ``raw_input_contents`` (and a
    version in the request) gets the same answer; watchkeeper's generated stubs work in the
    same process as tritonclient's."""
    wire = served.wire
    X = wire.cities_X.head(5)
    request = pb.ModelInferRequest(model_name="cities", model_version="1")
    city = request.inputs.add(name="city", datatype="BYTES", shape=[5])
    city.contents.bytes_contents.extend(c.encode() for c in X["city"])
    x = request.inputs.add(name="x", datatype="FP64", shape=[5])
    x.contents.fp64_contents.extend(X["x"].tolist())
    with grpc.insecure_channel(served.target) as channel:
        response, call = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer.with_call(request)
    assert dict(call.trailing_metadata())["x-model-version"] == "1"
    raw = response.raw_output_contents[0]
    labels, pos = [], 0
    while pos < len(raw):
        size = int.from_bytes(raw[pos : pos + 4], "little")
        labels.append(raw[pos + 4 : pos + 4 + size].decode())
        pos += 4 + size
    assert labels == wire.cities.predict(X).tolist()


def test_unknown_model_is_not_found(client: triton.InferenceServerClient) -> None:
    """Promise: a model the server does not serve is NOT_FOUND with our message, for inference,
    readiness and metadata alike."""
    x = tensor("x", np.array([0.5]), "FP64")
    with pytest.raises(InferenceServerException, match="no model named 'nope'") as infer:
        client.infer("nope", [x])
    assert infer.value.status() == "StatusCode.NOT_FOUND"
    for call in (client.is_model_ready, client.get_model_metadata):
        with pytest.raises(InferenceServerException, match="no model named 'nope'") as raised:
            call("nope")
        assert raised.value.status() == "StatusCode.NOT_FOUND"


def test_bad_input_is_invalid_argument_naming_the_field(
    served: GrpcWire, client: triton.InferenceServerClient
) -> None:
    """Promise: input the signature refuses (an unseen category, a missing column) and a
    malformed tensor are INVALID_ARGUMENT with a message naming the field; watchkeeper's
    field-level details ride in the trailing metadata."""
    city = tensor("city", np.array(["oslo"], dtype=np.object_), "BYTES")
    x = tensor("x", np.array([0.5]), "FP64")
    with pytest.raises(InferenceServerException, match="'oslo' is not known") as unseen:
        client.infer("cities", [city, x])
    assert unseen.value.status() == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException, match="'city'") as missing:
        client.infer("cities", [x])
    assert missing.value.status() == "StatusCode.INVALID_ARGUMENT"

    request = pb.ModelInferRequest(model_name="cities")
    request.inputs.add(name="x", datatype="FP64", shape=[2]).contents.int64_contents.extend([1, 2])
    with grpc.insecure_channel(served.target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as wrong:
            stub.ModelInfer(request)
    error = wrong.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "input 'x' is declared FP64 but its values are in int64_contents, " \
                              "not fp64_contents"  # fmt: skip
    trailers = dict(error.trailing_metadata())
    assert trailers["x-request-id"]
    assert trailers["x-error-code"] == "malformed_request"
    assert json.loads(trailers["x-error-details-bin"]) == [
        {"field": "x", "problem": "datatype_mismatch"}
    ]


def test_a_model_fault_is_internal_without_its_text(
    served: GrpcWire, client: triton.InferenceServerClient
) -> None:
    """Promise: a model that raises is INTERNAL with the request id and never the exception's
    text."""
    inputs = [tensor("x", np.array([POISON]), "FP64"), tensor("y", np.array([0.5]), "FP64")]
    with pytest.raises(InferenceServerException, match="request id") as raised:
        client.infer("faulty", inputs)
    assert raised.value.status() == "StatusCode.INTERNAL"
    assert SECRET not in str(raised.value)


def test_calls_are_logged_and_counted_under_their_protocol(
    served: GrpcWire, client: triton.InferenceServerClient
) -> None:
    """Promise: a gRPC prediction lands in the logbook under the request id given in the
    call's metadata, and /metrics counts gRPC calls under protocol ``v2-grpc``, with the
    HTTP-style ``code`` REST would have (200, 404, 422)."""
    wire = served.wire
    values = wire.iris_X.iloc[40:43].to_numpy()
    result = client.infer("iris", [tensor("input-0", values, "FP64")],
                          headers={"x-request-id": "grpc-logged-1"})  # fmt: skip
    book = Logbook(Settings(home=served.home).resolved_logbook_url)
    now = datetime.now(UTC)

    def logged() -> object:
        table = book.read("iris", now - timedelta(hours=1), now + timedelta(hours=1))
        mine = [r for r in table.to_pylist() if r["request_id"] == "grpc-logged-1"]
        return mine if len(mine) == 3 else None

    rows = wait_for(logged, 30, "the gRPC call in the logbook")
    assert [r["prediction"] for r in rows] == result.as_numpy("predictions").tolist()
    with pytest.raises(InferenceServerException):
        client.infer("nope", [tensor("x", np.array([0.5]), "FP64")])
    metrics = httpx.get(f"{wire.url}/metrics", timeout=30).text
    assert 'watchkeeper_requests_total{code="200",model="iris",protocol="v2-grpc",version="1"}' \
        in metrics  # fmt: skip
    assert 'code="404",model="<unknown>",protocol="v2-grpc"' in metrics
    assert 'code="422",model="cities",protocol="v2-grpc",version="1"' in metrics


def test_a_prediction_timeout_is_deadline_exceeded(
    served: GrpcWire, client: triton.InferenceServerClient
) -> None:
    """Promise: a model call over its timeout (--predict-timeout-for) is DEADLINE_EXCEEDED. (Last
    in the module: the hung call keeps the faulty model busy.)"""
    inputs = [tensor("x", np.array([HANG]), "FP64"), tensor("y", np.array([0.5]), "FP64")]
    with pytest.raises(InferenceServerException) as raised:
        client.infer("faulty", inputs)
    assert raised.value.status() == "StatusCode.DEADLINE_EXCEEDED"
