"""One prediction request, whatever protocol it came in: read, parse, validate, batch, answer.

Each protocol module supplies how to parse a body and how to render the answer; this module owns
what they share: the body-size limit, the request id, the error body, and the metrics. The ASGI
side lives in ``fast.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
    InvalidInput,
    PayloadTooLarge,
    PredictionFailed,
    PredictionTimeout,
    SchemaError,
    WatchkeeperError,
)
from watchkeeper.logbook import Logbook, PredictionBatch
from watchkeeper.serving.batch import ParsedBatch, ValidatedBatch
from watchkeeper.serving.live import LiveStats
from watchkeeper.serving.metrics import ServingMetrics
from watchkeeper.serving.protocols import wire
from watchkeeper.serving.routing import to_candidate
from watchkeeper.serving.row_plan import RowPlan, build_plan
from watchkeeper.serving.shadow import Copy, ShadowCopier, ShadowPolicy
from watchkeeper.serving.table import Deployed, ModelTable, Route

log = logging.getLogger("watchkeeper.serving")

Parse = Callable[[bytes, str, Deployed, int], ParsedBatch]  # body, content type, version, rows
Render = Callable[["Answer"], "bytes | wire.Rendered"]
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


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Reply:
    """An answer to send. ``after`` holds the request's records (metrics, live statistics, the
    logbook, the shadow copy) when the caller asked for them to be deferred: it must be called
    once the answer is sent, whatever happens to the sending."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]
    after: Callable[[], None] = _nothing


UNKNOWN = "<unknown>"  # the metric label of a model name this server does not serve


@dataclass
class _Call:
    """What is known of one request as it goes: filled in step by step."""

    model: str
    request_id: str
    routing_key: str | None
    arrived: datetime | None
    start: float = dataclasses.field(default_factory=time.perf_counter)
    name: str = UNKNOWN  # the name once resolved: a served model
    version: str = ""
    deployed: Deployed | None = None
    route: Route | None = None
    parsed: ParsedBatch | None = None
    validated: ValidatedBatch | None = None


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
        defer_records: bool = False,
    ) -> Reply:
        """The answer to one request. Its records are made before returning, or, with
        ``defer_records``, by the reply's ``after`` (the ASGI route sends the answer first: at
        one connection the records would otherwise sit between the model and the client)."""
        call = _Call(model, request_id or self._ids.next(), routing_key,
                     datetime.now(UTC) if self.logbook is not None else None)  # fmt: skip
        status = 200
        headers = [(b"content-type", JSON), (b"x-request-id", call.request_id.encode())]
        answered: Answer | None = None
        try:
            answer = await self._answer(call, parse, read_body, content_type)
            out, headers = wire.unpack(render(answer), headers)
        except PredictionTimeout as exc:
            log.error("%s, request id %s: %s", model, call.request_id, exc.message)
            status, out = wire.error_body(exc, protocol)
        except PredictionFailed as exc:
            status, out = wire.error_body(self._failed(call, exc, "the model"), protocol)
        except WatchkeeperError as exc:
            if isinstance(exc, SchemaError) and call.deployed is not None:
                self._count_problems(call.deployed, exc)
            status, out = wire.error_body(exc, protocol)
        except Exception as exc:  # our own fault, never the client's
            status, out = wire.error_body(self._failed(call, exc, "the server"), protocol)
        else:
            headers.append((b"x-model-version", call.version.encode()))
            answered = answer
        took = time.perf_counter() - call.start

        def records() -> None:
            if answered is not None:
                self._record(call, answered)
            self._observe(call.name, call.version, protocol, status, took)
            if call.deployed is not None:
                number = call.deployed.version.version
                observe = self.live.observe_request
                self._keep("live", call, lambda: observe(call.name, number, took, status))

        if defer_records:
            return Reply(status, out, headers, records)
        records()
        return Reply(status, out, headers)

    async def _answer(
        self, call: _Call, parse: Parse, read_body: ReadBody, content_type: str
    ) -> Answer:
        """Parse and validate with the signature of the version that answers, then predict."""
        production = await self.table.resolve(call.model)  # unknown model: body not read
        call.deployed, call.name = production, production.name
        body = await read_body(self.limits.max_body_bytes)
        offload = len(body) > self.limits.offload_bytes

        async def read(deployed: Deployed) -> ParsedBatch:
            return await self._parse(parse, body, content_type, deployed, offload)

        call.route = self.table.route(call.model) if "@" not in call.model else None
        deployed, parsed = await self._pick(call, production, read)
        body = b""  # the request's bytes are not kept while the model runs
        call.deployed, call.version = deployed, deployed.number
        if offload:
            validated = await asyncio.to_thread(self._validate, deployed, parsed)
        else:
            validated = self._validate(deployed, parsed)
        call.parsed, call.validated = parsed, validated
        predictions, probabilities = await deployed.batcher.submit(
            validated, want_proba=parsed.return_probabilities
        )
        return Answer(deployed, call.request_id, parsed, predictions, probabilities)

    async def _pick(
        self, call: _Call, production: Deployed, read: Callable[[Deployed], Awaitable[ParsedBatch]]
    ) -> tuple[Deployed, ParsedBatch]:
        """The version that answers, and the request as that version reads it. A routing key
        taken from the body comes from production's reading of it, or the candidate's when
        production cannot read it (a candidate with another signature)."""
        route = call.route
        if route is None:
            return production, await read(production)
        parsed, reader = None, production
        if call.routing_key is None and route.routing_field is not None:
            try:
                parsed = await read(production)
            except WatchkeeperError:
                if not route.answers or route.same_signature:
                    raise
                parsed, reader = await read(route.candidate), route.candidate
            call.routing_key = _field_key(parsed, route.routing_field)
        chosen = production
        if route.answers and to_candidate(call.name, route.share, call.routing_key, self._rng):
            chosen = route.candidate
        if parsed is None or (reader is not chosen and not route.same_signature):
            parsed = await read(chosen)
        return chosen, parsed

    async def _parse(
        self, parse: Parse, body: bytes, content_type: str, deployed: Deployed, offload: bool
    ) -> ParsedBatch:
        max_rows = self.table.validation.max_rows
        if offload:
            return await asyncio.to_thread(parse, body, content_type, deployed, max_rows)
        return parse(body, content_type, deployed, max_rows)

    def _failed(self, call: _Call, exc: Exception, who: str) -> PredictionFailed:
        """A 500: the request id, never the exception's text, which goes to the log."""
        log.error("prediction failed for %s, request id %s", call.model, call.request_id,
                  exc_info=exc)  # fmt: skip
        return PredictionFailed(
            f"{who} failed on this request; see the server log, request id {call.request_id}"
        )

    def _record(self, call: _Call, answer: Answer) -> None:
        """After the answer: counters, live statistics, the logbook and the shadow copy. A
        failure here never turns an answered prediction into an error: it is logged and
        counted as a dropped record."""
        deployed, validated = answer.deployed, call.validated
        assert validated is not None  # set by _answer before any prediction
        self._child(self.metrics.rows, call.name, call.version).inc(validated.n_rows)
        names = deployed.model.input_names or plan_names(deployed, validated.data)
        self._keep("live", call, lambda: self.live.observe_batch(
            call.name, int(call.version), names, validated.data, answer.predictions,
            deployed.profile,
        ))  # fmt: skip
        logbook = self.logbook
        if logbook is not None:
            self._keep("logbook", call, lambda: logbook.log_predictions(PredictionBatch(
                request_id=call.request_id,
                model=call.name,
                version=deployed.version.version,
                role="primary",
                timestamp=call.arrived or datetime.now(UTC),
                features=validated.data,
                feature_names=names,
                predictions=answer.predictions,
                probabilities=answer.probabilities,
                classes=deployed.class_names,
                latency_s=time.perf_counter() - call.start,
                routing_key=call.routing_key,
                signature=deployed.model.signature,
            )))  # fmt: skip
        route, parsed = call.route, call.parsed
        if route is not None and route.mode == "shadow" and parsed is not None:
            same = route.same_signature
            self._keep("shadow", call, lambda: self._shadow(
                route, parsed, validated if same else None, call.request_id, call.routing_key,
                call.arrived,
            ))  # fmt: skip

    def _keep(self, sink: str, call: _Call, record: Callable[[], object]) -> None:
        try:
            record()
        except Exception:
            log.exception("the %s record of request id %s was dropped", sink, call.request_id)
            self._child(self.metrics.records_dropped, sink).inc()

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
        self._child(self.metrics.duration, name, version, protocol).observe(took)
        self._child(self.metrics.requests, name, version, protocol, str(status)).inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        return self.metrics.child(metric, *labels)

    def _validate(
        self, deployed: Deployed, parsed: ParsedBatch, *, count: bool = True
    ) -> ValidatedBatch:
        if deployed.validator is None:
            return unvalidated(parsed, self.table.validation.max_rows, deployed)
        validated = deployed.validator.validate(parsed)
        for (field, problem), n in validated.findings.items() if count else ():
            self._child(self.metrics.input_problems, deployed.name, field, problem).inc(n)
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


def unvalidated(
    parsed: ParsedBatch, max_rows: int, deployed: Deployed | None = None
) -> ValidatedBatch:
    """A model registered without a signature gets the data as sent (at most ``max_rows``).

    Keyed rows of plain numbers for a model that takes arrays become one float64 array in the
    order of the version's :class:`RowPlan` (built once per version), as the signature path
    does; anything else (other keys, other types, a model that wants a frame) is built into a
    DataFrame as before, so its answer and its errors are unchanged."""
    if parsed.n_rows > max_rows:
        raise PayloadTooLarge(
            f"the request holds {parsed.n_rows} rows; at most {max_rows} are accepted at once"
        )
    if deployed is not None and parsed.rows is None and deployed.model.input_kind == "array":
        plan = plan_for(deployed, parsed)
        arr = plan.array(parsed) if plan is not None else None
        if arr is not None:
            return ValidatedBatch(data=arr, n_rows=len(arr), findings={})
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


def plan_for(deployed: Deployed, parsed: ParsedBatch) -> RowPlan | None:
    """The version's plan (kept on its :class:`Deployed`): built on its first keyed request,
    then reused."""
    if deployed.row_plan is None:
        plan = build_plan(deployed.model, parsed)
        if plan is None and deployed.model.input_names is None:
            return None  # not settled: the next keyed request may name the columns
        deployed.row_plan = plan or False
    return deployed.row_plan or None


def plan_names(deployed: Deployed, data: Any) -> list[str]:
    """Column names of an unvalidated array batch (for the logbook and live statistics): the
    plan's, else ``f0 .. f{k-1}`` for positional rows. A DataFrame carries its own: none."""
    if not isinstance(data, np.ndarray) or data.ndim != 2:
        return []
    plan = deployed.row_plan
    if plan and data.shape[1] == plan.k:
        return list(plan.names)
    return [f"f{i}" for i in range(data.shape[1])]


def error_response(exc: WatchkeeperError, protocol: str = "api") -> Response:
    """``exc`` in the error shape of ``protocol`` (see ``protocols/wire.py``)."""
    status, body = wire.error_body(exc, protocol)
    return Response(body, status_code=status, media_type="application/json")
