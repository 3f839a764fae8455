"""Live-statistics writes: one upsert per flush, replicas writing at once lose nothing.

Every test runs on SQLite and PostgreSQL (the ``settings`` fixture).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from watchkeeper.config import Settings
from watchkeeper.registry import Registry
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.live import LiveCounts, LiveStatsStore, latency_sketch
from watchkeeper.registry.schema import LiveStatsRow

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
MINUTES = 20
FLUSHES = 15


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    with Registry(settings) as reg:
        yield reg


def _rows(registry: Registry) -> int:
    with session_scope(registry.engine) as session:
        return int(session.scalar(select(func.count()).select_from(LiveStatsRow)) or 0)


def _together(workers: list[Callable[[], None]]) -> None:
    """Run the workers on threads started at once; re-raise the first failure."""
    start = threading.Barrier(len(workers))
    failures: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        start.wait()
        try:
            work()
        except BaseException as exc:  # handed to the test's thread below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def test_a_flush_replaces_the_replicas_running_totals(registry: Registry) -> None:
    store = LiveStatsStore(registry.engine)
    assert store.write([LiveCounts("m", 1, "r1", T0, "requests", (3, 3, 0, 0))]) == 1
    assert store.write([LiveCounts("m", 1, "r1", T0, "requests", (5, 4, 1, 0))]) == 1
    store.write([LiveCounts("m", 1, "r2", T0, "requests", (2, 2, 0, 0))])
    merged = store.merged("m", T0, T0 + timedelta(minutes=1))
    assert merged == {(1, "requests"): [7, 6, 1, 0]}  # r1's newest totals plus r2's
    assert _rows(registry) == 2


def test_sketches_are_replaced_too(registry: Registry) -> None:
    store = LiveStatsStore(registry.engine)
    store.write([LiveCounts("m", 1, "r1", T0, "latency_ms", latency_sketch().add(2.0))])
    newer = latency_sketch().add(2.0).add(300.0)
    store.write([LiveCounts("m", 1, "r1", T0, "latency_ms", newer)])
    found = store.sketches("m", T0, T0 + timedelta(minutes=1))[(1, "latency_ms")]
    assert found.count == 2
    assert found.count_above(100.0) == 1


def test_one_batch_with_a_key_twice_keeps_the_last(registry: Registry) -> None:
    store = LiveStatsStore(registry.engine)
    written = store.write([LiveCounts("m", 1, "r1", T0, "rows", (1,)),
                           LiveCounts("m", 1, "r1", T0, "rows", (9,))])  # fmt: skip
    assert written == 1
    assert store.merged("m", T0, T0 + timedelta(minutes=1)) == {(1, "rows"): [9]}


def test_a_late_older_flush_does_not_undo_a_newer_one(registry: Registry) -> None:
    late = LiveStatsStore(registry.engine, clock=lambda: T0 + timedelta(seconds=1))
    newer = LiveStatsStore(registry.engine, clock=lambda: T0 + timedelta(seconds=2))
    newer.write([LiveCounts("m", 1, "r1", T0, "rows", (10,))])
    late.write([LiveCounts("m", 1, "r1", T0, "rows", (7,))])
    assert newer.merged("m", T0, T0 + timedelta(minutes=1)) == {(1, "rows"): [10]}


def test_two_replicas_flushing_at_once_lose_no_count(registry: Registry) -> None:
    """Each replica flushes its growing running totals for the same minutes and kinds many
    times over; the merged sum is both replicas' final totals."""
    store = LiveStatsStore(registry.engine)

    def replica(name: str, per_flush: int) -> Callable[[], None]:
        def work() -> None:
            for flush in range(1, FLUSHES + 1):
                store.write(
                    LiveCounts("m", 1, name, T0 + timedelta(minutes=m), kind,
                               (flush * per_flush, flush))
                    for m in range(MINUTES) for kind in ("requests", "rows")
                )  # fmt: skip

        return work

    _together([replica("r1", 3), replica("r2", 5)])
    merged = store.merged("m", T0, T0 + timedelta(minutes=MINUTES))
    expected = [MINUTES * FLUSHES * (3 + 5), MINUTES * FLUSHES * 2]
    assert merged == {(1, "requests"): expected, (1, "rows"): expected}
    assert _rows(registry) == 2 * 2 * MINUTES


def test_one_replica_flushing_from_two_threads_never_fails(registry: Registry) -> None:
    """Regression: UPDATE-then-INSERT let two writers of a new key both find no row and both
    insert, and the second failed on the unique key (seen on PostgreSQL). Each round is a new
    minute, so every round races on a fresh key."""
    store = LiveStatsStore(registry.engine)

    def writer(total: int) -> Callable[[], None]:
        def work() -> None:
            for m in range(40):
                store.write([LiveCounts("m", 1, "r1", T0 + timedelta(minutes=m), "rows",
                                        (total,))])  # fmt: skip

        return work

    _together([writer(1), writer(2)])
    merged = store.merged("m", T0, T0 + timedelta(minutes=40))
    assert 40 <= merged[(1, "rows")][0] <= 80  # one of the two totals per minute, never both
    assert _rows(registry) == 40
