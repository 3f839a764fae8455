"""The time range a page shows, and the bucket width that keeps a chart to a few hundred points."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from watchkeeper.errors import InvalidInput

RANGES: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "24h"
"""The charts' range when the page asks for none; the overview's is ``OVERVIEW_RANGE``."""
OVERVIEW_RANGE = "15m"
MAX_POINTS = 300
"""Points a chart draws at most: anything finer is aggregated on the server."""

_BUCKETS = (60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class TimeRange:
    """``[start, end)`` on a grid of ``bucket_seconds``; ``end`` is the next whole minute.

    >>> tr = TimeRange.parse("30d", now=datetime(2026, 5, 1, 12, 30, 10, tzinfo=UTC))
    >>> tr.bucket_seconds, len(tr.buckets()) <= MAX_POINTS
    (10800, True)
    """

    name: str
    start: datetime
    end: datetime
    bucket_seconds: int

    @classmethod
    def parse(
        cls, text: str | None, *, now: datetime | None = None, default: str = DEFAULT_RANGE
    ) -> TimeRange:
        name = text or default
        span = RANGES.get(name)
        if span is None:
            raise InvalidInput(f"unknown range '{name}': choose from {', '.join(RANGES)}")
        now = now or datetime.now(UTC)
        end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        bucket = next(b for b in _BUCKETS if span.total_seconds() / b <= MAX_POINTS)
        start = _floor(end - span, bucket)
        return cls(name, start, end, bucket)

    @property
    def label(self) -> str:
        """How the range reads in a sentence: ``15 min``, ``6 h``, ``7 days``."""
        minutes = int((self.end - self.start).total_seconds() // 60)
        span = RANGES.get(self.name)
        minutes = int(span.total_seconds() // 60) if span is not None else minutes
        if minutes < 60:
            return f"{minutes} min"
        if minutes < 48 * 60:
            return f"{minutes // 60} h"
        return f"{minutes // 1440} days"

    def bucket_of(self, at: datetime) -> datetime:
        return _floor(at, self.bucket_seconds)

    def buckets(self) -> list[datetime]:
        """The start of every bucket in the range, oldest first."""
        step = timedelta(seconds=self.bucket_seconds)
        out, at = [], self.start
        while at < self.end:
            out.append(at)
            at += step
        return out


def _floor(at: datetime, seconds: int) -> datetime:
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)
