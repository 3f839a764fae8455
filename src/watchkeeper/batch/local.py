"""The local engine: tasks on a pool of processes, each loading the model once.

With one worker the tasks run in this process (no start-up cost). With more, each worker is a
fresh (spawned) process, so nothing the parent holds — threads, connections — leaks into it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait

from watchkeeper.batch.tasks import JobContext, Task, TaskResult, Worker

_worker: Worker | None = None  # one per pool process, set by its initializer


def _start(context: JobContext) -> None:
    global _worker
    _worker = Worker(context)


def _run(task: Task) -> TaskResult:
    assert _worker is not None
    return _worker.run(task)


def run_local(context: JobContext, tasks: list[Task], workers: int) -> Iterator[TaskResult]:
    """Results as tasks finish (any order); the first failure stops the rest."""
    if workers <= 1 or len(tasks) <= 1:
        worker = Worker(context)
        for task in tasks:
            yield worker.run(task)
        return
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=spawn, initializer=_start,
                             initargs=(context,)) as pool:  # fmt: skip
        pending: set[Future[TaskResult]] = {pool.submit(_run, t) for t in tasks}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()
