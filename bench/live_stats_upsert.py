"""Live-statistics flushes: UPDATE-then-INSERT per row (before) vs one upsert per flush (after).

    .venv/bin/python bench/live_stats_upsert.py [--flushes 60] [--kinds 55] [--postgres-url URL]

A replica's flush writes its running totals for every kind it saw this minute (50 features,
the prediction, requests, rows, CPU and latency: 55 rows); it flushes every few seconds, so
most rows of a flush update the minute's row and a new minute inserts them. Both ways write
the same flushes (a new minute every 6 flushes) into a fresh database; prints rows/s of each
and the ratio, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, update

from _pg import postgres_schema
from watchkeeper import Registry, Settings
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.live import LiveCounts, LiveStatsStore
from watchkeeper.registry.schema import LiveStatsRow

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
FLUSHES_PER_MINUTE = 6


def update_then_insert(store: LiveStatsStore, items: Sequence[LiveCounts]) -> None:
    """The write before the change: an UPDATE per row, an INSERT when it matched none."""
    now = datetime.now(UTC)
    with session_scope(store.engine, write=True) as session:
        for item in items:
            key = (
                (LiveStatsRow.model_name == item.model)
                & (LiveStatsRow.version == item.version)
                & (LiveStatsRow.replica == item.replica)
                & (LiveStatsRow.window_start == item.window_start)
                & (LiveStatsRow.kind == item.kind)
            )
            counts = item.stored()
            result = session.execute(
                update(LiveStatsRow).where(key).values(counts=counts, updated_at=now)
            )
            if getattr(result, "rowcount", 0) == 0:
                session.add(LiveStatsRow(
                    model_name=item.model, version=item.version, replica=item.replica,
                    window_start=item.window_start, kind=item.kind, counts=counts,
                    updated_at=now,
                ))  # fmt: skip


def flushes(count: int, kinds: int) -> list[list[LiveCounts]]:
    out = []
    for n in range(count):
        minute = T0 + timedelta(minutes=n // FLUSHES_PER_MINUTE)
        out.append([LiveCounts("bench", 1, "replica-1", minute, f"feature:f{k}",
                               tuple(range(n, n + 12))) for k in range(kinds)])  # fmt: skip
    return out


def rows_per_second(
    store: LiveStatsStore, write: Callable[[Sequence[LiveCounts]], object],
    batches: list[list[LiveCounts]],
) -> float:  # fmt: skip
    with session_scope(store.engine, write=True) as session:
        session.execute(delete(LiveStatsRow))
    write(batches[0])  # warm-up: connections, statement caches
    start = time.perf_counter()
    for batch in batches:
        write(batch)
    return sum(map(len, batches)) / (time.perf_counter() - start)


def bench_backend(label: str, settings: Settings, count: int, kinds: int) -> None:
    batches = flushes(count, kinds)
    with Registry(settings) as registry:
        store = LiveStatsStore(registry.engine)
        before = rows_per_second(store, lambda b: update_then_insert(store, b), batches)
        after = rows_per_second(store, store.write, batches)
    print(f"{label:<11} before {before:9,.0f} rows/s   after {after:9,.0f} rows/s   "
          f"{after / before:5.1f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flushes", type=int, default=60)
    parser.add_argument("--kinds", type=int, default=55)
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    args = parser.parse_args()
    print(f"{args.flushes} flushes of {args.kinds} rows, a new minute every "
          f"{FLUSHES_PER_MINUTE} flushes")  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="wk-bench-"))
    try:
        bench_backend("SQLite", Settings(home=tmp / "sqlite-home"), args.flushes, args.kinds)
        with postgres_schema(args.postgres_url) as url:
            if url is not None:
                settings = Settings(home=tmp / "pg-home", database_url=url)
                bench_backend("PostgreSQL", settings, args.flushes, args.kinds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
