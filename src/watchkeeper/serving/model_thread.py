"""The thread a version's model runs on, handed calls from the event loop.

A plain daemon thread fed through a ``SimpleQueue``, whose answers come back with
``call_soon_threadsafe``: measured on this machine, a round trip costs half of what
``ThreadPoolExecutor.submit`` + ``asyncio.wrap_future`` + ``asyncio.wait_for`` cost (50 against
96 µs), which at one connection is a visible share of a cheap model's request.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

Done = Callable[[bool, Any], None]  # (returned normally, the result or the exception)
_Job = tuple[asyncio.AbstractEventLoop, Callable[..., Any], tuple[Any, ...], Done]


class ModelThread:
    """Runs one call at a time, in order. ``stop`` lets the running call finish, then ends the
    thread; a call that never returns keeps its thread, which is why callers replace a thread
    they give up on instead of waiting for it."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], args: tuple[Any, ...],
        done: Done,
    ) -> None:  # fmt: skip
        """Run ``fn(*args)`` on the thread; ``done`` is then called on ``loop``."""
        self._jobs.put((loop, fn, args, done))

    def stop(self) -> None:
        self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, fn, args, done = job
            try:
                outcome: tuple[bool, Any] = (True, fn(*args))
            except BaseException as exc:  # handed to the caller, whatever it is
                outcome = (False, exc)
            try:
                loop.call_soon_threadsafe(done, *outcome)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                pass
            del job, outcome, fn, args, done  # hold no batch while idle
