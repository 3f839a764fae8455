"""One prediction request, whatever protocol it came in: read, parse, validate, batch, answer.

Each protocol module supplies how to parse a body and how to render the answer; this module owns
what they share: the body-size limit, the request id, the error body, and the metrics. The ASGI
side lives in ``fast.py``.
"""

from __future__ import annotations

import itertools
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from starlette.responses import Response

from watchkeeper.errors import SchemaError, WatchkeeperError
from watchkeeper.logbook import Logbook, PredictionBatch
from watchkeeper.serving.batch import ParsedBatch, ValidatedBatch
from watchkeeper.serving.live import LiveStats
from watchkeeper.serving.metrics import ServingMetrics
from watchkeeper.serving.protocols import _json
from watchkeeper.serving.routing import to_candidate
from watchkeeper.serving.shadow import Copy, ShadowCopier, ShadowPolicy
from watchkeeper.serving.table import Deployed, ModelTable, Route

log = logging.getLogger("watchkeeper.serving")

Parse = Callable[[bytes, str, Deployed], ParsedBatch]  # body, content type, version
Render = Callable[["Answer"], bytes]
ReadBody = Callable[[int], Awaitable[bytes]]  # reads the body, refusing more than N bytes
JSON = b"application/json"


@dataclass(frozen=True)
class Answer:
    deployed: Deployed
    request_id: str
    parsed: ParsedBatch
    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Request limits: body bytes (default 10 MiB)."""

    max_body_bytes: int = 10 * 1024 * 1024


class Predictor:
    """Answers one prediction call; knows nothing of ASGI beyond the body reader it is given."""

    def __init__(
        self,
        table: ModelTable,
        metrics: ServingMetrics,
        limits: Limits,
        live: LiveStats,
        logbook: Logbook | None,
        *,
        shadow: ShadowPolicy = ShadowPolicy(),
    ) -> None:
        self.table = table
        self.metrics = metrics
        self.limits = limits
        self.live = live
        self.logbook = logbook
        self._children: dict[tuple[str, ...], Any] = {}
        self._ids = RequestIds()
        self._rng = random.Random()
        self.shadows = ShadowCopier(
            shadow, validate=lambda d, p: self._validate(d, p, count=False),
            count=self._count_shadow, live=live, logbook=logbook,
        )  # fmt: skip

    async def handle(
        self,
        *,
        model: str,
        protocol: str,
        parse: Parse,
        render: Render,
        read_body: ReadBody,
        content_type: str = "application/json",
        request_id: str | None = None,
        routing_key: str | None = None,
    ) -> Reply:
        start = time.perf_counter()
        arrived = datetime.now(UTC) if self.logbook is not None else None
        request_id = request_id or self._ids.next()
        name, version, status = model.partition("@")[0], "", 200
        deployed: Deployed | None = None
        headers = [(b"content-type", JSON), (b"x-request-id", request_id.encode())]
        try:
            body = await read_body(self.limits.max_body_bytes)
            deployed = await self.table.resolve(model)
            parsed = parse(body, content_type, deployed)
            route = self.table.route(model) if "@" not in model else None
            if route is not None:
                routing_key = routing_key or _field_key(parsed, route.routing_field)
                if route.answers and to_candidate(name, route.share, routing_key, self._rng):
                    deployed = route.candidate
            version = deployed.number
            validated = self._validate(deployed, parsed)
            predictions, probabilities = await deployed.batcher.submit(
                validated, want_proba=parsed.return_probabilities
            )
            out = render(Answer(deployed, request_id, parsed, predictions, probabilities))
            headers.append((b"x-model-version", version.encode()))
            self._child(self.metrics.rows, name, version).inc(validated.n_rows)
            names = deployed.model.input_names or []
            self.live.observe_batch(
                name, int(version), names, validated.data, predictions, deployed.profile
            )
            if self.logbook is not None:
                self.logbook.log_predictions(
                    PredictionBatch(
                        request_id=request_id,
                        model=name,
                        version=deployed.version.version,
                        role="primary",
                        timestamp=arrived or datetime.now(UTC),
                        features=validated.data,
                        feature_names=names,
                        predictions=predictions,
                        probabilities=probabilities,
                        classes=deployed.class_names,
                        latency_s=time.perf_counter() - start,
                        routing_key=routing_key,
                    )
                )
            if route is not None and route.mode == "shadow":
                same = route.same_signature
                self._shadow(route, parsed, validated if same else None, request_id,
                             routing_key, arrived)  # fmt: skip
        except WatchkeeperError as exc:
            status = exc.http_status
            if isinstance(exc, SchemaError):
                self._count_problems(name, exc)
            out = _json.error_body(exc)
        except Exception as exc:  # the model itself failed: our fault, never the client's
            log.exception("prediction failed for %s", model)
            status = 500
            message = f"{type(exc).__name__}: {exc}"
            out = _json.dumps(
                {"error": {"code": "prediction_failed", "message": message, "details": []}}
            )
        took = time.perf_counter() - start
        self._observe(name, version, protocol, status, took)
        if deployed is not None:
            self.live.observe_request(name, deployed.version.version, took, status)
        return Reply(status, out, headers)

    def _shadow(
        self, route: Route, parsed: ParsedBatch, validated: ValidatedBatch | None,
        request_id: str, routing_key: str | None, arrived: datetime | None,
    ) -> None:  # fmt: skip
        """Copy the request to the shadow, off the response path (``shadow.py``); a copy the
        shadow's full queue cannot take is dropped and counted, so a slow shadow never slows
        production. A shadow with production's signature reuses production's validated batch
        (validating again would give the same batch, at a cost, and count its input problems
        twice)."""
        shadow = route.candidate
        if route.share < 1.0 and self._rng.random() >= route.share:
            return
        copy = Copy(shadow, parsed, validated, request_id, routing_key,
                    arrived or datetime.now(UTC))  # fmt: skip
        self.shadows.offer(copy)

    def _count_shadow(self, shadow: Deployed, outcome: str, copies: int) -> None:
        self._child(self.metrics.shadow, shadow.name, shadow.number, outcome).inc(copies)

    async def drain_shadows(self) -> None:
        """Wait for the queued shadow copies (at shutdown)."""
        await self.shadows.drain()

    def _observe(self, name: str, version: str, protocol: str, status: int, took: float) -> None:
        self._child(self.metrics.duration, name, protocol).observe(took)
        self._child(self.metrics.requests, name, version, protocol, str(status)).inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once: each lookup takes a lock."""
        key = (str(id(metric)), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _validate(
        self, deployed: Deployed, parsed: ParsedBatch, *, count: bool = True
    ) -> ValidatedBatch:
        if deployed.validator is None:
            return unvalidated(parsed)
        validated = deployed.validator.validate(parsed)
        for (field, problem), n in validated.findings.items() if count else ():
            self.metrics.input_problems.labels(deployed.name, field, problem).inc(n)
        return validated

    def _count_problems(self, name: str, exc: SchemaError) -> None:
        for detail in exc.details:
            self.metrics.input_problems.labels(name, detail.field, detail.problem).inc()


def _field_key(parsed: ParsedBatch, field: str | None) -> str | None:
    """The routing key from a request field (its first row's value), when one is configured."""
    if field is None:
        return None
    if parsed.columns is not None and parsed.columns.get(field):
        return str(parsed.columns[field][0])
    if parsed.records and field in parsed.records[0]:
        return str(parsed.records[0][field])
    return None


class RequestIds:
    """Request ids unique across processes and restarts, cheaper than uuid4 per request."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"


def unvalidated(parsed: ParsedBatch) -> ValidatedBatch:
    """A model registered without a signature gets the data as sent."""
    data: Any
    if parsed.columns is not None:
        data = pd.DataFrame(parsed.columns)
    elif parsed.records is not None:
        data = pd.DataFrame.from_records(parsed.records)
    else:
        data = np.asarray(parsed.rows)
    if len(data) == 0:
        raise SchemaError("the request holds no rows")
    return ValidatedBatch(data=data, n_rows=len(data), findings={})


def error_response(exc: WatchkeeperError) -> Response:
    return Response(
        _json.error_body(exc), status_code=exc.http_status, media_type="application/json"
    )
