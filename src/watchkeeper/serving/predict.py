"""One prediction request, whatever protocol it came in: read, parse, validate, batch, answer.

Each protocol module supplies how to parse a body and how to render the answer; this module owns
what they share: the body-size limit, the request id, the error body, and the metrics.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from starlette.requests import Request
from starlette.responses import Response

from watchkeeper.errors import PayloadTooLarge, SchemaError, WatchkeeperError
from watchkeeper.serving.batch import ParsedBatch, ValidatedBatch
from watchkeeper.serving.metrics import ServingMetrics
from watchkeeper.serving.protocols import _json
from watchkeeper.serving.table import Deployed, ModelTable

log = logging.getLogger("watchkeeper.serving")

Parse = Callable[[bytes, Request, Deployed], ParsedBatch]
Render = Callable[["Answer"], bytes]


@dataclass(frozen=True)
class Answer:
    deployed: Deployed
    request_id: str
    parsed: ParsedBatch
    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Request limits: body bytes (default 10 MiB)."""

    max_body_bytes: int = 10 * 1024 * 1024


class Predictor:
    def __init__(self, table: ModelTable, metrics: ServingMetrics, limits: Limits) -> None:
        self.table = table
        self.metrics = metrics
        self.limits = limits

    async def handle(
        self, request: Request, model: str, protocol: str, parse: Parse, render: Render
    ) -> Response:
        start = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        name, version, status = model.partition("@")[0], "", 200
        try:
            body = await self._body(request)
            deployed = await self.table.resolve(model)
            version = deployed.number
            parsed = parse(body, request, deployed)
            validated = self._validate(deployed, parsed)
            predictions, probabilities = await deployed.batcher.submit(
                validated, want_proba=parsed.return_probabilities
            )
            answer = Answer(deployed, request_id, parsed, predictions, probabilities)
            response = Response(render(answer), media_type="application/json")
            response.headers["x-model-version"] = version
            self.metrics.rows.labels(name, version).inc(validated.n_rows)
        except WatchkeeperError as exc:
            status = exc.http_status
            if isinstance(exc, SchemaError):
                self._count_problems(name, exc)
            response = error_response(exc)
        except Exception as exc:  # the model itself failed: our fault, never the client's
            log.exception("prediction failed for %s", model)
            status = 500
            response = Response(
                _json.dumps(
                    {
                        "error": {
                            "code": "prediction_failed",
                            "details": [],
                            "message": f"{type(exc).__name__}: {exc}",
                        }
                    }
                ),
                status_code=500,
                media_type="application/json",
            )
        response.headers["x-request-id"] = request_id
        self.metrics.requests.labels(name, version, protocol, str(status)).inc()
        self.metrics.duration.labels(name, protocol).observe(time.perf_counter() - start)
        return response

    async def _body(self, request: Request) -> bytes:
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(
                f"request body of {declared} bytes is over the {limit}-byte limit"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    def _validate(self, deployed: Deployed, parsed: ParsedBatch) -> ValidatedBatch:
        if deployed.validator is None:
            return unvalidated(parsed)
        validated = deployed.validator.validate(parsed)
        for (field, problem), count in validated.findings.items():
            self.metrics.input_problems.labels(deployed.name, field, problem).inc(count)
        return validated

    def _count_problems(self, name: str, exc: SchemaError) -> None:
        for detail in exc.details:
            self.metrics.input_problems.labels(name, detail.field, detail.problem[:40]).inc()


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
