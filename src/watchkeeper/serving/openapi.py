"""The OpenAPI 3.1 document of the server, generated from the routes it serves, and a
self-contained docs page (no CDN).

:func:`document` walks the app's Starlette routes, adds the prediction routes that
``serving/fast.py`` answers in front of the router (:data:`PREDICTION_ROUTES`), and describes
each (method, path) from :data:`OPERATIONS`. So the document cannot drift from the app: a served
route missing from the table still appears, marked ``x-undescribed``, and a table entry nothing
serves is left out (``tests/serving/test_openapi.py`` fails on either).

Left out by rule (:func:`is_api`): the dashboard (paths under ``/ui``: pages and form posts for
a browser, not an API) and the catch-all routes that answer paths nothing serves with a 404 in a
protocol's error shape (a ``{…:path}`` parameter). HEAD comes with every GET and is not listed.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Environment
from starlette.routing import BaseRoute, Mount, Route

from watchkeeper import __version__
from watchkeeper.registry.deployments import Deployment, DeploymentEvent
from watchkeeper.registry.entities import AuditEvent, ModelVersion, RegisteredModel
from watchkeeper.templating import environment

Schema = dict[str, Any]

# ----------------------------------------------------------------------------- schemas

_DETAILS = {"type": "array", "items": {"type": "object", "properties": {
    "row": {"type": "integer"}, "field": {"type": "string"},
    "problem": {"type": "string"}}}}  # fmt: skip
_ERROR = {  # the management API's errors
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message", "details"],
                             "properties": {"code": {"type": "string"},
                                            "message": {"type": "string"},
                                            "details": _DETAILS}}},
}  # fmt: skip
_TENSOR_ERROR = {  # KServe V1 and Open Inference Protocol v2
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}, "details": _DETAILS},
}
_MLFLOW_ERROR = {"type": "object", "required": ["error_code", "message"], "properties": {
    "error_code": {"type": "string"}, "message": {"type": "string"},
    "error_class": {"type": "string"}, "code": {"type": "string"},
    "details": _DETAILS}}  # fmt: skip
_ROW = {"oneOf": [{"type": "object"}, {"type": "array"}, {"type": ["number", "string", "boolean"]}]}
_V1_REQUEST = {"type": "object", "properties": {
    "instances": {"type": "array", "items": _ROW},
    "inputs": {"type": "object", "additionalProperties": {"type": "array"}},
    "return_probabilities": {"type": "boolean"}}}  # fmt: skip
_V1_RESPONSE = {
    "type": "object",
    "required": ["predictions", "model", "model_version", "request_id"],
    "properties": {"predictions": {"type": "array"},
                   "probabilities": {"type": "array", "items": {"type": "array"}},
                   "model": {"type": "string"}, "model_version": {"type": "string"},
                   "request_id": {"type": "string"}},
}  # fmt: skip
_MLFLOW_REQUEST = {"type": "object", "properties": {
    "dataframe_split": {"type": "object"},
    "dataframe_records": {"type": "array", "items": {"type": "object"}},
    "instances": {"type": "array"}, "inputs": {}, "params": {"type": "object"}}}  # fmt: skip
_TENSOR = {  # "data", or "parameters": {"binary_data_size": N} (binary tensor data extension)
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                   "shape": {"type": "array", "items": {"type": "integer"}},
                   "data": {"type": "array"}, "parameters": {"type": "object"}},
}  # fmt: skip
_V2_REQUEST = {"type": "object", "required": ["inputs"], "properties": {
    "id": {"type": "string"}, "inputs": {"type": "array", "items": _TENSOR},
    "outputs": {"type": "array", "items": {"type": "object"}},
    "parameters": {"type": "object"}}}  # fmt: skip
_V2_RESPONSE = {"type": "object", "properties": {
    "model_name": {"type": "string"}, "model_version": {"type": "string"},
    "id": {"type": "string"}, "outputs": {"type": "array", "items": _TENSOR}}}  # fmt: skip
_V2_MODEL = {"type": "object", "required": ["name", "versions", "platform", "inputs", "outputs"],
             "properties": {"name": {"type": "string"},
                            "versions": {"type": "array", "items": {"type": "string"}},
                            "platform": {"type": "string"},
                            "inputs": {"type": "array", "items": _TENSOR},
                            "outputs": {"type": "array", "items": _TENSOR}}}  # fmt: skip
_FEEDBACK_ITEM = {"type": "object", "required": ["request_id"], "properties": {
    "request_id": {"type": "string"}, "row": {"type": "integer"}, "label": {},
    "outcome": {"type": "object", "additionalProperties": {"type": "number"}},
    "timestamp": {"type": "string", "format": "date-time"}}}  # fmt: skip
_FEEDBACK = {"oneOf": [_FEEDBACK_ITEM, {"type": "array", "items": _FEEDBACK_ITEM},
                       {"type": "object", "required": ["feedback"], "properties": {
                           "feedback": {"type": "array", "items": _FEEDBACK_ITEM}}}]}  # fmt: skip


def _props(required: Sequence[str] = (), **types_: str | Schema) -> Schema:
    """An object schema: ``name="string"`` or ``name={...schema...}``."""
    props = {k: {"type": v} if isinstance(v, str) else v for k, v in types_.items()}
    return {"type": "object", "required": list(required), "properties": props}


def _array(item: Schema) -> Schema:
    return {"type": "array", "items": item}


def _schema_of(cls: type) -> Schema:
    """The JSON shape of a registry value object's ``to_dict()``, from its dataclass fields."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: _json_type(hints[f.name]) for f in dataclasses.fields(cls)}
    return {"type": "object", "required": list(fields), "properties": fields}


def _json_type(hint: Any) -> Schema:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [_json_type(a) for a in args if a is not type(None)]
        return {"anyOf": [*inner, {"type": "null"}]} if type(None) in args else {"anyOf": inner}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean",
              dict: "object", list: "array", tuple: "array"}  # fmt: skip
    if hint is datetime:
        return {"type": "string", "format": "date-time"}
    kind = simple.get(origin or hint)
    return {} if kind is None else {"type": kind}  # Any: any JSON value


COMPONENTS: dict[str, Schema] = {
    "Error": _ERROR,
    "TensorError": _TENSOR_ERROR,
    "MLflowError": _MLFLOW_ERROR,
    **{cls.__name__: _schema_of(cls)
       for cls in (RegisteredModel, ModelVersion, AuditEvent, Deployment, DeploymentEvent)},
}  # fmt: skip


def _ref(name: str) -> Schema:
    assert name in COMPONENTS, name
    return {"$ref": f"#/components/schemas/{name}"}


_MODEL, _VERSION, _AUDIT = _ref("RegisteredModel"), _ref("ModelVersion"), _ref("AuditEvent")
_DEPLOYMENT, _DEPLOYMENT_EVENT = _ref("Deployment"), _ref("DeploymentEvent")
_STATUS = _props(("deployment", "checks"), deployment={"type": ["object", "null"]},
                 checks=_array({"type": "object"}),
                 next_step_in_seconds={"type": ["number", "null"]},
                 candidate_requests="integer", shadow_dropped="integer",
                 ab={"type": ["object", "null"]},
                 ab_sample_size_per_arm={"type": ["integer", "null"]})  # fmt: skip
_REASON = _props(reason="string")

# ----------------------------------------------------------------------------- operations


@dataclass(frozen=True, kw_only=True)
class Op:
    """How one (method, path) is described: request body, success body, error codes."""

    summary: str
    tag: str
    body: Schema | None = None  # the JSON request body, if it takes one
    reply: Schema | None = None  # the success body (None: not described further)
    status: int = 200
    media: str = "application/json"  # of the success body
    errors: tuple[int, ...] = ()  # answered in the error shape of the tag's protocol
    role: str | None = None  # the token role needed once authentication is configured


_V1, _ML, _V2 = "KServe V1", "MLflow", "Open Inference Protocol v2"
_OPS, _REG, _DEP, _DOC = "Operations", "Registry", "Deployments", "Documentation"
_SHAPES = {_V1: _ref("TensorError"), _V2: _ref("TensorError"), _ML: _ref("MLflowError")}
_LOOKUP = (404, 503)  # a model reference nothing serves; the store unreachable
_PREDICT_ERRORS = (400, 401, 404, 413, 415, 422, 500, 503, 504)
_DATA_PLANE_ROLES = ("client", "feedback")  # asked for only by serve --require-token
_READ = (401, 403, 404, 503)
_WRITE = (400, 401, 403, 404, 409, 413, 415, 503)
_M, _D = "/api/v1/models", "/api/v1/deployments"
_predict = functools.partial(Op, errors=_PREDICT_ERRORS, role="client")
_read = functools.partial(Op, errors=_READ, role="reader")  # the management API
_write = functools.partial(Op, errors=_WRITE, role="deployer")

PREDICTION_ROUTES = (  # answered by serving/fast.py before the router sees the request
    ("POST", "/v1/models/{model}:predict"),
    ("POST", "/invocations"),
    ("POST", "/v2/models/{name}/infer"),
    ("POST", "/v2/models/{name}/versions/{v}/infer"),
)

OPERATIONS: dict[tuple[str, str], Op] = {
    ("POST", "/v1/models/{model}:predict"): _predict(
        summary="Predict (KServe V1)", tag=_V1, body=_V1_REQUEST, reply=_V1_RESPONSE),
    ("POST", "/invocations"): _predict(
        summary="Predict (MLflow scoring protocol; JSON or text/csv)", tag=_ML,
        body=_MLFLOW_REQUEST, reply=_props(predictions={})),
    ("POST", "/v2/models/{name}/infer"): _predict(
        summary="Inference (v2)", tag=_V2, body=_V2_REQUEST, reply=_V2_RESPONSE),
    ("POST", "/v2/models/{name}/versions/{v}/infer"): _predict(
        summary="Inference on a version (v2)", tag=_V2, body=_V2_REQUEST, reply=_V2_RESPONSE),
    ("GET", "/v1/models"): Op(summary="Models being served", tag=_V1,
                              reply=_props(["models"], models=_array({"type": "string"}))),
    ("GET", "/v1/models/{model}"): Op(summary="One served model", tag=_V1, errors=_LOOKUP,
                                      reply=_props(["name", "version", "ready"], name="string",
                                                   version="string", ready="boolean")),
    ("POST", "/v1/feedback"): Op(
        summary="Labels and outcomes for earlier predictions, joined by request id",
        tag="Feedback",
        body=_FEEDBACK, reply=_props(["accepted"], accepted="integer"),
        errors=(400, 401, 413, 415, 422, 503), role="feedback"),
    ("GET", "/ping"): Op(summary="MLflow liveness (503 until production versions load)", tag=_ML),
    ("GET", "/health"): Op(summary="MLflow liveness (as /ping)", tag=_ML),
    ("GET", "/version"): Op(summary="Server version", tag=_ML, media="text/plain",
                            reply={"type": "string"}),
    ("GET", "/v2"): Op(summary="Server metadata (v2)", tag=_V2, reply=_props(
        ["name", "version", "extensions"], name="string", version="string",
        extensions=_array({"type": "string"}))),
    ("GET", "/v2/health/live"): Op(summary="Server live", tag=_V2,
                                   reply=_props(["live"], live="boolean")),
    ("GET", "/v2/health/ready"): Op(summary="Server ready", tag=_V2,
                                    reply=_props(["ready"], ready="boolean", live="boolean")),
    ("GET", "/v2/models/{name}"): Op(summary="Model metadata", tag=_V2, reply=_V2_MODEL,
                                     errors=_LOOKUP),
    ("GET", "/v2/models/{name}/ready"): Op(summary="Model ready", tag=_V2, errors=_LOOKUP,
                                           reply=_props(["name", "ready"], name="string",
                                                        ready="boolean")),
    ("GET", "/v2/models/{name}/versions/{v}"): Op(
        summary="Metadata of a version", tag=_V2, reply=_V2_MODEL, errors=_LOOKUP),
    ("GET", "/v2/models/{name}/versions/{v}/ready"): Op(
        summary="Version ready", tag=_V2, errors=_LOOKUP,
        reply=_props(["name", "ready"], name="string", ready="boolean")),
    ("GET", "/healthz"): Op(summary="Process up", tag=_OPS, reply=_props(["status"],
                                                                         status="string")),
    ("GET", "/readyz"): Op(summary="Production versions loaded (503 until then)", tag=_OPS,
                           reply=_props(["ready", "models"], ready="boolean", models="object")),
    ("GET", "/metrics"): Op(summary="Prometheus metrics", tag=_OPS, media="text/plain",
                            reply={"type": "string"}),
    ("GET", "/openapi.json"): Op(summary="This document", tag=_DOC, reply={"type": "object"}),
    ("GET", "/docs"): Op(summary="The operations as a page", tag=_DOC, media="text/html",
                         reply={"type": "string"}),
    ("GET", _M): _read(summary="Registered models", tag=_REG, reply=_array(_MODEL)),
    ("GET", _M + "/{name}"): _read(summary="A model and its versions", tag=_REG,
                                   reply={"allOf": [_MODEL, _props(["versions"],
                                                                   versions=_array(_VERSION))]}),
    ("POST", _M + "/{name}/versions"): _write(
        summary="Register a version from a path the server can read", tag=_REG,
        body=_props(["path"], path="string", flavor="string", metrics="object", tags="object",
                    run_id="string", run_url="string", data_uri="string", reference="string",
                    description="string", stage="string"),
        reply=_VERSION, status=201, role="admin"),
    ("GET", _M + "/{name}/versions/{ref}"): _read(
        summary="One version, by number, stage or alias", tag=_REG, reply=_VERSION),
    ("POST", _M + "/{name}/versions/{version}/stage"): _write(
        summary="Move a version to a stage", tag=_REG, reply=_VERSION,
        body=_props(["stage"], stage="string", reason="string")),
    ("PUT", _M + "/{name}/aliases/{alias}"): _write(
        summary="Point an alias at a version", tag=_REG,
        body=_props(["version"], version="integer"), reply=_VERSION),
    ("DELETE", _M + "/{name}/aliases/{alias}"): _write(
        summary="Remove an alias", tag=_REG, reply=_props(["removed"], removed="string")),
    ("POST", _M + "/{name}/rollback"): _write(
        summary="Production back to the previous production version", tag=_REG, body=_REASON,
        reply=_VERSION),
    ("GET", _M + "/{name}/history"): _read(summary="Audit trail", tag=_REG,
                                           reply=_array(_AUDIT)),
    ("GET", _D): _read(summary="Every deployment", tag=_DEP, reply=_array(_DEPLOYMENT)),
    ("GET", _D + "/{name}"): _read(summary="A deployment, its guard values and next step",
                                   tag=_DEP, reply=_STATUS),
    ("POST", _D + "/{name}"): _write(
        summary="Start a shadow, canary, blue-green or A/B deployment", tag=_DEP,
        body=_props(["mode", "version"], mode="string", version="integer", plan="object",
                    reason="string"),
        reply=_DEPLOYMENT, status=201),
    ("POST", _D + "/{name}/promote"): _write(summary="Skip ahead to the next step", tag=_DEP,
                                             body=_REASON, reply=_DEPLOYMENT),
    ("POST", _D + "/{name}/abort"): _write(summary="Back to production only, at once",
                                           tag=_DEP, body=_REASON, reply=_DEPLOYMENT),
    ("GET", _D + "/{name}/history"): _read(summary="The deployment's events", tag=_DEP,
                                           reply=_array(_DEPLOYMENT_EVENT)),
}  # fmt: skip

_PARAMETERS = {
    "model": "Model name, optionally pinned: NAME@VERSION, NAME@STAGE, NAME@ALIAS",
    "name": "Model name",
    "v": "Version number",
    "version": "Version number",
    "ref": "Version number, stage or alias",
    "alias": "Alias name",
}

# ----------------------------------------------------------------------------- generation

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def is_api(path: str) -> bool:
    """Whether a served route belongs in the document (the rule in the module docstring)."""
    dashboard = path == "/ui" or path.startswith("/ui/")
    catch_all = re.search(r"\{\w+:path\}", path) is not None
    return not (dashboard or catch_all)


def operations(routes: Sequence[BaseRoute]) -> list[tuple[str, str]]:
    """The (method, path) pairs to document: the prediction routes, then every API route in
    the order the app matches them."""
    found = dict.fromkeys(PREDICTION_ROUTES)
    for method, path in _walk(routes, ""):
        if is_api(path) and method != "HEAD":
            found[(method, _PARAM.sub(r"{\1}", path))] = None
    return list(found)


def _walk(routes: Sequence[BaseRoute], prefix: str) -> Iterator[tuple[str, str]]:
    for route in routes:
        if isinstance(route, Route):
            for method in sorted(route.methods or ()):
                yield method, prefix + route.path
        elif isinstance(route, Mount):
            yield from _walk(route.routes, prefix + route.path)


def document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document served at ``/openapi.json``, for the app serving ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path in operations(routes):
        paths.setdefault(path, {})[method.lower()] = _operation(method, path)
    return {
        "openapi": "3.1.0",
        "info": {"title": "watchkeeper", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(method: str, path: str) -> dict[str, Any]:
    described = (method, path) in OPERATIONS
    op = OPERATIONS[(method, path)] if described else Op(summary="(not described)", tag="Other")
    out: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": [_parameter(name) for name in _PARAM.findall(path)],
    }
    if op.body is not None:
        out["requestBody"] = {"required": True, **_content("application/json", op.body)}
    success = {"description": "ok", **(_content(op.media, op.reply) if op.reply else {})}
    shape = _SHAPES.get(op.tag, _ref("Error"))  # the error body of the tag's protocol
    errors = {str(c): {"description": "error", **_content("application/json", shape)}
              for c in op.errors}  # fmt: skip
    out["responses"] = {str(op.status): success, **errors}
    if op.role is not None:
        out["security"] = [{"bearer": []}, {}]  # {}: no token while auth is not configured
        out["description"] = f"Needs a token with the {op.role} role " + (
            "when serve --require-token names this route"
            if op.role in _DATA_PLANE_ROLES
            else "once authentication is configured"
        )
    if not described:  # a route added without an entry: listed anyway, and a test fails
        out["x-undescribed"] = True
    return out


def _parameter(name: str) -> dict[str, Any]:
    description = _PARAMETERS.get(name, name)
    schema = {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}  # fmt: skip


def _content(media: str, schema: Schema) -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


# ----------------------------------------------------------------------------- the page


@functools.cache
def _templates() -> Environment:
    return environment("watchkeeper.serving")


def html(doc: dict[str, Any]) -> str:
    """A plain page listing every operation; the full schema is at /openapi.json."""
    rows = [(method.upper(), path, op["summary"], ", ".join(op["tags"]))
            for path, ops in doc["paths"].items() for method, op in ops.items()]  # fmt: skip
    return _templates().get_template("docs.html").render(version=doc["info"]["version"], rows=rows)
