"""Live serving statistics in the metadata database: written by every replica, merged by sum.

A replica writes its running totals for the current minute (idempotent overwrite of its own
rows, one ``INSERT … ON CONFLICT DO UPDATE`` per flush); a reader sums every replica's rows over
a time range. Counts are plain integer lists whose meaning (which bins) is fixed by ``kind`` —
see ``watchkeeper.serving.live`` — except latency (``latency_ms``), a
:class:`~watchkeeper.monitoring.sketch.LogSketch` stored in the same JSON column as its sparse
object form (``{"format": "logsketch", …, "bins": {index: count}}``), which merges by summing
counts per bucket index. Rows written before the sketch hold a list over ``LATENCY_EDGES_MS``
and still read, as a sketch with each bin's count at its upper edge.

Old rows go with retention (``watchkeeper.registry.retention``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Engine, Table, cast, extract, func, select, true
from sqlalchemy.dialects import postgresql, sqlite

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.sketch import LogSketch, is_sketch
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.schema import LiveStatsRow

# Latency sketches: 1% relative error; below a microsecond counts as zero.
LATENCY_ALPHA = 0.01
LATENCY_FLOOR_MS = 1e-3
SKETCH_KINDS = ("latency_ms",)
# Upper edges (ms) of the latency histogram of rows written before the sketch (one more bin
# than edges, the last open): read only to convert old rows.
LATENCY_EDGES_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
# The columns of ``uq_live_stats_key``: one row per replica, version, minute and kind.
LIVE_KEY = ("model_name", "version", "replica", "window_start", "kind")


def _upsert(dialect: str) -> postgresql.Insert | sqlite.Insert:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` of live rows in the dialect's own syntax."""
    table = LiveStatsRow.__table__
    assert isinstance(table, Table)
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql.insert(table)
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
    else:
        raise InvalidInput(f"live statistics need SQLite or PostgreSQL, not {dialect}")
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[table.c[name] for name in LIVE_KEY],
        set_={"counts": new.counts, "updated_at": new.updated_at},
        where=table.c.updated_at <= new.updated_at,
    )


def latency_sketch() -> LogSketch:
    """An empty latency sketch (milliseconds) of the parameters every replica writes."""
    return LogSketch(alpha=LATENCY_ALPHA, floor=LATENCY_FLOOR_MS)


def read_latency(stored: object) -> LogSketch:
    """A stored latency value as a sketch: the sketch's own form, or a list over the old
    ``LATENCY_EDGES_MS`` (each bin at its upper edge; the open last bin at 5 s, all an old row
    knows of it).

    >>> read_latency([0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]).count_above(4000.0)
    2
    >>> read_latency(latency_sketch().add(60_000.0).to_dict()).count_above(5000.0)
    1
    """
    if is_sketch(stored):
        return LogSketch.from_dict(stored)  # type: ignore[arg-type]  # is_sketch: a Mapping
    out = latency_sketch()
    if isinstance(stored, list | tuple):
        for i, count in enumerate(stored):
            edge = LATENCY_EDGES_MS[min(i, len(LATENCY_EDGES_MS) - 1)]
            out.add(float(edge), count=int(count))
    return out


@dataclass(frozen=True)
class LiveCounts:
    """One replica's totals for one (model, version, minute, kind)."""

    model: str
    version: int
    replica: str
    window_start: datetime
    kind: str
    counts: tuple[int, ...] | LogSketch

    def stored(self) -> list[int] | dict[str, Any]:
        """The JSON value of the row."""
        if isinstance(self.counts, LogSketch):
            return self.counts.to_dict()
        return list(self.counts)


class LiveStatsStore:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))

    def write(self, items: Iterable[LiveCounts]) -> int:
        """Upsert each replica's totals in one statement (executed for many rows); returns rows
        written.

        A row's totals replace the stored ones (a replica owns its rows and writes running
        totals, so replicas never lose each other's counts), unless the stored row was written
        later than this call began: an older flush that arrives late never undoes a newer one.
        The last of several items with the same key wins.
        """
        now = self.clock()
        rows = {
            (i.model, i.version, i.replica, i.window_start, i.kind): {
                "model_name": i.model, "version": i.version, "replica": i.replica,
                "window_start": i.window_start, "kind": i.kind, "counts": i.stored(),
                "updated_at": now,
            }
            for i in items
        }  # fmt: skip
        if not rows:
            return 0
        with session_scope(self.engine, write=True) as session:
            session.execute(_upsert(self.engine.dialect.name), list(rows.values()))
        return len(rows)

    def merged(
        self, model: str, start: datetime, end: datetime, *, version: int | None = None,
        kinds: Sequence[str] | None = None,
    ) -> dict[tuple[int, str], list[int]]:  # fmt: skip
        """``{(version, kind): counts}`` summed over replicas and minutes in [start, end), for the
        kinds of plain counts (sketch kinds: :meth:`sketches`)."""
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
                if kind in SKETCH_KINDS or not isinstance(counts, list):
                    continue
                total = totals[(v, kind)]
                if len(total) < len(counts):
                    total.extend([0] * (len(counts) - len(total)))
                for i, c in enumerate(counts):
                    total[i] += int(c)
        return dict(totals)

    def sketches(
        self, model: str, start: datetime, end: datetime, *, version: int | None = None,
    ) -> dict[tuple[int, str], LogSketch]:  # fmt: skip
        """``{(version, kind): sketch}`` of the sketch kinds, merged over replicas and minutes in
        [start, end)."""
        query = select(LiveStatsRow.version, LiveStatsRow.kind, LiveStatsRow.counts).where(
            LiveStatsRow.model_name == model, LiveStatsRow.kind.in_(SKETCH_KINDS),
            LiveStatsRow.window_start >= start, LiveStatsRow.window_start < end,
        )  # fmt: skip
        if version is not None:
            query = query.where(LiveStatsRow.version == version)
        out: dict[tuple[int, str], LogSketch] = {}
        with session_scope(self.engine) as session:
            for v, kind, counts in session.execute(query):
                found = read_latency(counts)
                if (v, kind) in out:
                    out[(v, kind)] += found
                else:
                    out[(v, kind)] = found
        return out

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

    def latency_sums(
        self, start: datetime, end: datetime, *, model: str | None = None,
        bucket_seconds: int | None = None,
    ) -> dict[tuple[str, int, datetime | None], LogSketch]:  # fmt: skip
        """Latency sketches in [start, end) merged by the database, keyed as :meth:`sums`: each
        bucket index's counts are summed over replicas and minutes (one row per bucket and
        index), so a 30-day chart does not read every minute's row. Rows of the old histogram
        are summed as before and converted (:func:`read_latency`)."""
        row = LiveStatsRow
        columns: list[Any] = [row.model_name, row.version]
        if bucket_seconds is not None:
            epoch = extract("epoch", row.window_start)
            columns.append((epoch - epoch % int(bucket_seconds)).label("bucket"))
        where = [row.kind == "latency_ms", row.window_start >= start, row.window_start < end]
        if model is not None:
            where.append(row.model_name == model)
        if self.engine.dialect.name == "postgresql":
            each = func.json_each_text(row.counts["bins"]).table_valued("key", "value")
            value: Any = cast(each.c.value, BigInteger)
        else:
            each = func.json_each(row.counts, "$.bins").table_valued("key", "value")
            value = each.c.value
        bins = (
            select(*columns, each.c.key, func.sum(value))
            .join(each, true())
            .where(*where)
            .group_by(*columns, each.c.key)
        )
        zeros = select(*columns, func.sum(row.counts["zero"].as_integer())).where(*where)
        zeros = zeros.group_by(*columns)
        Key = tuple[str, int, datetime | None]
        bins_of: dict[Key, dict[str, int]] = defaultdict(dict)
        zero_of: dict[Key, int] = defaultdict(int)
        n = len(columns)

        def key_of(found: Sequence[Any]) -> Key:
            bucket = None
            if bucket_seconds is not None:
                bucket = datetime.fromtimestamp(int(found[2]), UTC)
            return (found[0], int(found[1]), bucket)

        with session_scope(self.engine) as session:
            for found in session.execute(bins):
                bins_of[key_of(found)][str(found[n])] = int(found[n + 1] or 0)
            for found in session.execute(zeros):
                if found[n]:
                    zero_of[key_of(found)] = int(found[n])
        empty = latency_sketch().to_dict()
        out = {
            key: LogSketch.from_dict(empty | {"zero": zero_of.get(key, 0),
                                              "bins": bins_of.get(key, {})})
            for key in bins_of.keys() | zero_of.keys()
        }  # fmt: skip
        legacy = self.sums(start, end, kind="latency_ms", width=len(LATENCY_EDGES_MS) + 1,
                           model=model, bucket_seconds=bucket_seconds)  # fmt: skip
        for key, counts in legacy.items():
            if any(counts):
                out.setdefault(key, latency_sketch()).merge(read_latency(counts))
        return out
