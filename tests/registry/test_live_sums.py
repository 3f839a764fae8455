"""Live counts summed by the database: per bucket for charts, over a range for totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchkeeper.config import Settings
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.registry import Registry
from watchkeeper.registry.live import LiveCounts, LiveStatsStore
from watchkeeper.registry.monitoring import MonitoringStore

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # a whole hour


@pytest.fixture
def registry(settings: Settings):
    with Registry(settings) as reg:
        yield reg


def _counts(model: str, version: int, minute: int, replica: str, counts: tuple[int, ...],
            kind: str = "requests") -> LiveCounts:  # fmt: skip
    return LiveCounts(model, version, replica, T0 + timedelta(minutes=minute), kind, counts)


def test_sums_per_bucket_equal_merged_per_bucket(registry: Registry) -> None:
    store = LiveStatsStore(registry.engine)
    items = [_counts("a", v, m, r, (m + v, m, v, 1)) for m in range(0, 120, 7)
             for v in (1, 2) for r in ("r1", "r2")]  # fmt: skip
    items.append(_counts("b", 1, 3, "r1", (5, 5, 0, 0)))
    items.append(_counts("a", 1, 3, "r1", (1, 2, 3), kind="latency_ms"))
    store.write(items)
    sums = store.sums(T0, T0 + timedelta(hours=2), kind="requests", width=4, model="a",
                      bucket_seconds=1800)  # fmt: skip
    assert {k[2] for k in sums} == {T0 + timedelta(minutes=30 * i) for i in range(4)}
    for (model, version, bucket), counts in sums.items():
        assert bucket is not None
        merged = store.merged(model, bucket, bucket + timedelta(minutes=30), version=version,
                              kinds=["requests"])  # fmt: skip
        assert counts == merged[(version, "requests")]


def test_sums_over_the_range_and_every_model(registry: Registry) -> None:
    store = LiveStatsStore(registry.engine)
    store.write([_counts("a", 1, 0, "r1", (3, 2, 1, 0)), _counts("a", 1, 1, "r2", (4, 4, 0, 0)),
                 _counts("b", 2, 0, "r1", (1, 0, 0, 1)),
                 _counts("b", 2, 0, "r1", (9,), kind="latency_ms")])  # fmt: skip
    sums = store.sums(T0, T0 + timedelta(minutes=2), kind="requests", width=5)
    assert sums == {("a", 1, None): [7, 6, 1, 0, 0], ("b", 2, None): [1, 0, 0, 1, 0]}
    assert store.sums(T0, T0 + timedelta(minutes=1), kind="requests", width=1, model="a") == {
        ("a", 1, None): [3]
    }


def test_series_newest_keeps_the_last_windows_oldest_first(registry: Registry) -> None:
    store = MonitoringStore(registry.engine)
    store.record([
        CheckResult(model="m", version=1, window_start=T0 + timedelta(hours=h),
                    window_end=T0 + timedelta(hours=h + 1), check="drift", feature="",
                    statistic="drift_share", value=h / 10, threshold=0.5, status="ok")
        for h in (3, 0, 2, 1)
    ])  # fmt: skip
    newest = store.series("m", check="drift", newest=2)
    assert [r.value for r in newest] == [0.2, 0.3]
