"""The ASGI app: KServe V1 (native), MLflow scoring, Open Inference Protocol v2, health, metrics.

Build it with :func:`create_app`; everything it needs (settings, registry, policies) is passed
in and created in the lifespan, nothing at import.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from watchkeeper import __version__
from watchkeeper.config import Settings
from watchkeeper.errors import InvalidInput, NotFound, StoreUnavailable, WatchkeeperError
from watchkeeper.logbook import Logbook, LogbookConfig
from watchkeeper.models.validation import ValidationPolicy
from watchkeeper.registry import Registry
from watchkeeper.registry.live import LiveStatsStore
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.registry.tokens import TokenStore
from watchkeeper.serving import api, deploy_api, feedback, openapi
from watchkeeper.serving.auth import Authenticator
from watchkeeper.serving.batch import ParsedBatch
from watchkeeper.serving.batcher import BatchingPolicy
from watchkeeper.serving.fast import PredictionRoutes, no_single_model
from watchkeeper.serving.live import LiveStats, Publisher
from watchkeeper.serving.metrics import ServingMetrics
from watchkeeper.serving.origin import LOOPBACK, OriginGuard
from watchkeeper.serving.pins import PinPolicy
from watchkeeper.serving.predict import Answer, Limits, Predictor, error_response
from watchkeeper.serving.protocols import _json, kserve_v1, mlflow, v2
from watchkeeper.serving.protocols.wire import Rendered
from watchkeeper.serving.readiness import StaleView
from watchkeeper.serving.shadow import ShadowPolicy
from watchkeeper.serving.table import Deployed, ModelTable


@dataclass(frozen=True, kw_only=True)
class GrpcOptions:
    """The Open Inference Protocol over gRPC (``serving/grpc_service.py``), beside REST.

    ``reuse_port``: several worker processes bind the same port (SO_REUSEPORT)."""

    port: int
    host: str = "127.0.0.1"
    reuse_port: bool = False
    grace_seconds: float = 30.0  # at shutdown, in-flight calls get this long to finish


ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """What ``watchkeeper serve`` tunes: which models, limits and policies."""

    models: tuple[str, ...] = ()
    mlflow_model: str | None = None
    poll_interval: float = 0.25
    max_pinned_versions: int = 8  # name@3, name@latest...: loaded at once at most (LRU)
    pinned_idle_seconds: float = 600.0  # a pinned version unused this long is unloaded
    limits: Limits = field(default_factory=Limits)
    validation: ValidationPolicy = field(default_factory=ValidationPolicy)
    batching: BatchingPolicy = field(default_factory=BatchingPolicy)
    shadow: ShadowPolicy = field(default_factory=ShadowPolicy)
    price_per_cpu_hour: float = 0.05
    live_stats_interval: float = 5.0
    logbook: LogbookConfig | None = field(default_factory=LogbookConfig)  # None: no logging
    allowed_hosts: tuple[str, ...] = LOOPBACK  # Host names clients may use (see origin.py)
    require_token: tuple[str, ...] = ()  # data-plane routes needing a token: predict, feedback
    auth_required: bool = False  # bound beyond loopback: never run without authentication
    stale_view: StaleView = "degraded"  # a stale registry view: degraded (200) or unready
    grpc: GrpcOptions | None = None  # None: no gRPC endpoint


class Server:
    """Holds the per-process state the routes use."""

    def __init__(self, settings: Settings, options: ServeOptions) -> None:
        self.settings = settings
        self.options = options
        self.metrics = ServingMetrics(price_per_cpu_hour=options.price_per_cpu_hour)
        self.registry: Registry | None = None
        self.table: ModelTable | None = None
        self.predictor: Predictor | None = None
        self.live: LiveStats | None = None
        self.logbook: Logbook | None = None
        self.auth: Authenticator | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.registry = await asyncio.to_thread(Registry, self.settings)
        self.auth = Authenticator(TokenStore(self.registry.engine),
                                  required=self.options.auth_required)  # fmt: skip
        self.live = LiveStats()
        self.table = ModelTable(
            self.registry,
            metrics=self.metrics,
            validation=self.options.validation,
            batching=self.options.batching,
            models=list(self.options.models) or None,
            poll_interval=self.options.poll_interval,
            on_cpu=self.live.observe_cpu,
            pins=PinPolicy(
                max_versions=self.options.max_pinned_versions,
                idle_seconds=self.options.pinned_idle_seconds,
            ),
            stale_view=self.options.stale_view,
        )
        publisher = Publisher(
            self.live,
            LiveStatsStore(self.registry.engine).write,
            interval=self.options.live_stats_interval,
            on_failure=self.metrics.task_failed,
        )
        self.table.checks.append(publisher.problem)
        self.metrics.watch_monitors(MonitoringStore(self.registry.engine))
        self.logbook = self._open_logbook()
        self.predictor = Predictor(self.table, self.metrics, self.options.limits, self.live,
                                   self.logbook, shadow=self.options.shadow)  # fmt: skip
        self.predictor.shadows.on_failure = self.metrics.task_failed
        await self.table.start()
        publisher.start()
        grpc_server = None
        try:
            grpc_server = await self._start_grpc()
            yield
        finally:
            if grpc_server is not None:  # new calls refused, in-flight ones answered
                await grpc_server.stop(self.options.grpc.grace_seconds if self.options.grpc else 0)
            await self.predictor.drain_shadows()
            await self.table.stop()  # in-flight predictions are answered (and logged) first
            if self.logbook is not None:
                await asyncio.to_thread(self.logbook.close)
            await asyncio.to_thread(publisher.close)
            self.registry.close()

    async def _start_grpc(self) -> Any:
        """The gRPC server (a ``grpc.aio.Server``) when asked for, on this event loop."""
        grpc = self.options.grpc
        if grpc is None:
            return None
        from watchkeeper.serving import grpc_service  # grpcio is an optional extra

        assert self.predictor is not None
        assert self.table is not None
        authorize = self.authorize_predict if "predict" in self.options.require_token else None
        service = grpc_service.InferenceService(predictor=self.predictor, table=self.table,
                                                authorize=authorize)  # fmt: skip
        return await grpc_service.start(
            service, host=grpc.host, port=grpc.port, reuse_port=grpc.reuse_port,
            max_message_bytes=self.options.limits.max_body_bytes,
        )  # fmt: skip

    def _open_logbook(self) -> Logbook | None:
        if self.options.logbook is None:
            return None
        logbook = Logbook(
            self.settings.resolved_logbook_url,
            config=self.options.logbook,
            on_drop=self.metrics.logbook_dropped.inc,
            on_flush_error=lambda _exc: self.metrics.logbook_flush_failures.inc(),
        )
        self.metrics.watch_logbook(lambda: logbook.stats)
        logbook.start()
        return logbook

    async def feedback(self, request: Request) -> Response:
        """``POST /v1/feedback``: labels and outcomes for earlier predictions."""
        if "feedback" in self.options.require_token:
            refused = await self._auth().data_plane(request.headers.get("authorization"),
                                                    "feedback")  # fmt: skip
            if refused is not None:
                return error_response(refused)
        if self.logbook is None:
            return error_response(InvalidInput("this server runs without a logbook"))
        try:
            names = self.logbook.config.max_outcome_names
            items = await feedback.read(request, self.options.limits, max_outcome_names=names)
            accepted = self.logbook.log_feedback(items)  # refuses too many outcome names
        except WatchkeeperError as exc:
            return error_response(exc)
        if accepted < len(items):
            full = StoreUnavailable(
                f"the logbook buffer is full: {accepted} of {len(items)} items accepted; "
                "send the rest again later"
            )
            return error_response(full)
        return JSONResponse({"accepted": accepted})

    # --- KServe V1 -------------------------------------------------------------------------

    async def v1_list(self, request: Request) -> Response:
        return JSONResponse({"models": [d.name for d in self._table().served()]})

    async def v1_model(self, request: Request) -> Response:
        try:
            deployed = await self._table().resolve(request.path_params["model"])
        except WatchkeeperError as exc:
            return error_response(exc, "kserve_v1")
        return JSONResponse({"name": deployed.name, "version": deployed.number, "ready": True})

    # --- MLflow ----------------------------------------------------------------------------

    def mlflow_model(self) -> str:
        if self.options.mlflow_model:
            return self.options.mlflow_model
        served = self._table().served()
        if len(served) == 1:
            return served[0].name
        raise no_single_model(len(served))

    async def ping(self, request: Request) -> Response:
        ready = self._table().ready  # the rule of /readyz: production versions are served
        return Response("\n", status_code=200 if ready else 503, media_type="application/json")

    async def version(self, request: Request) -> Response:
        return Response(__version__, media_type="text/plain")

    # --- Open Inference Protocol v2 ----------------------------------------------------------

    async def v2_server(self, request: Request) -> Response:
        return JSONResponse(v2.server_metadata())

    async def v2_live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def v2_ready(self, request: Request) -> Response:
        ready = self._table().ready  # the rule of /readyz: production versions are served
        return JSONResponse({"ready": ready, "live": True}, status_code=200 if ready else 503)

    async def v2_model(self, request: Request) -> Response:
        try:
            deployed = await self._table().resolve(_v2_ref(request))
        except WatchkeeperError as exc:
            return error_response(exc, "v2")
        meta = v2.metadata(
            deployed.name,
            [deployed.number],
            deployed.model.signature,
            probabilities=deployed.model.has_proba,
        )
        return JSONResponse(meta)

    async def v2_model_ready(self, request: Request) -> Response:
        try:
            deployed = await self._table().resolve(_v2_ref(request))
        except WatchkeeperError as exc:
            return error_response(exc, "v2")
        return JSONResponse({"name": deployed.name, "ready": True})

    # --- health, metrics, docs ---------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        state = self._table().readiness()  # a candidate's problems never make it unready
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

    async def openapi_json(self, request: Request) -> Response:
        doc = openapi.document(request.app.routes)  # generated from the routes served
        return Response(_json.dumps(doc), media_type="application/json")

    async def docs(self, request: Request) -> Response:
        return HTMLResponse(openapi.html(openapi.document(request.app.routes)))

    def get_predictor(self) -> Predictor:
        assert self.predictor is not None, "the app's lifespan has not run"
        return self.predictor

    def _table(self) -> ModelTable:
        assert self.table is not None
        return self.table

    def _auth(self) -> Authenticator:
        assert self.auth is not None, "the app's lifespan has not run"
        return self.auth

    async def authorize_predict(self, authorization: str | None) -> WatchkeeperError | None:
        return await self._auth().data_plane(authorization, "client")

    def routes(self, mounted: Sequence[BaseRoute] = ()) -> list[BaseRoute]:
        """The server's routes, with ``mounted`` (the dashboard's, composed above serving by
        ``watchkeeper.server``) before the catch-alls under the protocols' prefixes."""
        return [
            Route("/v1/models", self.v1_list, methods=["GET"]),
            Route("/v1/models/{model}", self.v1_model, methods=["GET"]),
            Route("/ping", self.ping, methods=["GET"]),
            Route("/health", self.ping, methods=["GET"]),
            Route("/version", self.version, methods=["GET"]),
            Route("/v2", self.v2_server, methods=["GET"]),
            Route("/v2/health/live", self.v2_live, methods=["GET"]),
            Route("/v2/health/ready", self.v2_ready, methods=["GET"]),
            Route("/v2/models/{name}", self.v2_model, methods=["GET"]),
            Route("/v2/models/{name}/ready", self.v2_model_ready, methods=["GET"]),
            Route("/v2/models/{name}/versions/{v}", self.v2_model, methods=["GET"]),
            Route("/v2/models/{name}/versions/{v}/ready", self.v2_model_ready, methods=["GET"]),
            Route("/v1/feedback", self.feedback, methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", self.openapi_json, methods=["GET"]),
            Route("/docs", self.docs, methods=["GET"]),
            *api.routes(self),
            *deploy_api.routes(self),
            *mounted,
            # anything else under a protocol's prefix: a 404 its clients can read
            Route("/v1/{rest:path}", self.v1_unknown, methods=ANY_METHOD),
            Route("/v2/{rest:path}", self.v2_unknown, methods=ANY_METHOD),
        ]

    async def v1_unknown(self, request: Request) -> Response:
        return error_response(_no_route(request), "kserve_v1")

    async def v2_unknown(self, request: Request) -> Response:
        return error_response(_no_route(request), "v2")


Mount = Callable[["Server"], Sequence[BaseRoute]]


def create_app(
    settings: Settings | None = None,
    options: ServeOptions | None = None,
    *,
    mount: Mount | None = None,
) -> ASGIApp:
    """The serving app: the origin guard, then the prediction routes in front of a Starlette app
    for the rest. ``mount(server)`` gives routes composed from above (``watchkeeper.server``
    mounts the dashboard this way); serving itself never imports what sits above it."""
    options = options or ServeOptions()
    server = Server(settings or Settings.load(), options)
    mounted = mount(server) if mount is not None else ()
    rest = Starlette(routes=server.routes(mounted), lifespan=server.lifespan,
                     exception_handlers={WatchkeeperError: _error_handler})  # fmt: skip
    rest.state.server = server
    predict = server.authorize_predict if "predict" in options.require_token else None
    routes = PredictionRoutes(
        rest,
        server.get_predictor,
        v1=(_v1_parse, _v1_render),
        mlflow=(_mlflow_parse, _mlflow_render),
        v2=(_v2_parse, _v2_render),
        mlflow_model=server.mlflow_model,
        authorize=predict,
    )
    return OriginGuard(routes, allowed_hosts=options.allowed_hosts)


async def _error_handler(request: Request, exc: Exception) -> Response:
    """A WatchkeeperError no route caught (the database went away mid-request, say): its
    status and message, never a traceback."""
    assert isinstance(exc, WatchkeeperError)
    return error_response(exc)


def _v2_ref(request: Request) -> str:  # GET routes; POST .../infer is matched in fast.py
    name: str = request.path_params["name"]
    version = request.path_params.get("v")
    return f"{name}@{version}" if version else name


def _v1_parse(body: bytes, content_type: str, deployed: Deployed, max_rows: int) -> ParsedBatch:
    return kserve_v1.parse(body, deployed.model.input_names, max_rows=max_rows)


def _v1_render(answer: Answer) -> bytes:
    return kserve_v1.render(
        model=answer.deployed.name,
        version=answer.deployed.number,
        request_id=answer.request_id,
        predictions=answer.predictions,
        probabilities=answer.probabilities,
    )


def _mlflow_parse(body: bytes, content_type: str, deployed: Deployed, max_rows: int) -> ParsedBatch:
    return mlflow.parse(body, content_type, deployed.model.input_names, max_rows=max_rows)


def _mlflow_render(answer: Answer) -> bytes:
    return mlflow.render(answer.predictions, answer.probabilities)


def _v2_parse(
    body: bytes, content_type: str, deployed: Deployed, max_rows: int, /, *,
    header_length: str | None = None,
) -> ParsedBatch:  # fmt: skip
    signature = deployed.model.signature
    return v2.parse(body, signature, max_rows=max_rows, header_length=header_length)


def _v2_render(answer: Answer) -> bytes | Rendered:
    return v2.render(
        model=answer.deployed.name,
        version=answer.deployed.number,
        request_id=answer.parsed.request_id,
        predictions=answer.predictions,
        probabilities=answer.probabilities,
        binary=answer.parsed.binary_outputs,
    )


def _no_route(request: Request) -> NotFound:
    return NotFound(f"no such route: {request.method} {request.url.path}")
