"""The local engine: tasks on this process and a pool of processes, each loading the model once.

With one worker the tasks run in this process (no start-up cost). With N, this process is one
of them (a thread, warm from the start) and N - 1 fresh (spawned) processes are the others, so
nothing the parent holds — threads, connections — leaks into them, and the tasks go on while
they start. Each worker takes the next task when it finishes one, so a slow start costs only
the tasks the others did meanwhile.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)

from watchkeeper.batch.tasks import JobContext, Task, TaskResult, Worker

_worker: Worker | None = None  # one per pool process, set by its initializer


def _start(context: JobContext) -> None:
    global _worker
    _worker = Worker(context)


def _run(task: Task) -> TaskResult:
    assert _worker is not None
    return _worker.run(task)


class _Here:
    """This process's worker, on one thread; built by its first task (the model loads there)."""

    def __init__(self, context: JobContext) -> None:
        self.context = context
        self.worker: Worker | None = None
        self.stopping = threading.Event()  # the job is ending: stop at the next chunk

    def run(self, task: Task) -> TaskResult:
        if self.worker is None:
            self.worker = Worker(self.context, stopping=self.stopping)
        return self.worker.run(task)


def run_local(context: JobContext, tasks: list[Task], workers: int) -> Iterator[TaskResult]:
    """Results as tasks finish (any order); the first failure stops the rest."""
    if workers <= 1 or len(tasks) <= 1:
        worker = Worker(context)
        for task in tasks:
            yield worker.run(task)
        return
    todo = deque(tasks)
    here = _Here(context)
    spawn = multiprocessing.get_context("spawn")
    others = min(workers, len(tasks)) - 1
    with (
        ThreadPoolExecutor(1, thread_name_prefix="watchkeeper-batch-here") as thread,
        ProcessPoolExecutor(others, mp_context=spawn, initializer=_start,
                            initargs=(context,)) as pool,
    ):  # fmt: skip
        slots: dict[Future[TaskResult], Executor] = {}

        def fill(executor: Executor, free: int) -> None:
            for _ in range(free):
                if todo:
                    task = todo.popleft()
                    run = here.run if executor is thread else _run
                    slots[executor.submit(run, task)] = executor

        fill(thread, 1)
        fill(pool, others)
        try:
            while slots:
                done, _ = wait(slots, return_when=FIRST_COMPLETED)
                for future in done:
                    executor = slots.pop(future)
                    result = future.result()  # the first failure ends the job here
                    fill(executor, 1)
                    yield result
        finally:
            here.stopping.set()
            for future in slots:
                future.cancel()
