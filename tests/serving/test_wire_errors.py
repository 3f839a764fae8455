"""Each protocol's routes answer errors in that protocol's own shape (KServe V1 and the Open
Inference Protocol: ``{"error": "<message>"}``), with watchkeeper's code and field-level details
beside; the management API keeps ``{"error": {"code", "message", "details"}}``; and a server
fault never shows its exception text. Against a real ``watchkeeper serve`` process."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.test_requests import POISON, SECRET
from tests.serving.wire_server import Wire, wire_server


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    with wire_server(Path(tmp_path_factory.mktemp("wire-errors"))) as served:
        yield served


def tensor_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The body of a KServe V1 or v2 error, checked for its shape."""
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error", "code", "details"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["code"] == code
    return body


def test_kserve_v1_errors(wire: Wire) -> None:
    """Promise: KServe V1 routes answer ``{"error": "<message>"}`` for a malformed body, a
    schema mismatch (with the field and row in ``details``) and an unknown model, prediction
    and model routes alike."""
    url = f"{wire.url}/v1/models"
    tensor_error(httpx.post(f"{url}/iris:predict", content=b"{not json"), 400,
                 "malformed_request")  # fmt: skip
    row = wire.iris_X.head(1).to_dict(orient="records")[0]
    body = tensor_error(
        httpx.post(f"{url}/iris:predict", json={"instances": [row, {**row, "petal_width": "x"}]}),
        422,
        "schema_error",
    )
    assert "petal_width" in body["error"]
    assert {"field": "petal_width", "problem": "expected_number", "row": 1} in body["details"]
    assert "nope" in tensor_error(httpx.get(f"{url}/nope"), 404, "model_not_found")["error"]
    missing = httpx.post(f"{url}/nope:predict", json={"instances": [row]})
    assert "nope" in tensor_error(missing, 404, "model_not_found")["error"]


def test_open_inference_errors(wire: Wire) -> None:
    """Promise: v2 routes answer ``{"error": "<message>"}``, inference and metadata alike; a
    compressed body is refused (415), not misread."""
    url = f"{wire.url}/v2/models"
    body = tensor_error(httpx.post(f"{url}/iris/infer", json={"inputs": [{"name": "x"}]}), 400,
                        "malformed_request")  # fmt: skip
    assert "lacks shape, datatype, data" in body["error"]
    tensor_error(httpx.get(f"{url}/nope"), 404, "model_not_found")
    tensor_error(httpx.get(f"{url}/nope/ready"), 404, "model_not_found")
    gz = httpx.post(f"{url}/iris/infer", content=gzip.compress(b"{}"),
                    headers={"content-encoding": "gzip"})  # fmt: skip
    assert "uncompressed" in tensor_error(gz, 415, "unsupported_media_type")["error"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/faulty:predict", {"instances": [{"x": POISON, "y": 0.5}]}),
        (
            "/v2/models/faulty/infer",
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [POISON]},
                        {"name": "y", "shape": [1], "datatype": "FP64", "data": [0.5]}]},
        ),
    ],
)  # fmt: skip
def test_a_model_fault_shows_the_request_id_not_the_exception(
    wire: Wire, path: str, body: dict[str, Any]
) -> None:
    """Promise: a model that raises answers 500 in the protocol's shape, naming the request id
    and never the exception's text."""
    r = httpx.post(wire.url + path, json=body)
    error = tensor_error(r, 500, "prediction_failed")["error"]
    assert error.endswith(f"request id {r.headers['x-request-id']}")
    assert SECRET not in r.text
    assert "RuntimeError" not in r.text


def test_the_management_api_keeps_its_shape(wire: Wire) -> None:
    """Promise: /api/v1 errors stay ``{"error": {"code", "message", "details"}}``."""
    r = httpx.get(f"{wire.url}/api/v1/models/nope")
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "model_not_found"
    assert "nope" in error["message"]
    assert error["details"] == []


def test_an_unknown_route_under_a_protocol_answers_in_its_shape(wire: Wire) -> None:
    """Promise: a path nothing serves under ``/v1`` or ``/v2`` (``/v2/repository/index``,
    which tritonclient may call) is a 404 in that protocol's error shape, naming the path,
    not a plain-text page its clients cannot decode."""
    for method, path in (("GET", "/v2/repository/index"), ("POST", "/v1/nothing/here")):
        body = tensor_error(httpx.request(method, f"{wire.url}{path}"), 404, "not_found")
        assert path in body["error"]
