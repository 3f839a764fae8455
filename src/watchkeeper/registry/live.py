"""Live serving statistics in the metadata database: written by every replica, merged by sum.

A replica writes its running totals for the current minute (idempotent overwrite of its own
rows); a reader sums every replica's rows over a time range. Counts are plain integer lists
whose meaning (which bins) is fixed by ``kind`` — see ``watchkeeper.logbook.live``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, extract, func, select, update

from watchkeeper.registry.db import session_scope
from watchkeeper.registry.schema import LiveStatsRow

# Upper edges (ms) of the latency histogram; one more bin than edges, the last is "above".
LATENCY_EDGES_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


@dataclass(frozen=True)
class LiveCounts:
    """One replica's totals for one (model, version, minute, kind)."""

    model: str
    version: int
    replica: str
    window_start: datetime
    kind: str
    counts: tuple[int, ...]


class LiveStatsStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write(self, items: Iterable[LiveCounts]) -> int:
        """Upsert each replica's totals; returns rows written."""
        written = 0
        now = datetime.now(UTC)
        with session_scope(self.engine, write=True) as session:
            for item in items:
                key = (
                    (LiveStatsRow.model_name == item.model)
                    & (LiveStatsRow.version == item.version)
                    & (LiveStatsRow.replica == item.replica)
                    & (LiveStatsRow.window_start == item.window_start)
                    & (LiveStatsRow.kind == item.kind)
                )
                result = session.execute(
                    update(LiveStatsRow).where(key).values(counts=list(item.counts), updated_at=now)
                )
                if getattr(result, "rowcount", 0) == 0:
                    session.add(
                        LiveStatsRow(
                            model_name=item.model, version=item.version, replica=item.replica,
                            window_start=item.window_start, kind=item.kind,
                            counts=list(item.counts), updated_at=now,
                        )
                    )  # fmt: skip
                written += 1
        return written

    def merged(
        self, model: str, start: datetime, end: datetime, *, version: int | None = None,
        kinds: Sequence[str] | None = None,
    ) -> dict[tuple[int, str], list[int]]:  # fmt: skip
        """``{(version, kind): counts}`` summed over replicas and minutes in [start, end)."""
        query = select(
            LiveStatsRow.version, LiveStatsRow.kind, LiveStatsRow.counts
        ).where(
            LiveStatsRow.model_name == model,
            LiveStatsRow.window_start >= start,
            LiveStatsRow.window_start < end,
        )  # fmt: skip
        if version is not None:
            query = query.where(LiveStatsRow.version == version)
        if kinds is not None:
            query = query.where(LiveStatsRow.kind.in_(list(kinds)))
        totals: dict[tuple[int, str], list[int]] = defaultdict(list)
        with session_scope(self.engine) as session:
            for v, kind, counts in session.execute(query):
                total = totals[(v, kind)]
                if len(total) < len(counts):
                    total.extend([0] * (len(counts) - len(total)))
                for i, c in enumerate(counts):
                    total[i] += int(c)
        return dict(totals)

    def sums(
        self, start: datetime, end: datetime, *, kind: str, width: int,
        model: str | None = None, bucket_seconds: int | None = None,
    ) -> dict[tuple[str, int, datetime | None], list[int]]:  # fmt: skip
        """The first ``width`` counts of ``kind`` in [start, end), summed by the database over
        replicas and minutes: ``{(model, version, bucket): counts}``.

        With ``bucket_seconds`` the minutes are grouped into buckets of that many seconds
        (aligned to the Unix epoch, keyed by their start); without, ``bucket`` is None and the
        sum covers the whole range. A 30-day chart reads a few hundred sums, not 43 200 rows.
        """
        row = LiveStatsRow
        columns: list[Any] = [row.model_name, row.version]
        if bucket_seconds is not None:
            epoch = extract("epoch", row.window_start)
            columns.append((epoch - epoch % int(bucket_seconds)).label("bucket"))
        sums = [func.sum(row.counts[i].as_integer()) for i in range(width)]
        query = (
            select(*columns, *sums)
            .where(row.kind == kind, row.window_start >= start, row.window_start < end)
            .group_by(*columns)
        )
        if model is not None:
            query = query.where(row.model_name == model)
        out: dict[tuple[str, int, datetime | None], list[int]] = {}
        with session_scope(self.engine) as session:
            for found in session.execute(query):
                bucket = None
                if bucket_seconds is not None:
                    bucket = datetime.fromtimestamp(int(found[2]), UTC)
                counts = found[len(columns) :]
                out[(found[0], int(found[1]), bucket)] = [int(c or 0) for c in counts]
        return out
