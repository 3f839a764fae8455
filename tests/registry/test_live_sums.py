"""Live counts summed by the database: per bucket for charts, over a range for totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from watchkeeper.config import Settings
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.monitoring.sketch import LogSketch
from watchkeeper.registry import Registry
from watchkeeper.registry.live import LiveCounts, LiveStatsStore, latency_sketch
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
    items.append(LiveCounts("a", 1, "r1", T0, "latency_ms", latency_sketch().add(3.0)))
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
                 LiveCounts("b", 2, "r1", T0, "latency_ms", latency_sketch())])  # fmt: skip
    sums = store.sums(T0, T0 + timedelta(minutes=2), kind="requests", width=5)
    assert sums == {("a", 1, None): [7, 6, 1, 0, 0], ("b", 2, None): [1, 0, 0, 1, 0]}
    assert store.sums(T0, T0 + timedelta(minutes=1), kind="requests", width=1, model="a") == {
        ("a", 1, None): [3]
    }


def test_latency_sums_per_bucket_equal_one_sketch_fed_the_bucket(registry: Registry) -> None:
    """The database sums sketches bucket index by bucket index, with the zero bucket, exactly as
    merging them in Python; a row of the old 14-bin histogram still counts (at its bins' upper
    edges, the open bin at 5 s)."""
    store = LiveStatsStore(registry.engine)
    rng = np.random.default_rng(0)
    fed: dict[tuple[int, datetime], LogSketch] = {}
    items = []
    for minute in range(0, 120, 7):
        bucket = T0 + timedelta(minutes=30 * (minute // 30))
        for version in (1, 2):
            for replica in ("r1", "r2"):
                values = rng.lognormal(2.0 + version, 1.5, 200) * (minute + 1)
                values[:3] = 0.0  # the zero bucket
                sketch = latency_sketch().update(values)
                items.append(LiveCounts("a", version, replica, T0 + timedelta(minutes=minute),
                                        "latency_ms", sketch))  # fmt: skip
                whole = fed.setdefault((version, bucket), latency_sketch())
                whole += sketch
    old = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 6]  # 4 in (2 s, 5 s], 6 above 5 s
    items.append(LiveCounts("a", 1, "old", T0, "latency_ms", tuple(old)))
    items.append(_counts("a", 1, 0, "r1", (1, 1, 0, 0)))  # other kinds are left out
    store.write(items)
    fed[(1, T0)] += latency_sketch().add(5000.0, count=10)
    sums = store.latency_sums(T0, T0 + timedelta(hours=2), model="a", bucket_seconds=1800)
    assert sums == {("a", v, b): sketch for (v, b), sketch in fed.items()}
    for (_model, version, start), sketch in sums.items():
        assert start is not None
        merged = store.sketches("a", start, start + timedelta(minutes=30), version=version)
        assert merged[(version, "latency_ms")] == sketch
    totals = store.latency_sums(T0, T0 + timedelta(hours=2))
    assert totals[("a", 1, None)] == LogSketch.merged(s for (v, _), s in fed.items() if v == 1)
    assert store.merged("a", T0, T0 + timedelta(hours=2)) == {(1, "requests"): [1, 1, 0, 0]}


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
