"""The Open Inference Protocol over gRPC: ``inference.GRPCInferenceService``.

A ``grpc.aio`` server started in the app's lifespan, on the same event loop as the REST app, so
``ModelInfer`` goes through the very ``Predictor`` the REST routes use: the same validation,
micro-batching, routing (canary, A/B, shadow copies), logbook records and Prometheus series
(protocol label ``v2-grpc``; the ``code`` label keeps the HTTP status the REST twin would have
answered, so one PromQL error rate covers both). The request message travels as bytes to the
predictor and is decoded by ``protocols/v2_grpc/codec.py``, off the event loop when it is large,
as REST bodies are.

Errors carry gRPC status codes (``_CODES``) with the protocol's message; watchkeeper's error code
and field-level details ride in the trailing metadata (``x-error-code``, ``x-error-details-bin``,
JSON). A server fault is ``INTERNAL`` with the request id, never the exception's text. Request
metadata read: ``authorization`` (``Bearer <token>``, checked when the server requires a token
for predictions), ``x-request-id`` and ``x-routing-key``. A ``ModelInfer`` answer, an error
included (but a refused token or an unreadable message), carries ``x-request-id`` (and
``x-model-version`` when a version answered) in its trailing metadata: one place whatever the
outcome.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import grpc.aio

from watchkeeper.errors import (
    InvalidInput,
    ModelNotReady,
    PayloadTooLarge,
    PredictionFailed,
    WatchkeeperError,
)
from watchkeeper.serving.batch import ParsedBatch
from watchkeeper.serving.predict import Answer, Parse, Predictor, Reply
from watchkeeper.serving.protocols import v2
from watchkeeper.serving.protocols._json import dumps, loads
from watchkeeper.serving.protocols.v2_grpc import codec
from watchkeeper.serving.protocols.v2_grpc import open_inference_pb2 as pb
from watchkeeper.serving.table import Deployed, ModelTable

log = logging.getLogger("watchkeeper.serving")

SERVICE = "inference.GRPCInferenceService"
PROTOCOL = "v2-grpc"  # the protocol label of its requests in /metrics
Authorize = Callable[[str | None], Awaitable[WatchkeeperError | None]]  # the bearer token
Context = grpc.aio.ServicerContext[Any, Any]
Message = TypeVar("Message")

# gRPC's status for watchkeeper's HTTP status of an error (INTERNAL for any other 5xx)
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_code(http_status: int) -> grpc.StatusCode:
    if http_status in _CODES:
        return _CODES[http_status]
    return grpc.StatusCode.INVALID_ARGUMENT if http_status < 500 else grpc.StatusCode.INTERNAL


@dataclass(slots=True)
class _Head:
    """What ``ModelInfer`` reads from the call's metadata."""

    authorization: str | None = None
    request_id: str | None = None
    routing_key: str | None = None

    @classmethod
    def of(cls, metadata: Iterable[tuple[str, str | bytes]] | None) -> _Head:
        head = cls()
        for key, value in metadata or ():
            if not isinstance(value, str):
                continue
            if key == "authorization":
                head.authorization = value
            elif key == "x-request-id":
                head.request_id = value[:128]
            elif key == "x-routing-key":
                head.routing_key = value[:256]
        return head


def _guarded(
    method: Callable[[InferenceService, Message, Context], Awaitable[Any]],
) -> Callable[[InferenceService, Message, Context], Awaitable[Any]]:
    """A watchkeeper error becomes its gRPC status and message; any other exception is logged
    and answered ``INTERNAL`` without its text (grpc would send the text as ``UNKNOWN``)."""

    @functools.wraps(method)
    async def call(self: InferenceService, request: Message, context: Context) -> Any:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except WatchkeeperError as exc:
            await context.abort(status_code(exc.http_status), exc.message)
        except Exception:
            log.exception("gRPC %s failed", method.__name__)
            fault = PredictionFailed("the server failed on this call; see the server log")
            await context.abort(grpc.StatusCode.INTERNAL, fault.message)

    return call


class InferenceService:
    """The handlers of ``inference.GRPCInferenceService``."""

    def __init__(
        self, *, predictor: Predictor, table: ModelTable, authorize: Authorize | None = None
    ) -> None:
        self.predictor = predictor
        self.table = table
        self.authorize = authorize  # None: predictions need no token
        self._running: set[asyncio.Future[Reply]] = set()

    @_guarded
    async def server_live(self, request: pb.ServerLiveRequest, context: Context) -> Any:
        return pb.ServerLiveResponse(live=True)

    @_guarded
    async def server_ready(self, request: pb.ServerReadyRequest, context: Context) -> Any:
        return pb.ServerReadyResponse(ready=self.table.ready)  # the rule of /readyz

    @_guarded
    async def model_ready(self, request: pb.ModelReadyRequest, context: Context) -> Any:
        """Ready when a version answers; an unknown model is NOT_FOUND."""
        try:
            await self.table.resolve(codec.model_ref(request.name, request.version))
        except ModelNotReady:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    @_guarded
    async def server_metadata(self, request: pb.ServerMetadataRequest, context: Context) -> Any:
        return codec.server_metadata(v2.server_metadata())

    @_guarded
    async def model_metadata(self, request: pb.ModelMetadataRequest, context: Context) -> Any:
        deployed = await self.table.resolve(codec.model_ref(request.name, request.version))
        model = deployed.model
        meta = v2.metadata(deployed.name, [deployed.number], model.signature,
                           probabilities=model.has_proba)  # fmt: skip
        return codec.metadata(meta)

    @_guarded
    async def model_infer(self, body: bytes, context: Context) -> bytes:
        """One inference call, answered by the predictor the REST routes use."""
        head = _Head.of(context.invocation_metadata())
        authorize = self.authorize
        refused = await authorize(head.authorization) if authorize is not None else None
        if refused is not None:
            raise refused
        request = codec.read_request(body)
        task = asyncio.ensure_future(self.predictor.handle(
            model=codec.model_ref(request.model_name, request.model_version),
            protocol=PROTOCOL,
            parse=_parser(request),
            render=_render,
            read_body=functools.partial(_body, body),
            content_type="application/grpc",
            request_id=head.request_id,
            routing_key=head.routing_key,
        ))  # fmt: skip
        # A call cancelled by its client (or its deadline) still finishes and is logged, as a
        # REST request whose client went away.
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        reply = await asyncio.shield(task)
        metadata: list[tuple[str, str | bytes]] = [
            (k.decode(), v.decode("latin-1"))
            for k, v in reply.headers
            if k in (b"x-request-id", b"x-model-version")
        ]
        if reply.status == 200:
            context.set_trailing_metadata(tuple(metadata))
            return reply.body
        error = loads(reply.body)
        metadata += [("x-error-code", str(error.get("code", ""))),
                     ("x-error-details-bin", _details(error))]  # fmt: skip
        await context.abort(status_code(reply.status), str(error["error"]), tuple(metadata))

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """The method handlers; ``ModelInfer`` takes and gives bytes (the predictor decodes)."""

        def unary(method: Callable[..., Any], request: type[Any] | None) -> Any:
            if request is None:
                return grpc.unary_unary_rpc_method_handler(method)
            return grpc.unary_unary_rpc_method_handler(
                method, request_deserializer=request.FromString,
                response_serializer=lambda message: message.SerializeToString(),
            )  # fmt: skip

        return {
            "ServerLive": unary(self.server_live, pb.ServerLiveRequest),
            "ServerReady": unary(self.server_ready, pb.ServerReadyRequest),
            "ModelReady": unary(self.model_ready, pb.ModelReadyRequest),
            "ServerMetadata": unary(self.server_metadata, pb.ServerMetadataRequest),
            "ModelMetadata": unary(self.model_metadata, pb.ModelMetadataRequest),
            "ModelInfer": unary(self.model_infer, None),
        }


def _parser(request: pb.ModelInferRequest) -> Parse:
    def parse(body: bytes, content_type: str, deployed: Deployed, max_rows: int) -> ParsedBatch:
        return codec.parse(request, deployed.model.signature, max_rows=max_rows)

    return parse


def _render(answer: Answer) -> bytes:
    return codec.render(
        model=answer.deployed.name,
        version=answer.deployed.number,
        request_id=answer.parsed.request_id,
        predictions=answer.predictions,
        probabilities=answer.probabilities,
    )


async def _body(body: bytes, limit: int) -> bytes:
    """The request message, refused (413) over the body limit (grpc's own receive limit is set
    to it too, so this only holds when the two differ)."""
    if len(body) > limit:
        raise PayloadTooLarge(f"the request message of {len(body)} bytes is over the {limit}-byte "
                              "limit")  # fmt: skip
    return body


def _details(error: dict[str, Any]) -> bytes:
    return dumps(error.get("details", []))


def _address(host: str, port: int) -> str:
    host = host or "::"  # every address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start(
    service: InferenceService, *, host: str, port: int, reuse_port: bool, max_message_bytes: int
) -> grpc.aio.Server:
    """A started gRPC server for ``service`` on ``host:port``. ``reuse_port``: several worker
    processes bind the same port (SO_REUSEPORT; the kernel spreads connections among them);
    off, a port already taken is an error instead of a silent share."""
    server = grpc.aio.server(options=[
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_receive_message_length", max_message_bytes),
    ])  # fmt: skip
    handlers = service.handlers()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
    address = _address(host, port)
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        raise InvalidInput(f"cannot listen for gRPC on {address}: is the port taken?") from exc
    await server.start()
    return server
