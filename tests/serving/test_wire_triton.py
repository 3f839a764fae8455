"""Triton's own HTTP client (``tritonclient.http``), used as its users use it, against a real
``watchkeeper serve`` process: binary tensor data (its default) and JSON, both ways, for
numeric and BYTES tensors, and errors it can read and print."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.serving.wire_server import Wire, wire_server

NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64}


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    with wire_server(Path(tmp_path_factory.mktemp("wire-triton"))) as served:
        yield served


@pytest.fixture(scope="module")
def client(wire: Wire) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=wire.host_port)
    yield client
    client.close()


def requested(mode: str) -> list[triton.InferRequestedOutput] | None:
    """No outputs (tritonclient then asks for every output as binary data), or both outputs
    asked for as binary data or as JSON."""
    if mode == "default":
        return None
    binary = mode == "binary"
    return [triton.InferRequestedOutput(name, binary_data=binary)
            for name in ("predictions", "probabilities")]  # fmt: skip


def came_binary(result: triton.InferResult, name: str) -> bool:
    return "binary_data_size" in (result.get_output(name).get("parameters") or {})


@pytest.mark.parametrize("outputs", ["default", "binary", "json"])
@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("datatype", list(NUMPY))
def test_numeric_tensors_in_every_encoding(
    wire: Wire, client: triton.InferenceServerClient, datatype: str, binary_in: bool, outputs: str
) -> None:
    """Promise: a [n, 4] tensor of FP32, FP64 or INT64, sent as binary data (tritonclient's
    default) or JSON, is answered with the model's own predictions (and probabilities when
    asked for), as binary data or JSON as the request asked."""
    values = wire.iris_X.iloc[::10].to_numpy().astype(NUMPY[datatype])
    tensor = triton.InferInput("input-0", list(values.shape), datatype)
    tensor.set_data_from_numpy(values, binary_data=binary_in)
    result = client.infer("iris", [tensor], outputs=requested(outputs))
    frame = pd.DataFrame(values.astype(np.float64), columns=wire.iris_X.columns)
    np.testing.assert_array_equal(result.as_numpy("predictions"), wire.iris.predict(frame))
    assert came_binary(result, "predictions") == (outputs != "json")
    if outputs != "default":
        probabilities = result.as_numpy("probabilities")
        np.testing.assert_allclose(probabilities, wire.iris.predict_proba(frame), rtol=1e-12)
        assert came_binary(result, "probabilities") == (outputs == "binary")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_bytes_tensor_for_a_string_column(
    wire: Wire, client: triton.InferenceServerClient, binary: bool
) -> None:
    """Promise: a BYTES tensor of text (non-ASCII included) feeds a model's string column, one
    tensor per column, and text labels come back as BYTES, binary or JSON alike."""
    X = wire.cities_X.head(25)
    city = triton.InferInput("city", [len(X)], "BYTES")
    city.set_data_from_numpy(np.array(X["city"].tolist(), dtype=np.object_), binary_data=binary)
    x = triton.InferInput("x", [len(X), 1], "FP64")
    x.set_data_from_numpy(X[["x"]].to_numpy(), binary_data=binary)
    outputs = [triton.InferRequestedOutput("predictions", binary_data=binary)]
    result = client.infer("cities", [city, x], outputs=outputs)
    answered = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predictions")]
    assert answered == wire.cities.predict(X).tolist()
    assert came_binary(result, "predictions") == binary


def test_errors_reach_the_client_as_our_message(
    wire: Wire, client: triton.InferenceServerClient
) -> None:
    """Promise: a refused request raises tritonclient's InferenceServerException whose message
    is ours and which prints (an unseen category, an unknown model, binary data whose size does
    not match its shape)."""
    city = triton.InferInput("city", [1], "BYTES")
    city.set_data_from_numpy(np.array(["oslo"], dtype=np.object_))
    x = triton.InferInput("x", [1], "FP64")
    x.set_data_from_numpy(np.array([0.5]))
    with pytest.raises(InferenceServerException, match="'oslo' is not known") as unseen:
        client.infer("cities", [city, x])
    assert unseen.value.status() == "422"
    assert "'oslo' is not known" in unseen.value.message()
    assert "'oslo' is not known" in str(unseen.value)

    with pytest.raises(InferenceServerException, match="nope") as unknown:
        client.infer("nope", [x])
    assert unknown.value.status() == "404"
    with pytest.raises(InferenceServerException, match="nope"):
        client.get_model_metadata("nope")

    values = wire.iris_X.head(2).to_numpy()
    short = triton.InferInput("input-0", [2, 4], "FP64")
    short.set_data_from_numpy(values)
    short.set_shape([3, 4])  # declares 96 bytes; 64 are sent
    with pytest.raises(InferenceServerException, match="takes 96 bytes but its binary_data_size "
                       "is 64") as mismatch:  # fmt: skip
        client.infer("iris", [short])
    assert mismatch.value.status() == "400"


def test_health_and_metadata(wire: Wire, client: triton.InferenceServerClient) -> None:
    """Promise: tritonclient's health and metadata calls work, and the server says it speaks
    the binary tensor data extension."""
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("iris")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    inputs = client.get_model_metadata("cities")["inputs"]
    assert [(i["name"], i["datatype"]) for i in inputs] == [("city", "BYTES"), ("x", "FP64")]
