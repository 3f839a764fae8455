"""What every wire protocol hands back besides a plain JSON answer: an answer with headers of its
own, and errors in the shape of the protocol the request came in.

Error bodies, by protocol (``code`` and ``details`` are watchkeeper's, kept beside the
protocol's own fields, which every client of these protocols ignores)::

    KServe V1, Open Inference Protocol v2   {"error": "<message>", "code": ..., "details": [...]}
    MLflow scoring (/invocations)            {"error_code": "BAD_REQUEST", "message": "<message>",
                                              "code": ..., "details": [...]}
    management API (/api/v1/...)             {"error": {"code", "message", "details"}}
    Open Inference Protocol over gRPC        a gRPC status and the message; code and details
                                             in trailing metadata (``serving/grpc_service.py``)

``details`` is a list of ``{"field", "problem", "row"?}``. MLflow's ``error_code`` is the one its
own scoring server would send for that kind of failure, and the status follows MLflow's table
for it: a request that does not match the signature is ``400 INVALID_PARAMETER_VALUE`` with
``"error_class": "SCHEMA_ENFORCEMENT_FAILED"`` there (``422`` on the other protocols).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchkeeper.errors import SchemaError, WatchkeeperError
from watchkeeper.serving.protocols._json import dumps

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Rendered:
    """An answer with headers of its own, which replace the default ones of the same names."""

    body: bytes
    headers: Headers


def unpack(rendered: bytes | Rendered, headers: Headers) -> tuple[bytes, Headers]:
    """The body and the headers to send: ``headers`` with those ``rendered`` sets replaced."""
    if isinstance(rendered, bytes):
        return rendered, headers
    names = {name for name, _ in rendered.headers}
    return rendered.body, [h for h in headers if h[0] not in names] + rendered.headers


# MLflow's ErrorCode names, by watchkeeper's status for the error (INTERNAL_ERROR otherwise)
_MLFLOW_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_CONFLICT",
    413: "BAD_REQUEST",
    415: "BAD_REQUEST",
    422: "INVALID_PARAMETER_VALUE",
    501: "NOT_IMPLEMENTED",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _details(exc: WatchkeeperError) -> list[dict[str, object]]:
    return [d.to_dict() for d in exc.details]


def _tensor_error(exc: WatchkeeperError) -> tuple[int, dict[str, Any]]:
    return exc.http_status, {"error": exc.message, "code": exc.code, "details": _details(exc)}


def _mlflow_error(exc: WatchkeeperError) -> tuple[int, dict[str, Any]]:
    status = exc.http_status
    out: dict[str, Any] = {"error_code": _MLFLOW_CODES.get(status, "INTERNAL_ERROR")}
    out["message"] = exc.message
    if status == 422:  # MLflow sends INVALID_PARAMETER_VALUE with 400
        status = 400
    if isinstance(exc, SchemaError):
        out["error_class"] = "SCHEMA_ENFORCEMENT_FAILED"
    out["code"], out["details"] = exc.code, _details(exc)
    return status, out


def _api_error(exc: WatchkeeperError) -> tuple[int, dict[str, Any]]:
    return exc.http_status, exc.to_dict()


_SHAPES: dict[str, Callable[[WatchkeeperError], tuple[int, dict[str, Any]]]] = {
    "kserve_v1": _tensor_error,
    "v2": _tensor_error,
    "v2-grpc": _tensor_error,  # read back by grpc_service.py: status code, message, trailers
    "mlflow": _mlflow_error,
    "api": _api_error,
}


def error_body(exc: WatchkeeperError, protocol: str = "api") -> tuple[int, bytes]:
    """The status and body of ``exc`` in the error shape of ``protocol`` (``kserve_v1``,
    ``mlflow``, ``v2``, or ``api`` for the management API)."""
    status, body = _SHAPES[protocol](exc)
    return status, dumps(body)
