"""Shadow copies: requests copied to a shadow version and scored in batches, off the response path.

Copying a request costs the request path one append to a queue. Copies wait up to
``linger`` seconds, or until ``max_rows`` rows are waiting, and are then scored together in one
call of the shadow model on its own worker thread. Each copy is logged with role ``shadow``
under its request's id and counted in the live statistics. A full copy of the traffic
therefore costs a fraction of a model call per request, not a second call. At most
``max_queued`` copies wait: a shadow that falls behind has its new copies dropped, and the
caller counts them.

The latency recorded for a copy is the time of the model call it was part of, validation
included, without its wait in the queue. That is what the candidate would take to answer the
request, and it is what the rollout's latency guard compares with production.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from watchkeeper.errors import WatchkeeperError
from watchkeeper.logbook import Logbook, PredictionBatch
from watchkeeper.serving.batch import ParsedBatch, ValidatedBatch
from watchkeeper.serving.batcher import concat
from watchkeeper.serving.live import LiveStats
from watchkeeper.serving.table import Deployed

log = logging.getLogger("watchkeeper.serving")

YIELD_EVERY = 8  # copies logged between two turns of the event loop
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

    def __init__(self, policy: ShadowPolicy, *, validate: Validate, count: Count,
                 live: LiveStats, logbook: Logbook | None) -> None:  # fmt: skip
        """``count(shadow, outcome, n)`` counts copies by outcome: ok, error or dropped."""
        self.policy = policy
        self._validate = validate
        self._count = count
        self._live = live
        self._logbook = logbook
        self._queues: dict[tuple[str, int], deque[Copy]] = {}
        self._drains: dict[tuple[str, int], asyncio.Task[None]] = {}

    def offer(self, copy: Copy) -> bool:
        """Queue a copy; False (and counted as dropped) when the shadow's queue is full."""
        key = (copy.shadow.name, copy.shadow.version.version)
        queue = self._queues.setdefault(key, deque())
        if len(queue) >= self.policy.max_queued:
            self._dropped(copy.shadow, 1)
            return False
        queue.append(copy)
        if key not in self._drains:
            task = asyncio.get_running_loop().create_task(self._drain(key, queue))
            self._drains[key] = task
        return True

    async def drain(self) -> None:
        """Wait until every queued copy is scored (at shutdown)."""
        while self._drains:
            await asyncio.gather(*list(self._drains.values()), return_exceptions=True)

    async def _drain(self, key: tuple[str, int], queue: deque[Copy]) -> None:
        try:
            while queue:
                if _rows(queue) < self.policy.max_rows:
                    await asyncio.sleep(self.policy.linger)
                copies = _take(queue, self.policy.max_rows)
                try:
                    await self._score(copies)
                except Exception:  # never leave the rest of the queue behind
                    log.exception("shadow copies for %s were lost", copies[0].shadow.version.ref)
        finally:
            del self._drains[key]
            if not queue:  # a version shadowed once does not keep its queue for ever
                del self._queues[key]

    async def _score(self, copies: list[Copy]) -> None:
        shadow = copies[0].shadow
        if shadow.batcher.closed:  # the shadow ended (and was unloaded) while these waited
            self._dropped(shadow, len(copies))
            return
        start = time.perf_counter()
        valid: list[tuple[Copy, ValidatedBatch]] = []
        refused = 0
        for c in copies:
            try:
                valid.append((c, c.validated or self._validate(shadow, c.parsed)))
            except WatchkeeperError:  # the request's problems were counted by production
                refused += 1
        if refused:
            self._finish(shadow, refused, time.perf_counter() - start, 422)
        if not valid:
            return
        want_proba = any(c.parsed.return_probabilities for c, _ in valid)
        batch = ValidatedBatch(data=concat([v.data for _, v in valid]),
                               n_rows=sum(v.n_rows for _, v in valid))  # fmt: skip
        try:
            predictions, probabilities = await shadow.batcher.submit(batch, want_proba=want_proba)
        except Exception:  # the shadow's own failure: counted, never seen by a client
            log.warning("shadow %s failed", shadow.version.ref, exc_info=True)
            self._finish(shadow, len(valid), time.perf_counter() - start, 500)
            return
        took = time.perf_counter() - start
        first = 0
        for i, (c, v) in enumerate(valid):
            if i and i % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let requests that arrived meanwhile go first
            last = first + v.n_rows
            if self._logbook is not None:
                proba = probabilities[first:last] if probabilities is not None else None
                self._logbook.log_predictions(
                    PredictionBatch(
                        request_id=c.request_id, model=shadow.name,
                        version=shadow.version.version, role="shadow", timestamp=c.arrived,
                        features=v.data, feature_names=shadow.model.input_names or [],
                        predictions=predictions[first:last],
                        probabilities=proba if c.parsed.return_probabilities else None,
                        classes=shadow.class_names, latency_s=took, routing_key=c.routing_key,
                    )
                )  # fmt: skip
            first = last
        self._finish(shadow, len(valid), took, 200)

    def _dropped(self, shadow: Deployed, copies: int) -> None:
        self._count(shadow, "dropped", copies)
        self._live.observe_shadow_dropped(shadow.name, shadow.version.version, count=copies)

    def _finish(self, shadow: Deployed, copies: int, took: float, status: int) -> None:
        self._count(shadow, "ok" if status < 400 else "error", copies)
        self._live.observe_request(shadow.name, shadow.version.version, took, status,
                                   count=copies)  # fmt: skip


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
