"""Every error watchkeeper raises, in the shape of every protocol (``protocols/wire.py``)."""

from __future__ import annotations

import orjson
import pytest
from mlflow.exceptions import ERROR_CODE_TO_HTTP_STATUS

from watchkeeper import errors
from watchkeeper.errors import Detail, WatchkeeperError
from watchkeeper.serving.protocols.wire import Rendered, error_body, unpack


def _all(cls: type[WatchkeeperError]) -> list[type[WatchkeeperError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _all(child))]


# the tree of errors.py (other packages' subclasses, imported or not, are not the server's)
ERRORS = sorted({c for c in _all(WatchkeeperError) if c.__module__ == errors.__name__},
                key=lambda c: c.__name__)  # fmt: skip
DETAILS = [Detail("age", "expected_number", 3), Detail("*", "too_many_rows")]
DICTS = [{"field": "age", "problem": "expected_number", "row": 3},
         {"field": "*", "problem": "too_many_rows"}]  # fmt: skip


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_in_every_shape(cls: type[WatchkeeperError]) -> None:
    """Promise: KServe V1 and v2 errors are ``{"error": "<message>"}`` plus watchkeeper's code and
    details; MLflow errors carry the error code MLflow's scoring server would send, with the
    status MLflow's own table gives it (415 and 413, which MLflow has no code for, keep theirs);
    the management API keeps ``{"error": {"code", "message", "details"}}``."""
    exc = cls("what went wrong", details=DETAILS)
    for protocol in ("kserve_v1", "v2"):
        status, body = error_body(exc, protocol)
        assert status == exc.http_status
        assert orjson.loads(body) == {"error": "what went wrong", "code": exc.code,
                                      "details": DICTS}  # fmt: skip
    status, body = error_body(exc, "mlflow")
    mlflow = orjson.loads(body)
    assert mlflow["message"] == "what went wrong"
    assert (mlflow["code"], mlflow["details"]) == (exc.code, DICTS)
    if exc.http_status in (413, 415):
        assert (status, mlflow["error_code"]) == (exc.http_status, "BAD_REQUEST")
    else:
        assert status == ERROR_CODE_TO_HTTP_STATUS[mlflow["error_code"]]
        assert status == (400 if exc.http_status == 422 else exc.http_status)
    status, body = error_body(exc, "api")
    assert (status, orjson.loads(body)) == (exc.http_status, exc.to_dict())


def test_mlflow_codes_of_the_usual_failures() -> None:
    """Promise: the codes MLflow users check for: an unreadable body is BAD_REQUEST, a schema
    mismatch INVALID_PARAMETER_VALUE with MLflow's error class, a fault INTERNAL_ERROR."""

    def code(exc: WatchkeeperError) -> tuple[int, str]:
        status, body = error_body(exc, "mlflow")
        return status, orjson.loads(body)["error_code"]

    assert code(errors.MalformedRequest("x")) == (400, "BAD_REQUEST")
    assert code(errors.SchemaError("x")) == (400, "INVALID_PARAMETER_VALUE")
    assert orjson.loads(error_body(errors.SchemaError("x"), "mlflow")[1])["error_class"] == (
        "SCHEMA_ENFORCEMENT_FAILED"
    )
    assert code(errors.PredictionFailed("x")) == (500, "INTERNAL_ERROR")
    assert code(errors.PredictionTimeout("x")) == (504, "DEADLINE_EXCEEDED")
    assert code(errors.ModelNotFound("x")) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_rendered_headers_replace_the_defaults() -> None:
    """Promise: an answer with headers of its own (binary v2) replaces the default ones of the
    same names and keeps the rest."""
    defaults = [(b"content-type", b"application/json"), (b"x-request-id", b"r1")]
    assert unpack(b"{}", defaults) == (b"{}", defaults)
    rendered = Rendered(b"{}xy", [(b"content-type", b"application/octet-stream"),
                                  (b"inference-header-content-length", b"2")])  # fmt: skip
    body, headers = unpack(rendered, defaults)
    assert body == b"{}xy"
    assert headers == [(b"x-request-id", b"r1"), *rendered.headers]
