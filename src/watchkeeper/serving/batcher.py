"""Micro-batching: concurrent requests for one model version become one ``predict`` call.

The policy is adaptive and adds no wait when the server is idle: a request that finds the model
free is predicted at once; requests that arrive while a call is running queue up and go together
in the next call (up to ``max_batch_rows``). ``max_wait`` > 0 additionally holds a batch that is
not full for up to that long, which helps expensive models under steady load. A request that is
already a batch is never split.

The model runs on one worker thread per version, so the event loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from watchkeeper.serving.batch import ValidatedBatch

Outputs = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]
PredictFn = Callable[[Any, bool], Outputs]


@dataclass(frozen=True, kw_only=True)
class BatchingPolicy:
    """How far concurrent requests are coalesced.

    >>> BatchingPolicy()
    BatchingPolicy(max_batch_rows=256, max_wait=0.0)
    """

    max_batch_rows: int = 256
    max_wait: float = 0.0


@dataclass
class _Pending:
    batch: ValidatedBatch
    want_proba: bool
    future: asyncio.Future[Outputs]


class MicroBatcher:
    def __init__(
        self,
        predict: PredictFn,
        *,
        policy: BatchingPolicy = BatchingPolicy(),
        on_batch: Callable[[int, int], None] | None = None,
        name: str = "model",
    ) -> None:
        self._predict = predict
        self.policy = policy
        self._on_batch = on_batch  # (rows in the call, requests still queued)
        self._queue: deque[_Pending] = deque()
        self._busy = False
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"wk-{name}")
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def closed(self) -> bool:
        """The version was unloaded: nothing more may be submitted."""
        return self._closed

    async def submit(self, batch: ValidatedBatch, *, want_proba: bool = False) -> Outputs:
        if self._closed:
            raise RuntimeError("batcher closed")  # never reached by requests: see close()
        future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(batch, want_proba, future))
        self._idle.clear()
        if not self._busy:
            self._busy = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.policy.max_wait > 0:
                    await self._gather_more()
                group = self._take()
                await self._run(loop, group)
        finally:
            self._busy = False
            self._idle.set()

    async def _gather_more(self) -> None:
        deadline = time.perf_counter() + self.policy.max_wait
        while self._rows_queued() < self.policy.max_batch_rows:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.0005))

    def _rows_queued(self) -> int:
        return sum(p.batch.n_rows for p in self._queue)

    def _take(self) -> list[_Pending]:
        group = [self._queue.popleft()]
        rows = group[0].batch.n_rows
        while self._queue and rows + self._queue[0].batch.n_rows <= self.policy.max_batch_rows:
            item = self._queue.popleft()
            rows += item.batch.n_rows
            group.append(item)
        return group

    async def _run(self, loop: asyncio.AbstractEventLoop, group: list[_Pending]) -> None:
        data = concat([p.batch.data for p in group])
        want_proba = any(p.want_proba for p in group)
        rows = sum(p.batch.n_rows for p in group)
        if self._on_batch is not None:
            self._on_batch(rows, len(self._queue))
        try:
            preds, probs = await loop.run_in_executor(
                self._executor, self._predict, data, want_proba
            )
        except Exception as exc:  # handed to every waiting request, which answers 500
            for p in group:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        start = 0
        for p in group:
            stop = start + p.batch.n_rows
            part = probs[start:stop] if probs is not None and p.want_proba else None
            if not p.future.done():
                p.future.set_result((preds[start:stop], part))
            start = stop

    async def close(self) -> None:
        """Wait for queued work to finish, then release the worker thread."""
        while self._busy or self._queue:  # woken, it may have been handed more work already
            await self._idle.wait()
        self._closed = True
        self._executor.shutdown(wait=False)


def concat(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=0)
    return pd.concat(parts, ignore_index=True)
