"""The local engine: tasks on this process and a pool of processes, each loading the model once.

With one worker the tasks run in this process (no start-up cost). With N, this process is one
of them (a thread, warm from the start) and N - 1 fresh (spawned) processes are the others, so
nothing the parent holds — threads, connections — leaks into them, and the tasks go on while
they start. Each worker takes the next task when it finishes one, so a slow start costs only
the tasks the others did meanwhile.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from watchkeeper.batch.tasks import JobContext, Task, TaskResult, Worker

_worker: Worker | None = None  # one per pool process, set by its initializer
_POLL_S = 0.05  # how often the job looks at this process's results while processes work


def _start(context: JobContext) -> None:
    global _worker
    _worker = Worker(context)


def _run(task: Task) -> TaskResult:
    assert _worker is not None
    return _worker.run(task)


class _Here:
    """This process's worker, on a thread: it takes the next task when its reading reaches the
    end of one, so its reading runs on across tasks; results and its error go to ``results``."""

    def __init__(self, context: JobContext, todo: deque[Task]) -> None:
        self.context = context
        self.todo = todo
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # the job is ending: stop at the next chunk
        self.results: queue.SimpleQueue[TaskResult | BaseException | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._work, name="watchkeeper-batch-here",
                                       daemon=True)  # fmt: skip

    def take(self, *, last: bool = False) -> Task | None:
        """The next task; ``last``: the last one (the spawned workers', so that the output,
        assembled in task order, is not held up by their start)."""
        with self.lock:
            if not self.todo:
                return None
            return self.todo.pop() if last else self.todo.popleft()

    def _tasks(self) -> Iterator[Task]:
        while not self.stopping.is_set() and (task := self.take()) is not None:
            yield task

    def _work(self) -> None:
        try:
            worker = Worker(self.context, stopping=self.stopping)
            for result in worker.run_tasks(self._tasks()):
                self.results.put(result)
            self.results.put(None)
        except BaseException as exc:  # raised by the job's thread
            self.results.put(exc)


def _ready() -> None:
    """A spawned worker's first call: it returns once the process has loaded the model."""
    assert _worker is not None


def run_local(context: JobContext, tasks: list[Task], workers: int) -> Iterator[TaskResult]:
    """Results as tasks finish (any order); the first failure stops the rest."""
    if workers <= 1 or len(tasks) <= 1:
        yield from Worker(context).run_tasks(tasks)
        return
    here = _Here(context, deque(tasks))
    others = min(workers, len(tasks)) - 1
    pool = ProcessPoolExecutor(others, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start, initargs=(context,))  # fmt: skip
    # a spawned worker gets a task only once it is ready: none waits on a slow start
    running: set[Future[TaskResult | None]] = {pool.submit(_ready) for _ in range(others)}
    tasks_out = 0
    here.thread.start()
    here_done = finished = False
    try:
        while not here_done or tasks_out:
            if running and here.results.empty():
                done, _ = wait(running, timeout=_POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    running.discard(future)
                    result = future.result()  # the first failure ends the job here
                    if (task := here.take(last=True)) is not None:
                        running.add(pool.submit(_run, task))
                        tasks_out += 1
                    if result is not None:
                        tasks_out -= 1
                        yield result
                continue
            item = here.results.get()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                here_done = True
            else:
                yield item
        finished = True
    finally:
        here.stopping.set()
        here.thread.join()
        # done: workers still starting are not waited for; failed: running tasks end first
        pool.shutdown(wait=not finished, cancel_futures=True)
