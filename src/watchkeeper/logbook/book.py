"""``Logbook``: the one object the server, monitors, rollouts and retraining talk to."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import TypeVar

from watchkeeper.errors import StoreUnavailable
from watchkeeper.logbook import maintenance
from watchkeeper.logbook.config import LogbookConfig, LogbookStats
from watchkeeper.logbook.entries import FeedbackItem, PredictionBatch
from watchkeeper.logbook.reader import Reader
from watchkeeper.logbook.store import SegmentStore
from watchkeeper.logbook.writer import Writer

_DEFAULT_CONFIG = LogbookConfig()
T = TypeVar("T")


class Logbook(Reader):
    """The append-only record of predictions and feedback below one fsspec URL or local path.

    Writing never blocks: ``log_predictions`` and ``log_feedback`` append references to a
    bounded buffer that a background thread (``start()``) converts and writes; ``flush()`` writes
    now, ``close()`` writes the rest and stops the thread. Reading (:class:`Reader`'s methods)
    prunes by model and day.
    A ``Logbook`` is also a context manager (``start()`` on entry, ``close()`` on exit).
    """

    def __init__(
        self,
        url: str,
        *,
        config: LogbookConfig = _DEFAULT_CONFIG,
        on_drop: Callable[[int], None] | None = None,
        on_flush_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.url = url
        self.config = config
        super().__init__(SegmentStore(url))
        self._writer = Writer(self._store, config, on_drop=on_drop, on_flush_error=on_flush_error)

    def __repr__(self) -> str:
        return f"Logbook({self.url!r})"

    def __enter__(self) -> Logbook:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background flusher (a daemon thread); idempotent."""
        self._writer.start()

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new entries, write every buffered one (retrying a failing store until
        ``timeout`` seconds, after which what is left is counted as dropped), stop the thread."""
        self._writer.close(timeout)

    def flush(self) -> None:
        """Write everything buffered now and wait; ``StoreUnavailable`` if the store fails (the
        rows stay buffered for the next attempt)."""
        self._writer.flush()

    def log_predictions(self, batch: PredictionBatch) -> bool:
        """Buffer one request's rows; O(1), thread-safe. False when the batch was dropped
        because the buffer is full (or the logbook closed); a sampled-out batch returns True."""
        return self._writer.log(batch)

    def log_feedback(self, items: Iterable[FeedbackItem]) -> int:
        """Buffer labels/outcomes; returns how many were accepted (the rest did not fit).
        ``InvalidInput``, and nothing buffered, when they bring outcome names beyond
        ``config.max_outcome_names``."""
        return self._writer.log_feedback(items)

    @property
    def stats(self) -> LogbookStats:
        return self._writer.stats

    # --- maintenance ------------------------------------------------------------------------

    def compact(self, model: str | None = None, day: date | str | None = None) -> int:
        """Merge each partition's small segments into one file; returns files removed."""
        return _translated(lambda: maintenance.compact(self._store, model, day))

    def prune(self, older_than: timedelta, *, now: datetime | None = None) -> int:
        """Delete whole day partitions older than ``older_than``; returns partitions removed."""
        return _translated(lambda: maintenance.prune(self._store, older_than, now=now))


def _translated(operation: Callable[[], T]) -> T:
    try:
        return operation()
    except OSError as exc:
        raise StoreUnavailable(f"logbook maintenance failed: {exc}") from exc
