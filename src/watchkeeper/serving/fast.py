"""The prediction routes as a bare ASGI app in front of the Starlette app.

Prediction is the hot path: it skips Starlette's request object, router and middleware and
speaks ASGI directly (measured: a third of the per-request CPU went there). Every other path
falls through to the Starlette app, composed exactly as Starlette composes its own apps.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from watchkeeper.errors import (
    Detail,
    ModelNotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    WatchkeeperError,
)
from watchkeeper.serving.batch import ParsedBatch
from watchkeeper.serving.predict import JSON, Parse, Predictor, Render, Reply
from watchkeeper.serving.protocols import wire
from watchkeeper.serving.table import Deployed

# model reference (None: the /invocations model, looked up per request), protocol, parse, render
Route = tuple[str | None, str, Parse, Render]
Authorize = Callable[[str | None], Awaitable[WatchkeeperError | None]]  # Authorization header
_IDENTITY = ("", "identity")


class V2Parse(Protocol):
    """A v2 parse, told the ``Inference-Header-Content-Length`` header (binary tensor data)."""

    def __call__(
        self, body: bytes, content_type: str, deployed: Deployed, max_rows: int, /, *,
        header_length: str | None = None,
    ) -> ParsedBatch: ...  # fmt: skip


class PredictionRoutes:
    def __init__(
        self,
        fallback: ASGIApp,
        predictor: Callable[[], Predictor],
        *,
        v1: tuple[Parse, Render],
        mlflow: tuple[Parse, Render],
        v2: tuple[V2Parse, Render],
        mlflow_model: Callable[[], str],
        authorize: Authorize | None = None,
    ) -> None:
        self.fallback = fallback
        self.predictor = predictor
        self.v1, self.mlflow, self.v2 = v1, mlflow, v2
        self.mlflow_model = mlflow_model
        self.authorize = authorize  # None: predictions need no token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = self._match(scope["path"])
            if route is not None:
                await self._predict(scope, receive, send, route)
                return
        await self.fallback(scope, receive, send)

    def _match(self, path: str) -> Route | None:
        if path.startswith("/v1/models/") and path.endswith(":predict"):
            model = path[len("/v1/models/") : -len(":predict")]
            if model and "/" not in model:
                return (model, "kserve_v1", *self.v1)
        elif path == "/invocations":
            return (None, "mlflow", *self.mlflow)
        elif path.startswith("/v2/models/") and path.endswith("/infer"):
            parts = path[len("/v2/models/") : -len("/infer")].split("/")
            if len(parts) == 1 and parts[0]:
                return (parts[0], "v2", *self.v2)
            if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
                return (f"{parts[0]}@{parts[2]}", "v2", *self.v2)
        return None

    async def _predict(self, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        model, protocol, parse, render = route
        head = _Head.of(scope["headers"])
        authorize = self.authorize  # None: predictions need no token
        refused = await authorize(head.authorization) if authorize is not None else None
        try:
            if refused is not None:
                raise refused
            if model is None:
                model = self.mlflow_model()
        except WatchkeeperError as exc:
            await _send(send, _error(exc, protocol))
            return
        if head.header_length is not None and protocol == "v2":
            parse = functools.partial(self.v2[0], header_length=head.header_length)
        reply = await self.predictor().handle(
            model=model,
            protocol=protocol,
            parse=parse,
            render=render,
            read_body=functools.partial(_read_body, receive, head),
            content_type=head.content_type,
            request_id=head.request_id,
            routing_key=head.routing_key,
            defer_records=True,
        )
        try:
            await _send(send, reply)
        finally:  # the answer is on its way (or its client gone): now the records
            reply.after()


@dataclass(slots=True)
class _Head:
    """What a prediction route reads from the request's headers."""

    content_type: str = "application/json"
    request_id: str | None = None
    length: bytes | None = None
    routing_key: str | None = None
    authorization: str | None = None
    encoding: str = ""
    header_length: str | None = None  # Inference-Header-Content-Length (v2 binary tensor data)

    @classmethod
    def of(cls, headers: list[tuple[bytes, bytes]]) -> _Head:
        head = cls()
        for key, value in headers:
            if key == b"content-type":
                head.content_type = value.decode("latin-1")
            elif key == b"x-request-id":
                head.request_id = value.decode("latin-1")[:128]
            elif key == b"content-length":
                head.length = value
            elif key == b"x-routing-key":
                head.routing_key = value.decode("latin-1")[:256]
            elif key == b"authorization":
                head.authorization = value.decode("latin-1")
            elif key == b"content-encoding":
                head.encoding = value.decode("latin-1").strip().lower()
            elif key == b"inference-header-content-length":
                head.header_length = value.decode("latin-1")
        return head


async def _read_body(receive: Receive, head: _Head, limit: int) -> bytes:
    """The request's body, refused (413) as soon as it is over ``limit`` bytes: by its
    Content-Length before reading anything, else while it streams in."""
    if head.encoding not in _IDENTITY:
        raise UnsupportedMediaType(
            f"Content-Encoding {head.encoding!r} is not supported; send the body uncompressed",
            details=[Detail("content-encoding", "unsupported")],
        )
    length = head.length
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body of {int(length)} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _error(exc: WatchkeeperError, protocol: str) -> Reply:
    status, body = wire.error_body(exc, protocol)
    return Reply(status, body, [(b"content-type", JSON)])


async def _send(send: Send, reply: Reply) -> None:
    headers = [*reply.headers, (b"content-length", str(len(reply.body)).encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def no_single_model(count: int) -> ModelNotFound:
    return ModelNotFound(
        f"/invocations needs one model but {count} are served: start the server with --model NAME"
    )
