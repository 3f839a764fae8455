"""The micro-batcher's adaptive wait: an expensive model under load gets whole batches; a lone
client and a cheap model are never held.

Driven in process with closed-loop clients (each sends again once answered, after a
client-specific turnaround), as wrk's connections do. Without the wait, a 100 ms model fed by 8
staggered clients alternates small batches (those that came back before the next call started)
with the rest.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import numpy as np

from watchkeeper.serving.batch import ValidatedBatch
from watchkeeper.serving.batcher import (
    ADAPTIVE_MIN_CALL,
    MicroBatcher,
    Outputs,
    _Pending,
    layout,
)

BOUND = 60.0  # seconds before a regression fails instead of hanging


def _model(seconds: float) -> Any:
    def predict(data: Any, want_proba: bool) -> Outputs:
        time.sleep(seconds)
        return np.asarray(data, dtype=float).sum(axis=1), None

    return predict


async def _clients(batcher: MicroBatcher, clients: int, rounds: int, turnaround: float) -> None:
    async def client(i: int) -> None:
        for r in range(rounds):
            row = np.array([[float(i), float(r)]])
            preds, _ = await batcher.submit(ValidatedBatch(data=row, n_rows=1, findings={}))
            assert preds.tolist() == [float(i + r)]  # its own answer, whatever the batch
            await asyncio.sleep(turnaround * i)  # clients come back one after another

    await asyncio.gather(*(client(i) for i in range(clients)))
    await batcher.close()


def _batches(seconds: float, clients: int, rounds: int, turnaround: float) -> tuple[list[int], int]:
    sizes: list[int] = []

    async def main() -> int:
        batcher = MicroBatcher(_model(seconds), on_batch=lambda rows, _: sizes.append(rows))
        await asyncio.wait_for(_clients(batcher, clients, rounds, turnaround), BOUND)
        return batcher.waits

    return sizes, asyncio.run(main())


def test_an_expensive_model_under_load_gets_whole_batches() -> None:
    # 100 ms calls: the wait may last 10 ms; 8 clients come back within 8 × 0.5 ms
    sizes, waits = _batches(0.1, clients=8, rounds=8, turnaround=0.0005)
    assert sum(sizes) == 64  # every request answered, each once
    assert waits > 0
    assert statistics.median(sizes[1:]) == 8, sizes  # after the first call: all 8 together


def test_a_lone_client_is_never_held() -> None:
    sizes, waits = _batches(0.02, clients=1, rounds=10, turnaround=0.0)
    assert sizes == [1] * 10
    assert waits == 0


def test_a_cheap_model_is_never_held() -> None:
    """Below ``ADAPTIVE_MIN_CALL`` the batcher never waits, however many requests were recently
    outstanding (driven directly: how long a real call measures depends on the machine)."""

    async def main() -> int:
        batcher = MicroBatcher(_model(0.0))
        batcher.call_seconds = ADAPTIVE_MIN_CALL / 2
        batcher._peak = 8.0  # eight requests were recently outstanding; one is queued
        row = ValidatedBatch(data=np.zeros((1, 2)), n_rows=1, findings={})
        loop = asyncio.get_running_loop()
        batcher._queue.append(_Pending(row, False, loop.create_future(), layout(row.data)))
        await batcher._gather_adaptive()
        return batcher.waits

    assert asyncio.run(main()) == 0


def test_a_fall_in_traffic_holds_one_call_not_many() -> None:
    """After a burst (a shadow's copy of every request, say) the same version gets one client
    (the canary's share): the first wait runs out and the next calls are not held, however
    high the burst left the peak (decaying by a tenth per call, it would hold the next ten)."""

    async def main() -> int:
        batcher = MicroBatcher(_model(0.01))

        async def one(i: float) -> None:
            row = ValidatedBatch(data=np.array([[1.0, i]]), n_rows=1, findings={})
            await asyncio.wait_for(batcher.submit(row), BOUND)

        for _ in range(3):  # bursts of 16 at once: 16 were outstanding
            await asyncio.gather(*(one(float(i)) for i in range(16)))
        after_burst = batcher.waits
        for r in range(10):  # then one client
            await one(float(r))
        await batcher.close()
        return batcher.waits - after_burst

    assert asyncio.run(main()) <= 1
