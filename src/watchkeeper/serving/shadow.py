"""Shadow copies: requests copied to a shadow version and scored in batches, off the response path.

Copying a request costs the request path one append to a queue. Copies wait up to
``linger`` seconds, or until ``max_rows`` rows are waiting, and are then scored together in one
call of the shadow model on its own worker thread. Each copy is logged with role ``shadow``
under its request's id and counted in the live statistics. A full copy of the traffic
therefore costs a fraction of a model call per request, not a second call. At most
``max_queued`` copies wait: a shadow that falls behind has its new copies dropped, and the
caller counts them.

Each shadow's draining task is supervised: a failure met while scoring copies (a bug: the shadow
model's own failures are counted as errors in ``_call``) is logged with its traceback, the copies
it held are counted as errors, ``on_failure("shadow_copier")`` counts it in ``/metrics``, and the
task carries on with the rest of the queue after a short backoff.

The latency recorded for a copy is the time of the model call it was part of, validation
included, without its wait in the queue; the rollout's latency guard compares it with
production's. For a model whose cost grows with the rows of a call (not one whose cost is per
call, like most scikit-learn models), that time overstates what one request would take under
heavy traffic: lower ``max_rows`` (1 scores every copy on its own) so that the guard compares
like with like.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from watchkeeper.errors import InvalidInput, WatchkeeperError
from watchkeeper.logbook import Logbook, PredictionBatch
from watchkeeper.serving.batch import ParsedBatch, ValidatedBatch
from watchkeeper.serving.batcher import concat
from watchkeeper.serving.live import LiveStats
from watchkeeper.serving.table import Deployed

log = logging.getLogger("watchkeeper.serving")

YIELD_EVERY = 8  # copies logged between two turns of the event loop
BACKOFF_FIRST, BACKOFF_MAX = 0.01, 1.0  # seconds a draining task waits after a failure
Validate = Callable[[Deployed, ParsedBatch], ValidatedBatch]
Count = Callable[[Deployed, str, int], None]  # shadow, outcome (ok | error | dropped), copies


@dataclass(frozen=True, kw_only=True)
class ShadowPolicy:
    """How copies for a shadow are batched and bounded.

    >>> ShadowPolicy()
    ShadowPolicy(linger=0.01, max_rows=64, max_queued=256)
    """

    linger: float = 0.01  # seconds the first copy of a batch waits for others
    max_rows: int = 64  # rows scored in one call (a copy is never split)
    max_queued: int = 256  # copies waiting, per shadow; more are dropped

    def __post_init__(self) -> None:
        if self.linger < 0:
            raise InvalidInput(f"linger must be >= 0, got {self.linger}")
        if self.max_rows < 1 or self.max_queued < 1:
            raise InvalidInput("max_rows and max_queued must be at least 1")


@dataclass(frozen=True, slots=True)
class Copy:
    shadow: Deployed
    parsed: ParsedBatch
    validated: ValidatedBatch | None  # None: the shadow's signature differs, validate it anew
    request_id: str
    routing_key: str | None
    arrived: datetime


class ShadowCopier:
    """One queue and one draining task per shadow version, on the server's event loop."""

    TASK = "shadow_copier"

    def __init__(self, policy: ShadowPolicy, *, validate: Validate, count: Count,
                 live: LiveStats, logbook: Logbook | None,
                 on_failure: Callable[[str], None] | None = None) -> None:  # fmt: skip
        """``count(shadow, outcome, n)`` counts copies by outcome: ok, error or dropped;
        ``on_failure(TASK)`` counts a failure of a draining task."""
        self.policy = policy
        self.on_failure = on_failure
        self._validate = validate
        self._count = count
        self._live = live
        self._logbook = logbook
        self._queues: dict[tuple[str, int], deque[Copy]] = {}
        self._drains: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._wakers: dict[tuple[str, int], asyncio.Future[None]] = {}
        self._settled: dict[tuple[str, int], int] = {}  # copies being scored, counted already

    def offer(self, copy: Copy) -> bool:
        """Queue a copy; False (and counted as dropped) when the shadow's queue is full."""
        key = (copy.shadow.name, copy.shadow.version.version)
        queue = self._queues.setdefault(key, deque())
        if len(queue) >= self.policy.max_queued:
            self._dropped(copy.shadow, 1, queued=False)
            return False
        queue.append(copy)
        waker = self._wakers.get(key)
        # copies, not rows: a lower bound of the rows that costs nothing on the request path
        if waker is not None and not waker.done() and len(queue) >= self.policy.max_rows:
            waker.set_result(None)  # a full call is waiting: no need to linger longer
        if key not in self._drains:
            task = asyncio.get_running_loop().create_task(self._drain(key, queue))
            self._drains[key] = task
        return True

    async def drain(self) -> None:
        """Wait until every queued copy is scored (at shutdown)."""
        while self._drains:
            await asyncio.gather(*list(self._drains.values()), return_exceptions=True)

    async def _drain(self, key: tuple[str, int], queue: deque[Copy]) -> None:
        failures = 0
        try:
            while queue:
                copies: list[Copy] = []
                try:
                    if _rows(queue) < self.policy.max_rows:
                        await self._linger(key)
                    copies = _take(queue, self.policy.max_rows)
                    self._settled[key] = 0
                    await self._score(copies)
                    self._settled.pop(key, None)
                    failures = 0
                except Exception:  # never leave the rest of the queue behind
                    failures += 1
                    self._lost(key, copies)
                    await asyncio.sleep(min(BACKOFF_FIRST * 2.0 ** min(failures, 16),
                                            BACKOFF_MAX))  # fmt: skip
        finally:
            del self._drains[key]
            if not queue:  # a version shadowed once does not keep its queue for ever
                del self._queues[key]

    async def _linger(self, key: tuple[str, int]) -> None:
        """Wait ``linger`` seconds, or less if ``offer`` fills a call meanwhile."""
        loop = asyncio.get_running_loop()
        waker = self._wakers[key] = loop.create_future()
        timer = loop.call_later(self.policy.linger, _wake, waker)
        try:
            await waker
        finally:
            timer.cancel()
            del self._wakers[key]

    async def _score(self, copies: list[Copy]) -> None:
        shadow = copies[0].shadow
        if shadow.batcher.closed:  # the shadow ended (and was unloaded) while these waited
            self._dropped(shadow, len(copies))
            return
        start = time.perf_counter()
        groups: dict[tuple[Any, ...], list[tuple[Copy, ValidatedBatch]]] = {}
        refused = failed = 0
        for c in copies:
            try:
                v = c.validated or self._validate(shadow, c.parsed)
            except WatchkeeperError:  # the request's problems were counted by production
                refused += 1
                continue
            except Exception:
                log.exception("shadow %s could not validate a copy", shadow.version.ref)
                failed += 1
                continue
            groups.setdefault(_layout(v.data), []).append((c, v))
        validation = time.perf_counter() - start
        if refused:
            self._finish(shadow, refused, validation, 422)
        if failed:
            self._finish(shadow, failed, validation, 500)
        for group in groups.values():  # only data of one layout goes into one call
            await self._call(shadow, group, validation)

    async def _call(self, shadow: Deployed, group: list[tuple[Copy, ValidatedBatch]],
                    validation: float) -> None:  # fmt: skip
        start = time.perf_counter()
        rows = sum(v.n_rows for _, v in group)
        try:
            batch = ValidatedBatch(data=concat([v.data for _, v in group]), n_rows=rows)
            want_proba = any(c.parsed.return_probabilities for c, _ in group)
            predictions, probabilities = await shadow.batcher.submit(batch, want_proba=want_proba)
            if len(predictions) != rows or (probabilities is not None
                                            and len(probabilities) != rows):  # fmt: skip
                raise ValueError(f"the shadow answered {len(predictions)} rows for {rows}")
        except Exception:  # the shadow's own failure: counted, never seen by a client
            log.warning("shadow %s failed", shadow.version.ref, exc_info=True)
            self._finish(shadow, len(group), validation + time.perf_counter() - start, 500)
            return
        took = validation + time.perf_counter() - start
        first = unrecorded = 0
        for i, (c, v) in enumerate(group):
            if i and i % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let requests that arrived meanwhile go first
            last = first + v.n_rows
            try:
                self._record(shadow, c, v, predictions[first:last],
                             probabilities[first:last] if probabilities is not None else None,
                             took)  # fmt: skip
            except Exception:
                log.exception("shadow answer to %s could not be recorded", c.request_id)
                unrecorded += 1
            first = last
        self._finish(shadow, len(group) - unrecorded, took, 200)
        if unrecorded:
            self._finish(shadow, unrecorded, took, 500)

    def _record(self, shadow: Deployed, c: Copy, v: ValidatedBatch, predictions: Any,
                probabilities: Any, took: float) -> None:  # fmt: skip
        if self._logbook is None:
            return
        self._logbook.log_predictions(
            PredictionBatch(
                request_id=c.request_id, model=shadow.name, version=shadow.version.version,
                role="shadow", timestamp=c.arrived, features=v.data,
                feature_names=shadow.model.input_names or [], predictions=predictions,
                probabilities=probabilities if c.parsed.return_probabilities else None,
                classes=shadow.class_names, latency_s=took, routing_key=c.routing_key,
                signature=shadow.model.signature,
            )
        )  # fmt: skip

    def _lost(self, key: tuple[str, int], copies: list[Copy]) -> None:
        """A draining task's failure (call within ``except``): logged, counted, and the copies
        it held counted as errors."""
        log.exception("shadow %s@%s: %d copies were lost", *key, len(copies))
        if self.on_failure is not None:
            self.on_failure(self.TASK)
        unsettled = len(copies) - self._settled.pop(key, 0)
        if unsettled > 0:
            self._count(copies[0].shadow, "error", unsettled)

    def _dropped(self, shadow: Deployed, copies: int, *, queued: bool = True) -> None:
        """``queued``: copies taken from the queue (else refused by ``offer``)."""
        self._live.observe_shadow_dropped(shadow.name, shadow.version.version, count=copies)
        if queued:
            self._settle(shadow, "dropped", copies)
        else:
            self._count(shadow, "dropped", copies)

    def _finish(self, shadow: Deployed, copies: int, took: float, status: int) -> None:
        self._live.observe_request(shadow.name, shadow.version.version, took, status,
                                   count=copies)  # fmt: skip
        self._settle(shadow, "ok" if status < 400 else "error", copies)

    def _settle(self, shadow: Deployed, outcome: str, copies: int) -> None:
        """Count copies by outcome, once: a failure after this counts only the others."""
        key = (shadow.name, shadow.version.version)
        if key in self._settled:
            self._settled[key] += copies
        self._count(shadow, outcome, copies)


def _wake(waker: asyncio.Future[None]) -> None:
    if not waker.done():
        waker.set_result(None)


def _layout(data: Any) -> tuple[Any, ...]:
    """Batches that can be concatenated share a layout: arrays of one width, or frames with the
    same columns in the same order (a model without a signature gets what clients sent)."""
    if isinstance(data, pd.DataFrame):
        return ("frame", tuple(data.columns))
    return ("array", np.shape(data)[1:])


def _rows(queue: deque[Copy]) -> int:
    return sum(c.parsed.n_rows for c in queue)


def _take(queue: deque[Copy], max_rows: int) -> list[Copy]:
    """Copies from the front, up to ``max_rows`` rows (at least one) of one loaded version."""
    taken = [queue.popleft()]
    rows = taken[0].parsed.n_rows
    while (queue and queue[0].shadow is taken[0].shadow
           and rows + queue[0].parsed.n_rows <= max_rows):  # fmt: skip
        rows += queue[0].parsed.n_rows
        taken.append(queue.popleft())
    return taken
