"""``watchkeeper serve``: the model server."""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from typing import Annotated

import typer

from watchkeeper.cli._common import open_registry, parse_pairs, settings
from watchkeeper.errors import InvalidInput, MissingDependency
from watchkeeper.logbook import LogbookConfig
from watchkeeper.models.validation import ValidationPolicy
from watchkeeper.registry.refs import canonical_ref
from watchkeeper.registry.tokens import TokenStore
from watchkeeper.scheduler_process import ChildOptions
from watchkeeper.server import serve as run_server
from watchkeeper.serving.app import GrpcOptions, ServeOptions
from watchkeeper.serving.auth import DATA_PLANE
from watchkeeper.serving.batcher import BatchingPolicy
from watchkeeper.serving.origin import LOOPBACK
from watchkeeper.serving.pins import PinPolicy
from watchkeeper.serving.predict import Limits
from watchkeeper.serving.readiness import STALE_VIEWS
from watchkeeper.serving.shadow import ShadowPolicy


def _rate(model: str, text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise InvalidInput(f"--log-sample {model}={text}: '{text}' is not a number") from exc


def _seconds(flag: str, model: str, text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise InvalidInput(f"--{flag} {model}={text}: '{text}' is not a number") from exc


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
ANY_ADDRESS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Exposure:
    """Where a server listens and what that demands: beyond loopback, authentication always."""

    host: str
    allowed_hosts: tuple[str, ...]
    auth_required: bool


def exposure(ctx: typer.Context, host: str, allowed: list[str] | None, what: str) -> Exposure:
    """Without any token a server listens on 127.0.0.1 only (and says so); with tokens, one
    bound beyond loopback never runs without authentication, even if every token is later
    revoked. Host names clients may use: loopback, the address bound, and ``--allowed-host``."""
    with open_registry(ctx) as registry:  # a database problem is a one-line error here
        secured = TokenStore(registry.engine).configured()
    if not secured and host not in LOCAL_HOSTS:
        hint = "create one with `watchkeeper tokens create --role admin`"
        typer.echo(f"no API tokens configured: listening on 127.0.0.1 only, not {host} "
                   f"({hint})", err=True)  # fmt: skip
        host = "127.0.0.1"
    elif not secured:
        typer.echo(f"no API tokens configured: {what} open to local callers", err=True)
    names = [*LOOPBACK, *(allowed or ())]
    if host not in ANY_ADDRESS and host not in LOCAL_HOSTS:
        names.append(host)
    return Exposure(host, tuple(dict.fromkeys(names)), auth_required=host not in LOCAL_HOSTS)


def _data_plane(text: str | None, ctx: typer.Context) -> tuple[str, ...]:
    if not text:
        return ()
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in parts if p not in DATA_PLANE]
    if unknown:
        raise InvalidInput(f"--require-token takes {' and/or '.join(DATA_PLANE)}, "
                           f"not '{unknown[0][:50]}'")  # fmt: skip
    with open_registry(ctx) as registry:
        if not TokenStore(registry.engine).live():
            raise InvalidInput("--require-token needs a live token to be of any use: create "
                               "one with `watchkeeper tokens create --role client`")  # fmt: skip
    return parts


def _grpc(port: int, rest_port: int, host: str, workers: int) -> GrpcOptions:
    """The gRPC endpoint, checked before the server starts: the extra installed, the port free
    (every worker then binds it with SO_REUSEPORT)."""
    missing = MissingDependency("--grpc-port needs grpcio and protobuf: "
                                "pip install 'watchkeeper[grpc]'")  # fmt: skip
    try:
        from google.protobuf import runtime_version
    except ImportError as exc:
        raise missing from exc
    try:
        from watchkeeper.serving import grpc_service  # noqa: F401
    except (ImportError, runtime_version.VersionError) as exc:
        raise missing from exc
    if not 0 < port < 65536 or port == rest_port:
        raise InvalidInput(f"--grpc-port must be a port from 1 to 65535 other than --port, "
                           f"not {port}")  # fmt: skip
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise InvalidInput(f"--grpc-port {port}: cannot listen on {host}:{port} "
                               f"({exc.strerror})") from exc  # fmt: skip
    return GrpcOptions(port=port, host=host, reuse_port=workers > 1)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(help="Server processes sharing the port.")] = 1,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            help="Also serve the Open Inference Protocol over gRPC on this port "
            "(same host; needs the grpc extra)."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Model answering MLflow's /invocations (default: the only one)."),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option(help="Serve only these models (repeatable; default all).")
    ] = None,
    max_batch_rows: Annotated[int, typer.Option(help="Rows per coalesced model call.")] = 256,
    max_wait_ms: Annotated[
        float, typer.Option(help="Extra wait to fill a batch under load (0: adaptive only).")
    ] = 0.0,
    predict_timeout: Annotated[
        float, typer.Option(help="Seconds a model call may take before its requests get 504.")
    ] = 30.0,
    predict_timeout_for: Annotated[
        list[str] | None,
        typer.Option(help="Per-model prediction timeout, MODEL=SECONDS (repeatable)."),
    ] = None,
    shadow_linger_ms: Annotated[
        float, typer.Option(help="Wait to batch a shadow's copies, ms (one model call for many).")
    ] = 10.0,
    shadow_batch_rows: Annotated[
        int, typer.Option(help="Rows of shadow copies scored in one call at most.")
    ] = 64,
    shadow_queue: Annotated[
        int, typer.Option(help="Copies waiting for a shadow at most; more are dropped, counted.")
    ] = 256,
    max_rows: Annotated[int, typer.Option(help="Rows allowed in one request.")] = 10_000,
    max_body_mb: Annotated[
        float, typer.Option(help="Prediction and feedback body limit in MiB.")
    ] = 10.0,
    max_api_body_mb: Annotated[
        float, typer.Option(help="Management API (/api/v1) body limit in MiB.")
    ] = 1.0,
    max_outcome_names: Annotated[
        int, typer.Option(help="Distinct feedback outcome names accepted (each a column).")
    ] = 64,
    out_of_range: Annotated[
        str, typer.Option(help="Values outside the training range: count or reject.")
    ] = "count",
    unseen_category: Annotated[
        str, typer.Option(help="Categories not seen in training: reject or count.")
    ] = "reject",
    poll_interval: Annotated[float, typer.Option(help="Registry poll period, seconds.")] = 0.25,
    stale_view: Annotated[
        str,
        typer.Option(
            help="When the registry cannot be read (database away): 'degraded' keeps /readyz "
            "200 with the reason, 'unready' answers 503."
        ),
    ] = "degraded",
    max_pinned_versions: Annotated[
        int, typer.Option(help="Pinned versions (name@3, name@latest) loaded at once at most.")
    ] = 8,
    pinned_idle_seconds: Annotated[
        float, typer.Option(help="Unload a pinned version unused for this long, s.")
    ] = 600.0,
    price_per_cpu_hour: Annotated[
        float, typer.Option(help="For the estimated cost counter in /metrics.")
    ] = 0.05,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    logbook: Annotated[bool, typer.Option(help="Log every prediction to the logbook.")] = True,
    log_sample: Annotated[
        list[str] | None, typer.Option(help="MODEL=RATE: log this share of MODEL's requests.")
    ] = None,
    log_drop: Annotated[
        list[str] | None, typer.Option(help="Input field never written to the logbook.")
    ] = None,
    log_hash: Annotated[
        list[str] | None, typer.Option(help="Input field written as a sha256 hash.")
    ] = None,
    log_flush_rows: Annotated[int, typer.Option(help="Flush after this many rows.")] = 50_000,
    log_flush_interval: Annotated[
        float, typer.Option(help="Flush when the oldest row is this old, s.")
    ] = 2.0,
    log_buffer_rows: Annotated[
        int, typer.Option(help="Rows buffered at most; beyond, dropped and counted.")
    ] = 1_000_000,
    live_stats_interval: Annotated[
        float, typer.Option(help="Seconds between publications of live statistics.")
    ] = 5.0,
    with_scheduler: Annotated[
        bool,
        typer.Option(
            "--with-scheduler/--without-scheduler",
            help="Run the scheduler (rollouts, monitors, batch, retraining) in a child "
            "process; one acts at a time across replicas.",
        ),
    ] = True,
    scheduler_interval: Annotated[float, typer.Option(help="Scheduler period, s.")] = 1.0,
    scheduler_nice: Annotated[
        int, typer.Option(help="CPU niceness added to the scheduler process (0-19).")
    ] = 10,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            help="Host name clients may use besides loopback (repeatable; "
            "'.example.com': subdomains too; '*': any)."
        ),
    ] = None,
    require_token: Annotated[
        str | None,
        typer.Option(
            help="Data-plane routes that need a token: predict, feedback, or both "
            "('predict,feedback'); roles client and feedback."
        ),
    ] = None,
) -> None:
    """Serve every model that has a production version (KServe V1, MLflow, v2 protocols)."""
    for name, value in (("out-of-range", out_of_range), ("unseen-category", unseen_category)):
        if value not in ("count", "reject"):
            raise InvalidInput(f"--{name} must be 'count' or 'reject', not '{value}'")
    if stale_view not in STALE_VIEWS:
        raise InvalidInput(f"--stale-view must be 'degraded' or 'unready', not '{stale_view}'")
    if workers < 1:
        raise InvalidInput("--workers must be at least 1")
    if shadow_linger_ms < 0:
        raise InvalidInput(f"--shadow-linger-ms must be >= 0, not {shadow_linger_ms:g}")
    for flag, size in (("shadow-queue", shadow_queue), ("shadow-batch-rows", shadow_batch_rows)):
        if size < 1:
            raise InvalidInput(f"--{flag} must be at least 1, not {size}")
    PinPolicy(max_versions=max_pinned_versions, idle_seconds=pinned_idle_seconds)  # checks
    options = ServeOptions(
        models=tuple(only or ()),
        mlflow_model=canonical_ref(model) if model else None,
        poll_interval=poll_interval,
        stale_view=stale_view,
        max_pinned_versions=max_pinned_versions,
        pinned_idle_seconds=pinned_idle_seconds,
        limits=Limits(
            max_body_bytes=int(max_body_mb * 1024 * 1024),
            max_api_body_bytes=int(max_api_body_mb * 1024 * 1024),
        ),
        validation=ValidationPolicy(
            out_of_range=out_of_range,  # type: ignore[arg-type]
            unseen_category=unseen_category,  # type: ignore[arg-type]
            max_rows=max_rows,
        ),
        batching=BatchingPolicy(
            max_batch_rows=max_batch_rows,
            max_wait=max_wait_ms / 1000,
            timeout=predict_timeout,
            model_timeouts=tuple(
                (k, _seconds("predict-timeout-for", k, v))
                for k, v in parse_pairs(predict_timeout_for or [], "predict-timeout-for").items()
            ),
        ),
        shadow=ShadowPolicy(
            linger=shadow_linger_ms / 1000, max_rows=shadow_batch_rows, max_queued=shadow_queue
        ),
        price_per_cpu_hour=price_per_cpu_hour,
        live_stats_interval=live_stats_interval,
        logbook=LogbookConfig(
            flush_rows=log_flush_rows,
            flush_interval=log_flush_interval,
            max_buffer_rows=log_buffer_rows,
            max_outcome_names=max_outcome_names,
            sample_rate={
                k: _rate(k, v) for k, v in parse_pairs(log_sample or [], "log-sample").items()
            },
            drop_fields=tuple(log_drop or ()),
            hash_fields=tuple(log_hash or ()),
        )
        if logbook
        else None,
    )
    protected = _data_plane(require_token, ctx)
    exposed = exposure(ctx, host, allowed_host, "the API and dashboard are")
    host = exposed.host
    options = replace(options, allowed_hosts=exposed.allowed_hosts, require_token=protected,
                      auth_required=exposed.auth_required)  # fmt: skip
    if grpc_port is not None:
        options = replace(options, grpc=_grpc(grpc_port, port, host, workers))
    typer.echo(f"watchkeeper serving on http://{host}:{port} (docs: /docs, metrics: /metrics)")
    if grpc_port is not None:
        typer.echo(f"Open Inference Protocol over gRPC on {host}:{grpc_port}")
    if not 0 <= scheduler_nice <= 19:
        raise InvalidInput(f"--scheduler-nice must be within 0..19, not {scheduler_nice}")
    if scheduler_interval <= 0:
        raise InvalidInput(f"--scheduler-interval must be > 0, not {scheduler_interval:g}")
    child = ChildOptions(
        interval=scheduler_interval, nice=scheduler_nice,
        log_level="debug" if log_level == "trace" else log_level,
    ) if with_scheduler else None  # fmt: skip
    run_server(settings(ctx), options, host=host, port=port, workers=workers,
               log_level=log_level, scheduler=child)  # fmt: skip
