"""Retention: old live statistics and monitor results go, in batches; every range the dashboard
offers still answers as before; the scheduler prunes once a day. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from watchkeeper.config import Settings
from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.registry import Registry
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.live import LiveCounts, LiveStatsStore
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.registry.retention import (
    DEFAULT_RETENTION,
    LONGEST_DASHBOARD_RANGE,
    older_than,
    prune,
    retention_period,
)
from watchkeeper.registry.schema import LiveStatsRow, MonitorResultRow
from watchkeeper.scheduler import Scheduler, SchedulerOptions
from watchkeeper.ui.timerange import _BUCKETS, RANGES, TimeRange

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    with Registry(settings) as reg:
        yield reg


def _count(registry: Registry, row: type[LiveStatsRow] | type[MonitorResultRow]) -> int:
    with session_scope(registry.engine) as session:
        return int(session.scalar(select(func.count()).select_from(row)) or 0)


def _fill(registry: Registry, ages: list[timedelta]) -> None:
    """A live row (two replicas) and a drift result per age, counted back from NOW."""
    live = LiveStatsStore(registry.engine)
    live.write(LiveCounts("m", 1, replica, (NOW - age).replace(second=0), "requests",
                          (int(age.total_seconds() // 60), 1, 0, 0))
               for age in ages for replica in ("r1", "r2"))  # fmt: skip
    MonitoringStore(registry.engine).record([
        CheckResult(model="m", version=1, window_start=NOW - age,
                    window_end=NOW - age + timedelta(minutes=5), check="drift", feature="a",
                    statistic="psi", value=age.total_seconds(), threshold=0.2, status="ok")
        for age in ages
    ])  # fmt: skip


def _every_range(registry: Registry) -> dict[str, object]:
    """What each dashboard range reads: live sums per chart bucket and the drift series."""
    live, monitoring = LiveStatsStore(registry.engine), MonitoringStore(registry.engine)
    out: dict[str, object] = {}
    for name in RANGES:
        tr = TimeRange.parse(name, now=NOW)
        out[name] = (
            live.sums(tr.start, tr.end, kind="requests", width=4, model="m",
                      bucket_seconds=tr.bucket_seconds),
            monitoring.series("m", check="drift", since=tr.start, until=tr.end),
        )  # fmt: skip
    return out


def test_the_default_keeps_every_range_the_dashboard_offers() -> None:
    assert max(RANGES.values()) == LONGEST_DASHBOARD_RANGE
    # a range starts on its bucket grid, up to one bucket before its nominal span
    assert DEFAULT_RETENTION >= LONGEST_DASHBOARD_RANGE + timedelta(seconds=max(_BUCKETS))
    assert retention_period(Settings().retention) == DEFAULT_RETENTION


def test_retention_and_older_than_are_checked() -> None:
    assert retention_period(" OFF ") is None
    assert older_than("2w") == timedelta(weeks=2)
    with pytest.raises(InvalidInput, match=r"--older-than: '3x' is not a duration"):
        older_than("3x")
    with pytest.raises(InvalidInput, match="longer than zero"):
        older_than("0d")
    with pytest.raises(InvalidInput, match=r"^retention: 'a month' is not a duration"):
        Settings(retention="a month")
    assert Settings(retention="off").retention == "off"


def test_old_rows_go_newer_stay_and_every_range_still_answers(registry: Registry) -> None:
    kept = [
        timedelta(minutes=3),
        timedelta(hours=5),
        timedelta(days=6),
        timedelta(days=29, hours=23),
        DEFAULT_RETENTION - timedelta(minutes=1),
    ]
    old = [DEFAULT_RETENTION + timedelta(minutes=1), timedelta(days=40), timedelta(days=400)]
    _fill(registry, kept + old)
    before = _every_range(registry)
    report = prune(registry.engine, NOW - DEFAULT_RETENTION)
    assert report.deleted == {"live_stats": 2 * len(old), "monitor_results": len(old)}
    assert report.complete
    assert _count(registry, LiveStatsRow) == 2 * len(kept)
    assert _count(registry, MonitorResultRow) == len(kept)
    assert _every_range(registry) == before
    thirty_days = before["30d"]
    assert isinstance(thirty_days, tuple)
    assert sum(c[0] for c in thirty_days[0].values()) > 0  # the check is not vacuous
    assert len(thirty_days[1]) == 4  # every kept result but the one older than 30 days
    assert prune(registry.engine, NOW - DEFAULT_RETENTION).total == 0


def test_a_dry_run_counts_and_deletes_nothing(registry: Registry) -> None:
    _fill(registry, [timedelta(days=d) for d in (1, 50, 60)])
    report = prune(registry.engine, NOW - timedelta(days=30), dry_run=True)
    assert report.dry_run
    assert report.deleted == {"live_stats": 4, "monitor_results": 2}
    assert _count(registry, LiveStatsRow) == 6
    assert _count(registry, MonitorResultRow) == 3


def test_prune_works_in_batches_and_within_a_budget(registry: Registry) -> None:
    _fill(registry, [timedelta(days=40 + d) for d in range(10)] + [timedelta(hours=1)])
    progress: list[tuple[str, int]] = []
    report = prune(registry.engine, NOW - timedelta(days=30), batch_size=3,
                   on_batch=lambda table, n: progress.append((table, n)))  # fmt: skip
    assert report.deleted == {"live_stats": 20, "monitor_results": 10}
    assert progress == [("live_stats", n) for n in (3, 6, 9, 12, 15, 18, 20)] + [
        ("monitor_results", n) for n in (3, 6, 9, 10)
    ]
    _fill(registry, [timedelta(days=40 + d) for d in range(10)])
    first = prune(registry.engine, NOW - timedelta(days=30), batch_size=4, budget_s=0.0)
    assert not first.complete
    assert first.deleted == {"live_stats": 4}  # one batch, then the budget was spent
    rest = prune(registry.engine, NOW - timedelta(days=30), batch_size=4)
    assert rest.complete
    assert rest.deleted == {"live_stats": 16, "monitor_results": 10}
    assert _count(registry, LiveStatsRow) == 2
    with pytest.raises(InvalidInput, match="batch size"):
        prune(registry.engine, NOW, batch_size=0)


def _scheduler(settings: Settings, clock: list[datetime]) -> Scheduler:
    options = SchedulerOptions(monitors=False, batches=False, retraining=False,
                               jobs_in_thread=False)  # fmt: skip
    return Scheduler(settings, options, clock=lambda: clock[0])


def test_the_scheduler_prunes_once_a_day(settings: Settings, registry: Registry) -> None:
    clock = [NOW]
    scheduler = _scheduler(settings, clock)
    try:
        _fill(registry, [timedelta(days=1), timedelta(days=36)])
        assert scheduler.run_once()
        assert _count(registry, MonitorResultRow) == 1
        _fill(registry, [timedelta(days=37)])
        clock[0] = NOW + timedelta(hours=23)
        assert scheduler.run_once()
        assert _count(registry, MonitorResultRow) == 2  # not due again within the day
        clock[0] = NOW + timedelta(days=1, minutes=1)
        assert scheduler.run_once()
        assert _count(registry, MonitorResultRow) == 1
        assert _count(registry, LiveStatsRow) == 2
        assert scheduler.failures == {}
    finally:
        scheduler.stop()
        scheduler.close()


def test_retention_off_keeps_everything(settings: Settings, registry: Registry) -> None:
    scheduler = _scheduler(replace(settings, retention="off"), [NOW])
    try:
        _fill(registry, [timedelta(days=400)])
        assert scheduler.run_once()
        assert _count(registry, MonitorResultRow) == 1
    finally:
        scheduler.stop()
        scheduler.close()
