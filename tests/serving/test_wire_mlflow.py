"""MLflow's own scoring-server client against ``/invocations`` of a real ``watchkeeper serve``
process: it scores, and when a request is refused it surfaces our message, in MLflow's error
shape with the status MLflow's own table gives that error code."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.serving.wire_server import Wire, wire_server


@pytest.fixture(scope="module")
def mlflow_client() -> Any:
    """MLflow's ScoringServerClient class (importing mlflow warns about its own type hints)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mlflow.pyfunc.scoring_server.client import ScoringServerClient
    return ScoringServerClient


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    with wire_server(Path(tmp_path_factory.mktemp("wire-mlflow"))) as served:
        yield served


def mlflow_status(error_code: str) -> int:
    """The HTTP status MLflow's own table gives an error code."""
    from mlflow.exceptions import ERROR_CODE_TO_HTTP_STATUS

    return ERROR_CODE_TO_HTTP_STATUS[error_code]


def test_mlflow_client_scores(wire: Wire, mlflow_client: Any) -> None:
    """Promise: MLflow's client waits for the server (/ping) and scores a DataFrame through
    /invocations, getting the model's own predictions."""
    client = mlflow_client("127.0.0.1", wire.port)
    client.wait_server_ready(timeout=30)
    X = wire.iris_X.sample(20, random_state=0)
    answer = client.invoke(X)
    predictions = answer.get_predictions(predictions_format="ndarray")
    np.testing.assert_array_equal(predictions, wire.iris.predict(X))


def test_mlflow_client_surfaces_our_message(wire: Wire, mlflow_client: Any) -> None:
    """Promise: a request that does not match the signature fails in MLflow's client with our
    message, as MLflow's scoring server would answer it: 400 INVALID_PARAMETER_VALUE,
    SCHEMA_ENFORCEMENT_FAILED, with watchkeeper's field-level details beside."""
    client = mlflow_client("127.0.0.1", wire.port)
    X = wire.iris_X.head(3).astype(object)
    X.loc[X.index[1], "petal_width"] = "wide"
    with pytest.raises(Exception, match=r"error code 400.*petal_width") as refused:
        client.invoke(X)
    assert "INVALID_PARAMETER_VALUE" in str(refused.value)
    split = json.loads(X.to_json(orient="split"))
    r = httpx.post(f"{wire.url}/invocations", json={"dataframe_split": split})
    body = r.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert r.status_code == mlflow_status(body["error_code"]) == 400
    assert body["error_class"] == "SCHEMA_ENFORCEMENT_FAILED"
    assert "petal_width" in body["message"]
    assert body["code"] == "schema_error"
    assert {"field": "petal_width", "problem": "expected_number", "row": 1} in body["details"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b'{"data": [[1, 2, 3, 4]]}', "application/json", 400, "exactly one of the fields"),
        (b"1,2", "text/plain", 415, "send application/json or text/csv"),
    ],
)
def test_malformed_requests_answer_bad_request(
    wire: Wire, content: bytes, content_type: str, status: int, message: str
) -> None:
    """Promise: a body MLflow's scoring server could not read is answered ``BAD_REQUEST`` with
    our message (415 for a content type it does not take, as MLflow's server answers)."""
    r = httpx.post(f"{wire.url}/invocations", content=content,
                   headers={"content-type": content_type})  # fmt: skip
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error_code"] == "BAD_REQUEST"
    assert message in body["message"]
    assert isinstance(body["details"], list)
