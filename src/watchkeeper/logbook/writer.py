"""The write path: a bounded in-memory buffer and the thread that flushes it.

``log`` and ``log_feedback`` only append references under a short lock (no conversion, no
I/O). The flusher thread takes the whole buffer, converts it to Arrow, and writes one segment
per partition. Rows count against ``max_buffer_rows`` from the moment they are accepted until
they are durable, so a store that keeps failing ends in counted drops, never in unbounded
memory or silent loss.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from watchkeeper.errors import Detail, InvalidInput, StoreUnavailable
from watchkeeper.logbook.config import LogbookConfig, LogbookStats
from watchkeeper.logbook.convert import Segment, SegmentBuilder
from watchkeeper.logbook.entries import FeedbackItem, PredictionBatch
from watchkeeper.logbook.records import micros
from watchkeeper.logbook.store import SegmentStore

log = logging.getLogger(__name__)
DROP_WARNING_EVERY = 10.0  # seconds between two warnings about dropped rows


def sampled_in(request_id: str, rate: float) -> bool:
    """Whether a request is kept at ``rate``: a pure function of its id (all rows or none)."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


class Writer:
    """Buffers batches and feedback, and flushes them to a ``SegmentStore``."""

    def __init__(
        self,
        store: SegmentStore,
        config: LogbookConfig,
        *,
        on_drop: Callable[[int], None] | None,
        on_flush_error: Callable[[BaseException], None] | None,
    ) -> None:
        self._store, self._config = store, config
        self._builder = SegmentBuilder(config)
        self._on_drop, self._on_flush_error = on_drop, on_flush_error
        self._rates = {m: r for m, r in config.sample_rate.items() if r < 1.0}
        self._cond = threading.Condition(threading.Lock())
        self._flush_lock = threading.Lock()
        self._batches: list[PredictionBatch] = []
        self._feedback: list[tuple[FeedbackItem, int]] = []
        self._outcome_names: set[str] = set()  # accepted so far, bounded by max_outcome_names
        self._retry: list[Segment] = []  # converted, not yet written
        self._oldest: float | None = None  # monotonic time of the oldest unflushed entry
        self._counts = dict.fromkeys(
            ("buffered", "written", "dropped", "sampled_out", "failures"), 0
        ) | {"fb_buffered": 0, "fb_written": 0, "fb_dropped": 0}
        self._last_error: str | None = None
        self._last_received = 0
        self._next_attempt = 0.0
        self._delay = config.retry_initial
        self._last_warning = -DROP_WARNING_EVERY
        self._closed = False
        self._thread: threading.Thread | None = None

    # --- the request path -------------------------------------------------------------------

    def log(self, batch: PredictionBatch) -> bool:
        n = len(batch.predictions)
        rate = self._rates.get(batch.model)
        if rate is not None and not sampled_in(batch.request_id, rate):
            with self._cond:
                self._counts["sampled_out"] += n
            return True
        with self._cond:
            buffered = self._counts["buffered"]
            accepted = not self._closed and buffered + n <= self._config.max_buffer_rows
            if accepted:
                self._batches.append(batch)
                self._counts["buffered"] = buffered + n
                self._touch(buffered, buffered + n)
            else:
                self._counts["dropped"] += n
        if not accepted:
            self._dropped(n, "prediction rows")
        return accepted

    def log_feedback(self, items: Iterable[FeedbackItem]) -> int:
        items = list(items)
        names = {name for item in items for name in item.outcome or ()}
        with self._cond:
            new = names - self._outcome_names
            if new and len(self._outcome_names) + len(new) > self._config.max_outcome_names:
                raise self._too_many_names(new)
            room = 0 if self._closed else self._config.max_buffer_rows - self._counts["fb_buffered"]
            taken = max(0, min(room, len(items)))
            if taken < len(items):  # only the names of what is buffered count
                new = {name for item in items[:taken] for name in item.outcome or ()}
            self._outcome_names |= new
            received = max(micros(datetime.now(UTC)), self._last_received + 1)
            self._last_received = received
            self._feedback.extend((item, received) for item in items[:taken])
            before = self._counts["fb_buffered"]
            self._counts["fb_buffered"] = before + taken
            self._counts["fb_dropped"] += len(items) - taken
            self._touch(before, before + taken)
        if taken < len(items):
            self._dropped(len(items) - taken, "feedback items")
        return taken

    def _too_many_names(self, new: set[str]) -> InvalidInput:
        """The refusal of feedback bringing outcome names beyond the bound (the lock is held)."""
        limit, known = self._config.max_outcome_names, len(self._outcome_names)
        shown = sorted(new)[:10]
        return InvalidInput(
            f"feedback brings {len(new)} new outcome names ({', '.join(shown)}"
            f"{', ...' if len(new) > len(shown) else ''}) to the {known} known; at most "
            f"{limit} distinct outcome names are accepted (serve --max-outcome-names); nothing "
            "was stored",
            details=[Detail(f"outcome.{name}", "too_many_outcome_names") for name in shown],
        )

    def _touch(self, before: int, after: int) -> None:
        """Note new entries (the lock is held): start the age clock, wake the flusher if full."""
        if self._oldest is None and after > before:
            self._oldest = time.monotonic()
        if before < self._config.flush_rows <= after:
            self._cond.notify()

    def _dropped(self, n: int, what: str) -> None:
        if what == "prediction rows" and self._on_drop is not None:
            self._on_drop(n)
        now = time.monotonic()
        if now - self._last_warning >= DROP_WARNING_EVERY:
            self._last_warning = now
            reason = "the logbook is closed" if self._closed else "the buffer is full"
            log.warning("logbook dropped %d %s: %s (see stats)", n, what, reason)

    @property
    def stats(self) -> LogbookStats:
        with self._cond:
            c = self._counts
            return LogbookStats(
                buffered_rows=c["buffered"],
                written_rows=c["written"],
                dropped_rows=c["dropped"],
                sampled_out_rows=c["sampled_out"],
                flush_failures=c["failures"],
                feedback_buffered=c["fb_buffered"],
                feedback_written=c["fb_written"],
                feedback_dropped=c["fb_dropped"],
                last_flush_error=self._last_error,
            )

    # --- flushing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything buffered now; raises ``StoreUnavailable`` if the store fails."""
        error = self._flush_once()
        if error is not None:
            raise StoreUnavailable(f"logbook flush failed: {error}") from error

    def _flush_once(self) -> BaseException | None:
        with self._flush_lock:
            with self._cond:
                batches, self._batches = self._batches, []
                feedback, self._feedback = self._feedback, []
                retry, self._retry = self._retry, []
                self._oldest = None
            segments = retry + self._convert(batches, feedback)
            for position, segment in enumerate(segments):
                try:
                    self._store.write(segment.directory(self._store), segment.table)
                except Exception as exc:  # any store failure: keep the rest, retry later
                    self._failed(segments[position:], exc)
                    return exc
                self._written(segment)
            with self._cond:  # the store works: forget the backoff and the last error
                self._delay = self._config.retry_initial
                self._next_attempt = 0.0
                self._last_error = None
            return None

    def _convert(
        self, batches: list[PredictionBatch], feedback: list[tuple[FeedbackItem, int]]
    ) -> list[Segment]:
        segments, rejected = self._builder.predictions(batches)
        fb_segments, fb_rejected = self._builder.feedback(feedback)
        if rejected or fb_rejected:
            with self._cond:
                self._counts["buffered"] -= rejected
                self._counts["dropped"] += rejected
                self._counts["fb_buffered"] -= fb_rejected
                self._counts["fb_dropped"] += fb_rejected
            if rejected and self._on_drop is not None:
                self._on_drop(rejected)
        return segments + fb_segments

    def _written(self, segment: Segment) -> None:
        prefix = "" if segment.model is not None else "fb_"
        with self._cond:
            self._counts[f"{prefix}buffered"] -= segment.rows
            self._counts[f"{prefix}written"] += segment.rows

    def _failed(self, unwritten: list[Segment], exc: BaseException) -> None:
        with self._cond:
            self._retry = unwritten + self._retry
            self._counts["failures"] += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            self._next_attempt = time.monotonic() + self._delay
            delay, self._delay = self._delay, min(self._delay * 2, self._config.retry_max)
            if self._oldest is None:
                self._oldest = time.monotonic()
            self._cond.notify()  # the flusher may be asleep: let it schedule the retry
        rows = sum(s.rows for s in unwritten)
        log.warning("logbook flush failed (%s); %d rows kept, retry in %.2fs", exc, rows, delay)
        if self._on_flush_error is not None:
            try:
                self._on_flush_error(exc)
            except Exception:  # a faulty callback must not stop the flusher
                log.exception("logbook on_flush_error callback failed")

    # --- the flusher thread -----------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="logbook-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (wait := self._wait_time()) > 0:
                    self._cond.wait(wait)
                if self._closed:
                    return
            try:
                self._flush_once()
            except Exception:  # a bug, not a store failure: keep the thread alive
                log.exception("logbook flusher failed unexpectedly")
                time.sleep(self._config.retry_max)

    def _wait_time(self) -> float:
        """Seconds until a flush is due (0 or less: now); called with the lock held."""
        if self._oldest is None and not self._retry:
            return self._config.flush_interval  # nothing buffered: sleep until notified
        now = time.monotonic()
        full = max(self._counts["buffered"], self._counts["fb_buffered"]) >= self._config.flush_rows
        oldest = now if self._oldest is None else self._oldest
        due = now if full or self._retry else oldest + self._config.flush_interval
        return max(due, self._next_attempt) - now

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new entries, flush what is buffered (retrying until ``timeout``), stop."""
        deadline = time.monotonic() + timeout
        with self._cond:
            already, self._closed = self._closed, True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        if already:
            return
        while (error := self._flush_once()) is not None and time.monotonic() < deadline:
            time.sleep(min(self._delay, max(0.0, deadline - time.monotonic())))
        if error is not None:
            self._abandon(error)

    def _abandon(self, error: BaseException) -> None:
        with self._cond:
            lost = self._counts["buffered"]
            fb_lost = self._counts["fb_buffered"]
            self._counts["dropped"] += lost
            self._counts["fb_dropped"] += fb_lost
            self._counts["buffered"] = self._counts["fb_buffered"] = 0
            self._retry, self._batches, self._feedback = [], [], []
        log.error(
            "logbook closed with the store failing (%s): %d rows and %d feedback items dropped",
            error,
            lost,
            fb_lost,
        )
        if lost and self._on_drop is not None:
            self._on_drop(lost)
