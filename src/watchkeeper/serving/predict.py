"""One prediction request, whatever protocol it came in: read, parse, validate, batch, answer.

Each protocol module supplies how to parse a body and how to render the answer; this module owns
what they share: the body-size limit, the request id, the error body, and the metrics. The ASGI
side lives in ``fast.py``.
"""

from __future__ import annotations

import asyncio
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
from starlette.requests import Request
from starlette.responses import Response

from watchkeeper.errors import (
    MAX_MESSAGE_CHARS,
    InvalidInput,
    PayloadTooLarge,
    SchemaError,
    WatchkeeperError,
    clip,
)
from watchkeeper.logbook import Logbook, PredictionBatch
from watchkeeper.serving.batch import ParsedBatch, ValidatedBatch
from watchkeeper.serving.live import LiveStats
from watchkeeper.serving.metrics import ServingMetrics
from watchkeeper.serving.protocols import _json
from watchkeeper.serving.routing import to_candidate
from watchkeeper.serving.shadow import Copy, ShadowCopier, ShadowPolicy
from watchkeeper.serving.table import Deployed, ModelTable, Route

log = logging.getLogger("watchkeeper.serving")

Parse = Callable[[bytes, str, Deployed, int], ParsedBatch]  # body, content type, version, rows
Render = Callable[["Answer"], bytes]
ReadBody = Callable[[int], Awaitable[bytes]]  # reads the body, refusing more than N bytes
JSON = b"application/json"
OTHER = "<other>"  # the field label of an input problem about a field the signature lacks


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


UNKNOWN = "<unknown>"  # the metric label of a model name this server does not serve


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Request limits.

    ``max_body_bytes``: prediction and feedback bodies (default 10 MiB). ``max_api_body_bytes``:
    management API bodies (default 1 MiB; they hold a few fields). ``offload_bytes``: bodies
    larger than this are parsed and validated in a worker thread, so the event loop keeps
    answering; smaller ones stay on the loop, where they cost less than a thread hop.
    """

    max_body_bytes: int = 10 * 1024 * 1024
    max_api_body_bytes: int = 1024 * 1024
    offload_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_api_body_bytes", "offload_bytes"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"{name} must be at least 1, got {getattr(self, name)}")


async def read_request(request: Request, limit: int) -> bytes:
    """A Starlette request's body, refused (413) as soon as it is over ``limit`` bytes: by its
    Content-Length before reading anything, else while it streams in."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body of {int(length)} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


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
        name, version, status = UNKNOWN, "", 200  # the name once resolved: a served model
        deployed: Deployed | None = None
        headers = [(b"content-type", JSON), (b"x-request-id", request_id.encode())]
        try:
            deployed = await self.table.resolve(model)  # an unknown model: its body is not read
            name = deployed.name
            body = await read_body(self.limits.max_body_bytes)
            max_rows = self.table.validation.max_rows
            offload = len(body) > self.limits.offload_bytes
            if offload:
                parsed = await asyncio.to_thread(parse, body, content_type, deployed, max_rows)
            else:
                parsed = parse(body, content_type, deployed, max_rows)
            del body
            route = self.table.route(model) if "@" not in model else None
            if route is not None:
                routing_key = routing_key or _field_key(parsed, route.routing_field)
                if route.answers and to_candidate(name, route.share, routing_key, self._rng):
                    deployed = route.candidate
            version = deployed.number
            if offload:
                validated = await asyncio.to_thread(self._validate, deployed, parsed)
            else:
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
            if isinstance(exc, SchemaError) and deployed is not None:
                self._count_problems(deployed, exc)
            out = _json.error_body(exc)
        except Exception as exc:  # the model itself failed: our fault, never the client's
            log.exception("prediction failed for %s", model)
            status = 500
            message = clip(f"{type(exc).__name__}: {exc}", MAX_MESSAGE_CHARS)
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
            return unvalidated(parsed, self.table.validation.max_rows)
        validated = deployed.validator.validate(parsed)
        for (field, problem), n in validated.findings.items() if count else ():
            self.metrics.input_problems.labels(deployed.name, field, problem).inc(n)
        return validated

    def _count_problems(self, deployed: Deployed, exc: SchemaError) -> None:
        """Counts per model, field and problem; a field the signature lacks (a client's junk
        key) is counted as ``<other>``, so clients cannot create series."""
        known = deployed.model.input_names or ()
        for detail in exc.details:
            field = detail.field if detail.field in known or detail.field == "*" else OTHER
            self._child(self.metrics.input_problems, deployed.name, field, detail.problem).inc()


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


def unvalidated(parsed: ParsedBatch, max_rows: int) -> ValidatedBatch:
    """A model registered without a signature gets the data as sent (at most ``max_rows``)."""
    if parsed.n_rows > max_rows:
        raise PayloadTooLarge(
            f"the request holds {parsed.n_rows} rows; at most {max_rows} are accepted at once"
        )
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
