"""Server-side aggregation: time ranges, live rates and percentiles, downsampled results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.registry.live import LATENCY_ALPHA, latency_sketch
from watchkeeper.ui.series import failures, points, stamp, traffic
from watchkeeper.ui.timerange import MAX_POINTS, RANGES, TimeRange

NOW = datetime(2026, 3, 4, 15, 37, 42, tzinfo=UTC)


@pytest.mark.parametrize("name", list(RANGES))
def test_every_range_is_whole_buckets_up_to_the_next_minute(name: str) -> None:
    tr = TimeRange.parse(name, now=NOW)
    buckets = tr.buckets()
    assert 10 <= len(buckets) <= MAX_POINTS
    assert tr.end == datetime(2026, 3, 4, 15, 38, tzinfo=UTC)
    assert tr.start <= tr.end - RANGES[name] < tr.start + timedelta(seconds=tr.bucket_seconds)
    assert all(int(b.timestamp()) % tr.bucket_seconds == 0 for b in buckets)
    assert tr.bucket_of(NOW) == buckets[-1]


def test_an_unknown_range_is_a_user_error() -> None:
    with pytest.raises(InvalidInput, match="unknown range '1y': choose from 15m, 1h, 6h"):
        TimeRange.parse("1y", now=NOW)
    assert TimeRange.parse(None, now=NOW).name == "24h"


def _sums(tr: TimeRange, rng: np.random.Generator):
    """Request counts and latency sketches per version and bucket, and the latencies (ms) fed
    to each sketch (some far beyond the old histogram's 5 s edge)."""
    requests, latency, samples = {}, {}, {}
    for bucket in tr.buckets()[::3]:
        for version in (1, 2):
            n = int(rng.integers(1, 500))
            errors = int(rng.integers(0, n // 10 + 1))
            requests[("m", version, bucket)] = [n, n - errors - 1, 1, errors]
            values = rng.lognormal(np.log(20.0 * version), 2.0, n)
            samples[("m", version, bucket)] = values
            latency[("m", version, bucket)] = latency_sketch().update(values)
    requests[("m", 1, tr.start - timedelta(days=1))] = [999, 0, 0, 999]  # outside: ignored
    latency[("m", 1, tr.start - timedelta(days=1))] = latency_sketch().add(1e9)
    return requests, latency, samples


def test_traffic_matches_the_counts_bucket_by_bucket() -> None:
    tr = TimeRange.parse("24h", now=NOW)
    requests, latency, samples = _sums(tr, np.random.default_rng(0))
    t = traffic(tr, requests, latency)
    buckets = tr.buckets()
    assert len(t.times) == len(t.requests_per_s) == len(t.p99_ms) == len(buckets)
    assert t.times[0] == stamp(tr.start)
    for i, bucket in enumerate(buckets[:-1]):
        sides = [requests.get(("m", v, bucket)) for v in (1, 2)]
        if sides[0] is None:
            assert t.requests_per_s[i] == 0.0
            assert t.p50_ms[i] is None
            assert t.shares[1][i] is None
            continue
        total = sides[0][0] + sides[1][0]
        assert t.requests_per_s[i] == pytest.approx(total / tr.bucket_seconds, abs=1e-4)
        assert t.errors_per_s[i] == pytest.approx(
            (sides[0][3] + sides[1][3]) / tr.bucket_seconds, abs=1e-4
        )
        both = np.concatenate([samples[("m", 1, bucket)], samples[("m", 2, bucket)]])
        for q, found in ((0.5, t.p50_ms[i]), (0.99, t.p99_ms[i])):
            exact = np.quantile(both, q, method="lower")
            assert found == pytest.approx(exact, rel=LATENCY_ALPHA, abs=1e-3)
        assert t.shares[1][i] + t.shares[2][i] == pytest.approx(1.0, abs=1e-3)
        assert t.shares[2][i] == pytest.approx(sides[1][0] / total, abs=1e-4)


def test_the_newest_bucket_is_a_rate_over_the_time_it_has_lasted() -> None:
    tr = TimeRange.parse("24h", now=NOW)  # 5-minute buckets; the newest began at 15:35
    t = traffic(tr, {("m", 1, tr.buckets()[-1]): [180, 180, 0, 0]}, {})
    assert t.requests_per_s[-1] == pytest.approx(1.0)  # 180 requests in 3 minutes


def _results(n: int, *, hours: int = 1, status=lambda i: "ok") -> list[CheckResult]:
    end = NOW.replace(minute=0, second=0)
    out = []
    for i in range(n):
        start = end - timedelta(hours=hours * (n - i))
        out.append(CheckResult(model="m", version=1, window_start=start,
                               window_end=start + timedelta(hours=hours), check="drift",
                               feature="", statistic="drift_share", value=(i % 10) / 10,
                               threshold=0.5, status=status(i)))  # fmt: skip
    return out


def test_few_windows_are_drawn_one_point_each() -> None:
    results = _results(48)
    p = points(list(reversed(results)), TimeRange.parse("7d", now=NOW))
    assert len(p) == 48
    assert p.times == [stamp(r.window_end) for r in results]
    assert p.values == [r.value for r in results]


def test_thirty_days_of_hourly_windows_become_at_most_max_points() -> None:
    tr = TimeRange.parse("30d", now=NOW)
    results = _results(720, status=lambda i: "fail" if i == 400 else "ok")
    for how, expected in (("max", 0.9), ("min", 0.0)):
        p = points(results, tr, how=how)
        assert len(p) <= MAX_POINTS
        assert expected in p.values  # extremes survive the aggregation they ask for
    p = points(results, tr, how="max")
    assert p.statuses.count("fail") == 1  # the bucket holding the failing window says so
    assert set(p.thresholds) == {0.5}
    means = points(results, tr)
    assert sum(means.values) / len(means) == pytest.approx(0.45, abs=0.02)


def test_failures_count_failed_checks_per_window() -> None:
    results = _results(3) + [
        CheckResult(model="m", version=1, window_start=r.window_start, window_end=r.window_end,
                    check="quality", feature=f, statistic="null_rate", value=0.5,
                    threshold=0.1, status="fail")
        for r in _results(3)[1:] for f in ("a", "b")
    ]  # fmt: skip
    p = failures(results, TimeRange.parse("24h", now=NOW))
    assert p.values == [0.0, 2.0, 2.0]
    assert p.statuses == ["ok", "fail", "fail"]
