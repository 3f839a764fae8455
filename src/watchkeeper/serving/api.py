"""The management API under ``/api/v1``: the registry operations the CLI has, over HTTP.

Every handler calls the same ``Registry`` method as the CLI command of the same name, in a
worker thread (the registry is synchronous), and answers errors with the usual error body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from watchkeeper.config import Settings
from watchkeeper.errors import (
    Detail,
    InvalidInput,
    InvalidReference,
    UnsupportedMediaType,
    WatchkeeperError,
)
from watchkeeper.logbook import Logbook
from watchkeeper.registry import Registry
from watchkeeper.registry.refs import parse_version
from watchkeeper.serving.auth import Authenticator
from watchkeeper.serving.predict import Limits, error_response, read_request
from watchkeeper.serving.protocols import _json

Handler = Callable[[Registry, Request, dict[str, Any]], Any]


class _Limited(Protocol):
    @property
    def limits(self) -> Limits: ...


class Host(Protocol):
    """What the management routes use of the server that mounts them (``serving.app.Server``
    is one): the stores its lifespan opened, the authenticator and the body limits. A protocol,
    so these modules never import the app that imports them."""

    settings: Settings
    registry: Registry | None
    auth: Authenticator | None
    logbook: Logbook | None

    @property
    def options(self) -> _Limited: ...


def json_endpoint(
    server: Host, handler: Handler, *, status: int = 200, role: str | None = None
) -> Callable[[Request], Any]:
    """An endpoint running ``handler(registry, request, body)`` in a worker thread, for callers
    with ``role`` (default: reader for GET, deployer otherwise); the audit log records them."""

    async def run(request: Request) -> Response:
        try:
            needed = role or ("reader" if request.method == "GET" else "deployer")
            assert server.registry is not None
            assert server.auth is not None
            who = await asyncio.to_thread(server.auth.require, request, needed)
            if request.method in ("POST", "PUT", "PATCH"):
                require_json(request.headers.get("content-type"))
            body = await _json_body(request, server.options.limits.max_api_body_bytes)
            registry = server.registry.acting_as(who.name) if who.authenticated else server.registry
            result = await asyncio.to_thread(handler, registry, request, body)
        except WatchkeeperError as exc:
            return error_response(exc)
        return Response(_json.dumps(result), status_code=status, media_type="application/json")

    return run


def routes(server: Host) -> list[Route]:
    def endpoint(handler: Handler, *, status: int = 200) -> Callable[[Request], Any]:
        return json_endpoint(server, handler, status=status)

    prefix = "/api/v1/models"
    return [
        Route(prefix, endpoint(_list_models), methods=["GET"]),
        Route(prefix + "/{name}", endpoint(_show_model), methods=["GET"]),
        Route(
            prefix + "/{name}/versions",
            json_endpoint(server, _register, status=201, role="admin"),
            methods=["POST"],
        ),
        Route(prefix + "/{name}/versions/{ref}", endpoint(_show_version), methods=["GET"]),
        Route(prefix + "/{name}/versions/{version}/stage", endpoint(_promote), methods=["POST"]),
        Route(prefix + "/{name}/aliases/{alias}", endpoint(_set_alias), methods=["PUT"]),
        Route(prefix + "/{name}/aliases/{alias}", endpoint(_remove_alias), methods=["DELETE"]),
        Route(prefix + "/{name}/rollback", endpoint(_rollback), methods=["POST"]),
        Route(prefix + "/{name}/history", endpoint(_history), methods=["GET"]),
    ]


async def _json_body(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object of a request's body; over ``limit`` bytes it is refused (413) unread."""
    if request.method in ("GET", "DELETE"):
        return {}
    raw = await read_request(request, limit)
    if not raw.strip():
        return {}
    data = _json.loads(raw)
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    return data


def require_json(content_type: str | None) -> None:
    """Mutations take JSON only, even with an empty body: a browser can post a form or
    ``text/plain`` to any site without asking, but never ``application/json``."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind != "application/json" and not (
        kind.startswith("application/") and kind.endswith("+json")
    ):
        raise UnsupportedMediaType(
            f"this call takes Content-Type: application/json, not '{kind[:100] or 'none'}'",
            details=[Detail("content-type", "must be application/json")],
        )


def field(body: dict[str, Any], name: str, kind: type, *, default: Any = ...) -> Any:
    value = body.get(name, default)
    if value is ...:
        raise InvalidInput(f"'{name}' is required", details=[Detail(name, "required")])
    if value is not None and value is not default and not isinstance(value, kind):
        raise InvalidInput(
            f"'{name}' must be a {kind.__name__}",
            details=[Detail(name, f"expected {kind.__name__}")],
        )
    return value


def _int(text: str, name: str) -> int:
    try:
        return parse_version(text)  # ASCII digits within the schema's range
    except InvalidReference as exc:
        raise InvalidReference(exc.message, details=[Detail(name, "not a version number")]) from exc


def _list_models(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
    return [m.to_dict() for m in registry.list_models()]


def _show_model(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
    name = request.path_params["name"]
    model = registry.get_model(name)
    return {**model.to_dict(), "versions": [v.to_dict() for v in registry.list_versions(name)]}


def _show_version(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
    return registry.get(f"{request.path_params['name']}@{request.path_params['ref']}").to_dict()


def _register(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
    """Register a model from a path the server can read (a file, package or MLflow folder)."""
    version = registry.register(
        request.path_params["name"],
        field(body, "path", str),
        flavor=field(body, "flavor", str, default="auto"),
        metrics=field(body, "metrics", dict, default=None),
        tags=field(body, "tags", dict, default=None),
        run_id=field(body, "run_id", str, default=None),
        run_url=field(body, "run_url", str, default=None),
        data_uri=field(body, "data_uri", str, default=None),
        reference_data=field(body, "reference", str, default=None),
        description=field(body, "description", str, default=""),
        stage=field(body, "stage", str, default="none"),
    )
    return version.to_dict()


def _promote(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
    version = _int(request.path_params["version"], "version")
    stage = field(body, "stage", str)
    reason = field(body, "reason", str, default="")
    return registry.promote(request.path_params["name"], version, stage, reason=reason).to_dict()


def _set_alias(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
    version = field(body, "version", int)
    p = request.path_params
    return registry.set_alias(p["name"], version, p["alias"]).to_dict()


def _remove_alias(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
    registry.remove_alias(request.path_params["name"], request.path_params["alias"])
    return {"removed": request.path_params["alias"]}


def _rollback(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
    reason = field(body, "reason", str, default="")
    return registry.rollback(request.path_params["name"], reason=reason).to_dict()


def _history(registry: Registry, request: Request, body: dict[str, Any]) -> Any:
    return [e.to_dict() for e in registry.history(request.path_params["name"])]
