"""The OpenAPI 3.1 document of the server, and a self-contained docs page (no CDN)."""

from __future__ import annotations

import html as html_lib
from typing import Any

from watchkeeper import __version__

_DETAILS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "row": {"type": "integer"},
            "field": {"type": "string"},
            "problem": {"type": "string"},
        },
    },
}
_ERROR = {  # the management API's errors
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": _DETAILS,
            },
        }
    },
}
_TENSOR_ERROR = {  # KServe V1 and Open Inference Protocol v2
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}, "details": _DETAILS},
}
_MLFLOW_ERROR = {
    "type": "object",
    "required": ["error_code", "message"],
    "properties": {
        "error_code": {"type": "string"},
        "message": {"type": "string"},
        "error_class": {"type": "string"},
        "code": {"type": "string"},
        "details": _DETAILS,
    },
}
_ROW = {"oneOf": [{"type": "object"}, {"type": "array"}, {"type": ["number", "string", "boolean"]}]}
_V1_REQUEST = {
    "type": "object",
    "properties": {
        "instances": {"type": "array", "items": _ROW},
        "inputs": {"type": "object", "additionalProperties": {"type": "array"}},
        "return_probabilities": {"type": "boolean"},
    },
}
_V1_RESPONSE = {
    "type": "object",
    "required": ["predictions", "model", "model_version", "request_id"],
    "properties": {
        "predictions": {"type": "array"},
        "probabilities": {"type": "array", "items": {"type": "array"}},
        "model": {"type": "string"},
        "model_version": {"type": "string"},
        "request_id": {"type": "string"},
    },
}
_MLFLOW_REQUEST = {
    "type": "object",
    "properties": {
        "dataframe_split": {"type": "object"},
        "dataframe_records": {"type": "array", "items": {"type": "object"}},
        "instances": {"type": "array"},
        "inputs": {},
        "params": {"type": "object"},
    },
}
_TENSOR = {  # "data", or "parameters": {"binary_data_size": N} (binary tensor data extension)
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}
_V2_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "inputs": {"type": "array", "items": _TENSOR},
        "outputs": {"type": "array", "items": {"type": "object"}},
        "parameters": {"type": "object"},
    },
}
_V2_RESPONSE = {
    "type": "object",
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "outputs": {"type": "array", "items": _TENSOR},
    },
}
_MODEL = {
    "name": "model",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "Model name, optionally pinned: NAME@VERSION, NAME@STAGE, NAME@ALIAS",
}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "v", "in": "path", "required": True, "schema": {"type": "string"}}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int, shape: dict[str, Any] = _ERROR) -> dict[str, Any]:
    return {str(c): {"description": "error", **_json_body(shape)} for c in codes}


def _shape(tag: str) -> dict[str, Any]:
    """The error shape of the routes of ``tag`` (see ``protocols/wire.py``)."""
    if tag == "MLflow":
        return _MLFLOW_ERROR
    return _TENSOR_ERROR if tag in ("KServe V1", "Open Inference Protocol v2") else _ERROR


def _post(
    summary: str, request: dict[str, Any], response: dict[str, Any], params: list[Any], *, tag: str
) -> dict[str, Any]:
    shape = _shape(tag)
    return {
        "post": {
            "summary": summary,
            "tags": [tag],
            "parameters": params,
            "requestBody": {"required": True, **_json_body(request)},
            "responses": {
                "200": {"description": "predictions", **_json_body(response)},
                **_errors(400, 404, 413, 415, 422, 500, 503, 504, shape=shape),
            },
        }
    }


def _get(summary: str, params: list[Any] | None = None, *, tag: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "tags": [tag],
            "parameters": params or [],
            "responses": {"200": {"description": "ok"}, **_errors(404, 503, shape=_shape(tag))},
        }
    }


def document() -> dict[str, Any]:
    """The OpenAPI document served at ``/openapi.json``."""
    paths: dict[str, Any] = {
        "/v1/models": _get("Models being served", tag="KServe V1"),
        "/v1/models/{model}": _get("One served model", [_MODEL], tag="KServe V1"),
        "/v1/models/{model}:predict": _post(
            "Predict (KServe V1)", _V1_REQUEST, _V1_RESPONSE, [_MODEL], tag="KServe V1"
        ),
        "/invocations": _post(
            "Predict (MLflow scoring protocol; JSON or text/csv)",
            _MLFLOW_REQUEST,
            {"type": "object", "properties": {"predictions": {}}},
            [],
            tag="MLflow",
        ),
        "/ping": _get("MLflow liveness", tag="MLflow"),
        "/health": _get("MLflow liveness", tag="MLflow"),
        "/version": _get("Server version", tag="MLflow"),
        "/v2": _get("Server metadata (v2)", tag="Open Inference Protocol v2"),
        "/v2/health/live": _get("Server live", tag="Open Inference Protocol v2"),
        "/v2/health/ready": _get("Server ready", tag="Open Inference Protocol v2"),
        "/v2/models/{name}": _get("Model metadata", [_NAME], tag="Open Inference Protocol v2"),
        "/v2/models/{name}/ready": _get("Model ready", [_NAME], tag="Open Inference Protocol v2"),
        "/v2/models/{name}/infer": _post(
            "Inference (v2)", _V2_REQUEST, _V2_RESPONSE, [_NAME], tag="Open Inference Protocol v2"
        ),
        "/v2/models/{name}/versions/{v}/infer": _post(
            "Inference on a version (v2)",
            _V2_REQUEST,
            _V2_RESPONSE,
            [_NAME, _VERSION],
            tag="Open Inference Protocol v2",
        ),
        "/healthz": _get("Process up", tag="Operations"),
        "/readyz": _get("Models loaded", tag="Operations"),
        "/metrics": _get("Prometheus metrics", tag="Operations"),
        "/api/v1/models": _get("Registered models", tag="Registry"),
        "/api/v1/models/{name}": _get("A model and its versions", [_NAME], tag="Registry"),
        "/api/v1/models/{name}/history": _get("Audit trail", [_NAME], tag="Registry"),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "watchkeeper", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR, "TensorError": _TENSOR_ERROR, "MLflowError": _MLFLOW_ERROR}
        },
    }


def html(doc: dict[str, Any]) -> str:
    """A plain page listing every operation; the full schema is at /openapi.json."""
    rows = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>"
                f"{html_lib.escape(path)}</code></td><td>{html_lib.escape(op['summary'])}</td>"
                f"<td>{html_lib.escape(', '.join(op['tags']))}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>watchkeeper API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:.2em 1em}</style></head>"
        f"<body><h1>watchkeeper {html_lib.escape(doc['info']['version'])} API</h1>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"
        f"<table><tr><th>method</th><th>path</th><th>what</th><th>group</th></tr>{''.join(rows)}"
        "</table></body></html>"
    )
