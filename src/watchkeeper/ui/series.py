"""Aggregation for charts: live counts per bucket become rates, percentiles and shares; stored
monitor results become at most ``MAX_POINTS`` points per series.

Pure functions over what the stores return, so the pages stay thin and the arithmetic is tested
on its own.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from watchkeeper.monitoring.results import CheckResult
from watchkeeper.monitoring.sketch import LogSketch
from watchkeeper.ui.status import worst
from watchkeeper.ui.timerange import MAX_POINTS, TimeRange

Sums = Mapping[tuple[str, int, datetime | None], Sequence[int]]
Sketches = Mapping[tuple[str, int, datetime | None], LogSketch]
REQUEST_FIELDS = 4  # answered, ok, 4xx, 5xx


@dataclass(frozen=True)
class Traffic:
    """Live traffic of one model per bucket (every bucket of the range, oldest first)."""

    times: list[str]
    requests_per_s: list[float]
    errors_per_s: list[float]
    rejected_per_s: list[float]
    p50_ms: list[float | None]
    p99_ms: list[float | None]
    shares: dict[int, list[float | None]] = field(default_factory=dict)


def traffic(tr: TimeRange, requests: Sums, latency: Sketches) -> Traffic:
    """Rates per second, latency percentiles (from the versions' latency sketches, merged per
    bucket) and each version's share of answered requests.

    >>> from datetime import UTC
    >>> tr = TimeRange.parse("1h", now=datetime(2026, 1, 1, 10, 0, tzinfo=UTC))
    >>> b = tr.buckets()[-1]
    >>> t = traffic(tr, {("m", 1, b): [60, 57, 0, 3], ("m", 2, b): [60, 60, 0, 0]}, {})
    >>> t.requests_per_s[-1], t.errors_per_s[-1], t.shares[2][-1], t.shares[2][0]
    (2.0, 0.05, 0.5, None)
    """
    buckets = tr.buckets()
    index = {b: i for i, b in enumerate(buckets)}
    n = len(buckets)
    totals = [[0] * REQUEST_FIELDS for _ in range(n)]
    per_version: dict[int, list[int]] = defaultdict(lambda: [0] * n)
    for (_model, version, bucket), counts in requests.items():
        i = index.get(bucket) if bucket is not None else None
        if i is None:
            continue
        for k in range(REQUEST_FIELDS):
            totals[i][k] += int(counts[k]) if k < len(counts) else 0
        per_version[version][i] += int(counts[0]) if counts else 0
    sketches: list[LogSketch | None] = [None] * n
    for (_model, _version, bucket), sketch in latency.items():
        i = index.get(bucket) if bucket is not None else None
        if i is None:
            continue
        found = sketches[i]
        sketches[i] = sketch.copy() if found is None else found.merge(sketch)
    # the newest bucket is still filling: its rate is over the time it has lasted
    seconds = [min(float(tr.bucket_seconds), (tr.end - b).total_seconds()) for b in buckets]
    return Traffic(
        times=[stamp(b) for b in buckets],
        requests_per_s=[round(t[0] / s, 4) for t, s in zip(totals, seconds, strict=True)],
        errors_per_s=[round(t[3] / s, 4) for t, s in zip(totals, seconds, strict=True)],
        rejected_per_s=[round(t[2] / s, 4) for t, s in zip(totals, seconds, strict=True)],
        p50_ms=[_quantile(s, 0.5) for s in sketches],
        p99_ms=[_quantile(s, 0.99) for s in sketches],
        shares={
            v: [round(c / t[0], 4) if t[0] else None for c, t in zip(cs, totals, strict=True)]
            for v, cs in sorted(per_version.items())
        },
    )


def _quantile(sketch: LogSketch | None, q: float) -> float | None:
    if sketch is None or not sketch.count:
        return None
    return round(sketch.quantile(q), 3)


@dataclass(frozen=True)
class Points:
    """One series ready to draw: times (ISO), values, thresholds and statuses."""

    times: list[str]
    values: list[float | None]
    thresholds: list[float | None]
    statuses: list[str]

    def __len__(self) -> int:
        return len(self.times)

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None


_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "mean": lambda xs: sum(xs) / len(xs),
    "max": max,
    "min": min,
}


def points(results: Sequence[CheckResult], tr: TimeRange, *, how: str = "mean") -> Points:
    """One point per window, at its end; beyond ``MAX_POINTS`` windows, one per bucket of the
    range (``how`` the values of a bucket combine: ``mean``, ``max`` or ``min``; the status is
    the worst of the bucket, the threshold the latest)."""
    ordered = sorted(results, key=lambda r: r.window_end)
    if len(ordered) <= MAX_POINTS:
        return Points([stamp(r.window_end) for r in ordered],
                      [_finite(r.value) for r in ordered], [r.threshold for r in ordered],
                      [r.status for r in ordered])  # fmt: skip
    grouped: dict[datetime, list[CheckResult]] = {}
    for r in ordered:
        grouped.setdefault(tr.bucket_of(r.window_end), []).append(r)
    combine = _AGGREGATES[how]
    out = Points([], [], [], [])
    for bucket, items in grouped.items():
        values = [v for v in (_finite(r.value) for r in items) if v is not None]
        out.times.append(stamp(bucket))
        out.values.append(round(combine(values), 6) if values else None)
        out.thresholds.append(items[-1].threshold)
        out.statuses.append(worst(r.status for r in items))
    return out


def failures(results: Sequence[CheckResult], tr: TimeRange) -> Points:
    """Failed checks per window, at most ``MAX_POINTS`` points (a bucket shows its worst
    window)."""
    per_window: dict[datetime, list[CheckResult]] = {}
    for r in results:
        per_window.setdefault(r.window_end, []).append(r)
    counted = [
        CheckResult(model=items[0].model, version=items[0].version,
                    window_start=items[0].window_start, window_end=end, check="quality",
                    feature="", statistic="failures",
                    value=float(sum(r.status == "fail" for r in items)), threshold=None,
                    status="fail" if any(r.status == "fail" for r in items) else "ok")
        for end, items in per_window.items()
    ]  # fmt: skip
    return points(counted, tr, how="max")


def by_statistic(results: Sequence[CheckResult]) -> dict[str, list[CheckResult]]:
    """Results grouped by statistic, in order of first appearance."""
    out: dict[str, list[CheckResult]] = {}
    for r in results:
        out.setdefault(r.statistic, []).append(r)
    return out


def stamp(at: datetime) -> str:
    """A chart's time label, in UTC (plotly draws date strings as given, with no time zone).

    >>> from datetime import UTC
    >>> stamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    '2026-01-02 03:04:05'
    """
    utc = at.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M" if utc.second == 0 else "%Y-%m-%d %H:%M:%S")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
