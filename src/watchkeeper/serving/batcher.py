"""Micro-batching: concurrent requests for one model version become one ``predict`` call.

The policy is adaptive and adds no wait when the server is idle: a request that finds the model
free is predicted at once; requests that arrive while a call is running queue up and go together
in the next call (up to ``max_batch_rows``). A request that is already a batch is never split.

For an expensive model (calls averaging ``ADAPTIVE_MIN_CALL`` or more) under load, the clients a
call has just answered are about to send again, and without a wait each call would take only
the half of them that arrived while the last one ran (measured: a 100-tree forest at 32
connections ran batches of 16). So when fewer requests are queued than were recently
outstanding at once, the next call waits for the rest: at most ``ADAPTIVE_SHARE`` of the
model's average call time (never over ``ADAPTIVE_MAX_WAIT``) of idle loop time, and at most one
average call in wall time. A wait that runs out lowers the expected count to what came, so a
fall in traffic holds one call, not the many it would take the peak to decay. A lone client is
never held: one request outstanding is all it ever has. ``max_wait`` > 0 replaces this with a
fixed wait.

Every submitted request gets an answer or an error, whatever the batch holds:

- only requests of one layout (columns, their order and types; an array's width and type) share
  a call; others wait for the next call, and a group that still cannot be joined is scored one
  request at a time;
- a model that raises fails every request of its call with :class:`PredictionFailed` (the
  model's exception is its ``__cause__``, for the log, never for the client);
- a model that returns another number of rows than it was given fails the call the same way;
- a model that does not answer within the policy's timeout fails the call with
  :class:`PredictionTimeout` (504). A thread cannot be killed: the hung call keeps its thread,
  which is abandoned, and later calls run on a fresh one. At most ``MAX_HUNG_CALLS`` may hang at
  once per version; past that, calls fail at once until one of them returns;
- the drain task is kept and supervised: an unexpected exception fails the requests it held,
  is logged and reported (``on_fault("crash")``), and draining carries on.

The model runs on a worker thread per version, so the event loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from watchkeeper.errors import InvalidInput, PredictionFailed, PredictionTimeout, WatchkeeperError
from watchkeeper.serving.batch import ValidatedBatch
from watchkeeper.serving.model_thread import ModelThread

log = logging.getLogger("watchkeeper.serving")

Outputs = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]
PredictFn = Callable[[Any, bool], Outputs]
FaultHook = Callable[[str], None]  # "crash", "timeout" (a call hung), "returned" (it came back)
MAX_HUNG_CALLS = 4  # per version: abandoned threads still running a call past its timeout
ADAPTIVE_MIN_CALL = 0.002  # s: cheaper models are never held (the wait would cost more)
ADAPTIVE_SHARE = 0.1  # of the average call time, at most, spent waiting for more requests
ADAPTIVE_MAX_WAIT = 0.02  # s
_PEAK_DECAY = 0.9  # per call: how fast the outstanding peak forgets a burst
_STEP = 0.0005  # s: the adaptive wait looks at the queue this often


@dataclass(frozen=True, kw_only=True)
class BatchingPolicy:
    """How far concurrent requests are coalesced, and how long one model call may take.

    ``timeout``: seconds a model call may run before its requests get 504; ``model_timeouts``:
    per-model overrides, as ``(model, seconds)`` pairs.

    >>> BatchingPolicy()
    BatchingPolicy(max_batch_rows=256, max_wait=0.0, timeout=30.0, model_timeouts=())
    >>> BatchingPolicy(model_timeouts=(("churn", 5.0),)).timeout_for("churn")
    5.0
    """

    max_batch_rows: int = 256
    max_wait: float = 0.0
    timeout: float = 30.0
    model_timeouts: tuple[tuple[str, float], ...] = field(default=())

    def __post_init__(self) -> None:  # from JSON, pairs arrive as lists
        pairs = tuple((str(name), float(seconds)) for name, seconds in self.model_timeouts)
        object.__setattr__(self, "model_timeouts", pairs)
        for name, seconds in (("*", self.timeout), *pairs):
            if not seconds > 0:
                raise InvalidInput(f"the prediction timeout of {name} must be > 0, not {seconds}")

    def timeout_for(self, model: str) -> float:
        return dict(self.model_timeouts).get(model, self.timeout)


@dataclass
class _Pending:
    batch: ValidatedBatch
    want_proba: bool
    future: asyncio.Future[Outputs]
    layout: Hashable


class MicroBatcher:
    def __init__(
        self,
        predict: PredictFn,
        *,
        policy: BatchingPolicy = BatchingPolicy(),
        on_batch: Callable[[int, int], None] | None = None,
        on_fault: FaultHook | None = None,
        name: str = "model",
    ) -> None:
        self._predict = predict
        self.policy = policy
        self.timeout = policy.timeout_for(name)
        self._on_batch = on_batch  # (rows in the call, requests still queued)
        self.on_fault = on_fault
        self._name = name
        self._queue: deque[_Pending] = deque()
        self._drainer: asyncio.Task[None] | None = None  # kept: a task nobody holds may vanish
        self._closed = False
        self._thread = self._new_thread()
        self.hung = 0  # calls past their timeout whose thread has not returned yet
        self.call_seconds = 0.0  # moving average of a model call's duration
        self.waits = 0  # calls the adaptive policy held for more requests
        self._calling = 0  # requests in the call running now
        self._peak = 0.0  # requests recently outstanding at once (queued + in the call)
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def closed(self) -> bool:
        """The version was unloaded: nothing more may be submitted."""
        return self._closed

    async def submit(self, batch: ValidatedBatch, *, want_proba: bool = False) -> Outputs:
        if self._closed:
            raise RuntimeError("batcher closed")  # never reached by requests: see close()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outputs] = loop.create_future()
        self._queue.append(_Pending(batch, want_proba, future, layout(batch.data)))
        self._peak = max(self._peak, len(self._queue) + self._calling)
        self._idle.clear()
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain(), name=f"wk-batcher-{self._name}")
        return await future

    async def _drain(self) -> None:
        group: list[_Pending] = []
        try:
            while self._queue:
                group = []
                try:
                    if self.policy.max_wait > 0:
                        await self._gather_more()
                    else:
                        await self._gather_adaptive()
                    self._take(group)
                    await self._run(group)
                except Exception as exc:  # a bug here must strand nobody: supervised
                    self._crashed(group, exc)
        finally:
            self._drainer = None
            stranded = [p for p in [*group, *self._queue] if not p.future.done()]
            for p in stranded:  # only when cancelled: none is left else
                _fail(p, PredictionFailed("the batcher stopped before this request was answered"))
            self._queue.clear()
            self._idle.set()

    def _crashed(self, group: list[_Pending], exc: Exception) -> None:
        log.error("the batcher of %s failed; it carries on", self._name, exc_info=exc)
        if not group and self._queue:  # never spin on a request that makes the batcher fail
            group.append(self._queue.popleft())
        for p in group:
            _fail(p, _model_failed(exc))
        self._report("crash")

    def _report(self, fault: str) -> None:
        if self.on_fault is not None:
            try:
                self.on_fault(fault)
            except Exception:
                log.exception("could not count a %s of the batcher of %s", fault, self._name)

    async def _gather_more(self) -> None:
        deadline = time.perf_counter() + self.policy.max_wait
        while self._rows_queued() < self.policy.max_batch_rows:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 0.0005))

    async def _gather_adaptive(self) -> None:
        """Hold the next call for the requests recently outstanding, when the model is expensive
        enough for the wait to pay (see the module's docstring). The wait is counted in idle
        loop time: while the loop sends the last call's answers and reads the requests coming
        back, the clock stands still (it would otherwise run out before the first one is back),
        and one call's duration bounds it in wall time."""
        expected = math.ceil(self._peak)
        if self.call_seconds < ADAPTIVE_MIN_CALL or len(self._queue) >= expected:
            return
        self.waits += 1
        budget = min(ADAPTIVE_SHARE * self.call_seconds, ADAPTIVE_MAX_WAIT)
        deadline = time.perf_counter() + self.call_seconds
        while len(self._queue) < expected and self._rows_queued() < self.policy.max_batch_rows:
            step = min(budget, _STEP)
            if step <= 0 or time.perf_counter() >= deadline:
                # those clients are gone (traffic fell, or moved: a shadow's copies of every
                # request became a canary's share of them): hold no more calls for them
                self._peak = float(len(self._queue))
                return
            await asyncio.sleep(step)
            budget -= step

    def _rows_queued(self) -> int:
        return sum(p.batch.n_rows for p in self._queue)

    def _take(self, group: list[_Pending]) -> None:
        """The head of the queue and, up to the row limit, queued requests of its layout;
        the others keep their order for the next call."""
        head = self._queue.popleft()
        group.append(head)
        rows = head.batch.n_rows
        rest: deque[_Pending] = deque()
        while self._queue:
            item = self._queue.popleft()
            fits = rows + item.batch.n_rows <= self.policy.max_batch_rows
            if fits and item.layout == head.layout:
                rows += item.batch.n_rows
                group.append(item)
            else:
                rest.append(item)
        self._queue = rest

    async def _run(self, group: list[_Pending]) -> None:
        try:
            data = concat([p.batch.data for p in group])
        except Exception:  # one layout, yet not joinable: each request on its own
            log.warning("%d requests for %s could not be joined; scored one by one",
                        len(group), self._name, exc_info=True)  # fmt: skip
            for p in group:
                await self._run([p])
            return
        want_proba = any(p.want_proba for p in group)
        rows = sum(p.batch.n_rows for p in group)
        if self._on_batch is not None:
            self._on_batch(rows, len(self._queue))
        started = time.perf_counter()
        self._calling = len(group)
        try:
            preds, probs = await self._call(data, want_proba)
            _check_rows(preds, probs if want_proba else None, rows)
        except WatchkeeperError as exc:  # ours: a timeout or a wrong answer
            for p in group:
                _fail(p, exc)
            return
        except Exception as exc:  # the model's own: handed to every request of the call
            for p in group:
                _fail(p, _model_failed(exc))
            return
        finally:
            self._called(time.perf_counter() - started)
        start = 0
        for p in group:
            stop = start + p.batch.n_rows
            part = probs[start:stop] if probs is not None and p.want_proba else None
            if not p.future.done():
                p.future.set_result((preds[start:stop], part))
            start = stop

    def _called(self, seconds: float) -> None:
        """After each call: its duration into the average, the outstanding peak decayed."""
        first = self.call_seconds == 0.0
        self.call_seconds = seconds if first else 0.8 * self.call_seconds + 0.2 * seconds
        self._calling = 0
        self._peak = max(float(len(self._queue)), self._peak * _PEAK_DECAY)

    async def _call(self, data: Any, want_proba: bool) -> Outputs:
        """The model call on the model thread, given up after ``timeout`` seconds."""
        if self.hung >= MAX_HUNG_CALLS:
            raise PredictionTimeout(
                f"{self.hung} earlier calls of this model are still running past the "
                f"{self.timeout:g} s timeout; no new call starts until one returns"
            )
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Outputs] = loop.create_future()
        thread = self._thread
        given_up = False

        def done(ok: bool, value: Any) -> None:
            if given_up:  # the call came back after its timeout
                self._returned()
            elif answer.done():
                pass  # the awaiting side was cancelled
            elif ok:
                answer.set_result(value)
            else:
                answer.set_exception(value)

        def expire() -> None:
            nonlocal given_up
            if answer.done():
                return
            given_up = True
            self._abandon(thread)
            answer.set_exception(
                PredictionTimeout(f"the model did not answer within {self.timeout:g} s")
            )

        thread.submit(loop, self._predict, (data, want_proba), done)
        timer = loop.call_later(self.timeout, expire)
        try:
            return await answer
        finally:
            timer.cancel()

    def _abandon(self, stuck: ModelThread) -> None:
        """The thread running a hung call is left to it; later calls get a fresh thread."""
        log.error("a call of %s ran past its %g s timeout; its thread is abandoned",
                  self._name, self.timeout)  # fmt: skip
        self.hung += 1
        self._report("timeout")
        if self._thread is stuck:
            self._thread = self._new_thread()
        stuck.stop()  # ends once the hung call returns

    def _returned(self) -> None:
        self.hung -= 1
        self._report("returned")

    def _new_thread(self) -> ModelThread:
        return ModelThread(f"wk-{self._name}")

    async def close(self) -> None:
        """Wait for queued work to finish, then release the worker thread."""
        while self._drainer is not None or self._queue:  # woken, it may have more work already
            await self._idle.wait()
        self._closed = True
        self._thread.stop()


def layout(data: Any) -> Hashable:
    """What must agree for requests to share one call: a frame's columns (in order) and their
    types, an array's shape past the rows and its type. Anything else shares with nobody."""
    if isinstance(data, pd.DataFrame):
        return ("frame", tuple(data.columns), tuple(str(t) for t in data.dtypes))
    if isinstance(data, np.ndarray):
        return ("array", data.shape[1:], data.dtype.str)
    return ("alone", id(data))


def _check_rows(preds: Any, probs: Any, rows: int) -> None:
    for what, out in (("predictions", preds), ("probability rows", probs)):
        if out is None:
            continue
        got = np.shape(out)[0] if np.ndim(out) > 0 else 0
        if got != rows:
            raise PredictionFailed(f"the model returned {got} {what} for {rows} rows")


def _model_failed(exc: Exception) -> PredictionFailed:
    failed = PredictionFailed(f"the model raised {type(exc).__name__}")
    failed.__cause__ = exc
    return failed


def _fail(p: _Pending, exc: BaseException) -> None:
    if not p.future.done():
        p.future.set_exception(exc)


def concat(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=0)
    return pd.concat(parts, ignore_index=True)
