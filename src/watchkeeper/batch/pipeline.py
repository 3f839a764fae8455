"""Reading, scoring and writing one task at the same time, with a bounded number of chunks held.

A worker reads its next chunks in one thread (:class:`ReadAhead`), scores in its own, and hands
the outputs to a writing thread (:class:`WriteBehind`). Arrow's readers and writers and the
models' numeric kernels release the GIL, so the three overlap. Each hand-over is a queue of a
fixed number of chunks (``depth``), so a worker holds a bounded number of chunks whatever the
input's length: the two queues', one being read, one scored, one written.

An error on either side ends the task with that exception: a reading error is raised where the
scorer asks for the next chunk, a writing error at the scorer's next hand-over or at
:meth:`WriteBehind.close`. Nothing waits forever on a side that has stopped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from typing import Generic, TypeVar

T = TypeVar("T")

DEPTH = 2
_POLL_S = 0.1  # how often a blocked hand-over looks whether the other side has stopped
_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead(Generic[T]):
    """Iterates ``source`` in a thread, at most ``depth`` items ahead of the consumer."""

    def __init__(self, source: Iterable[T], *, depth: int = DEPTH, name: str = "read") -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._source = source
        self._thread = threading.Thread(target=self._run, name=f"watchkeeper-batch-{name}",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _run(self) -> None:
        items = iter(self._source)
        try:
            for item in items:
                if not self._offer(item):
                    return
            self._offer(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._offer(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator's files and connections
                close()

    def _offer(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]

    def close(self) -> None:
        """Stop reading (whether or not the source is exhausted) and wait for the thread."""
        self._stop.set()
        while self._thread.is_alive():
            try:  # make room, so a reader blocked on a full queue sees the stop
                self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                pass
        self._thread.join()


class WriteBehind(Generic[T]):
    """Calls ``write(item)`` in a thread for every item :meth:`put`, at most ``depth`` waiting."""

    def __init__(self, write: Callable[[T], None], *, depth: int = DEPTH,
                 name: str = "write") -> None:  # fmt: skip
        self._write = write
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"watchkeeper-batch-{name}",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            try:
                self._write(item)  # type: ignore[arg-type]
            except BaseException as exc:  # raised in the scorer's thread
                self._error = exc
                return

    @property
    def failed(self) -> bool:
        return self._error is not None

    def put(self, item: T) -> None:
        """Queue ``item``; raises the writer's error if it has failed."""
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait until every item is written; raises the writer's error if it failed."""
        self._end(drop=False)
        self._raise_if_failed()

    def abort(self) -> None:
        """Drop what is queued and wait for the item being written (after a failure)."""
        self._end(drop=True)

    def _end(self, *, drop: bool) -> None:
        """Queue the end marker (first dropping what waits, if ``drop``) while the thread
        lives, then wait for it."""
        while self._thread.is_alive():
            if drop:
                with suppress(queue.Empty):
                    self._queue.get_nowait()
            try:
                self._queue.put(_END, timeout=_POLL_S)
                break
            except queue.Full:
                continue
        self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
