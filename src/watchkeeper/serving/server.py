"""Running the app: uvicorn with one or several worker processes on one port.

Options travel to worker processes as JSON in ``WATCHKEEPER_SERVE_OPTIONS`` (settings travel as
the usual ``WATCHKEEPER_*`` variables), and each worker builds its own app, registry connection
and routing table, so each picks up registry changes on its own.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import asdict, fields, replace
from typing import Any

import uvicorn

from watchkeeper.config import Settings
from watchkeeper.logbook import LogbookConfig
from watchkeeper.models.validation import ValidationPolicy
from watchkeeper.serving.app import GrpcOptions, ServeOptions
from watchkeeper.serving.batcher import BatchingPolicy
from watchkeeper.serving.nodelay import NoDelayProtocol
from watchkeeper.serving.predict import Limits
from watchkeeper.serving.shadow import ShadowPolicy

OPTIONS_ENV = "WATCHKEEPER_SERVE_OPTIONS"


def options_to_env(options: ServeOptions) -> str:
    data = asdict(replace(options, logbook=None))
    if options.logbook is not None:
        config = {f.name: getattr(options.logbook, f.name) for f in fields(options.logbook)}
        data["logbook"] = {**config, "sample_rate": dict(options.logbook.sample_rate)}
    return json.dumps(data)


def options_from_env() -> ServeOptions:
    raw = os.environ.get(OPTIONS_ENV)
    if not raw:
        return ServeOptions()
    data: dict[str, Any] = json.loads(raw)
    return ServeOptions(
        models=tuple(data["models"]),
        mlflow_model=data["mlflow_model"],
        poll_interval=data["poll_interval"],
        max_pinned_versions=data["max_pinned_versions"],
        pinned_idle_seconds=data["pinned_idle_seconds"],
        limits=Limits(**data["limits"]),
        validation=ValidationPolicy(**data["validation"]),
        batching=BatchingPolicy(**data["batching"]),
        shadow=ShadowPolicy(**data["shadow"]),
        price_per_cpu_hour=data["price_per_cpu_hour"],
        live_stats_interval=data["live_stats_interval"],
        logbook=LogbookConfig(**data["logbook"]) if data["logbook"] is not None else None,
        allowed_hosts=tuple(data["allowed_hosts"]),
        require_token=tuple(data["require_token"]),
        auth_required=data["auth_required"],
        stale_view=data["stale_view"],
        grpc=GrpcOptions(**data["grpc"]) if data.get("grpc") else None,
    )


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(
    settings: Settings,
    options: ServeOptions,
    *,
    host: str,
    port: int,
    workers: int = 1,
    log_level: str = "info",
    factory: str,
) -> None:
    """Run until SIGINT/SIGTERM; in-flight requests finish before the process exits. Each
    worker builds its app by calling ``factory`` ("module:function", given by the composition
    above serving: ``watchkeeper.server``)."""
    os.environ.update(settings.to_env())
    os.environ[OPTIONS_ENV] = options_to_env(options)
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; with this
    # handler in place that ends the process with status 0 instead of "killed by SIGTERM".
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=NoDelayProtocol,
        loop="uvloop",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
