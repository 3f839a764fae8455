"""Retention of the metadata database's time series: live statistics and monitor results.

``live_stats`` gains a row per replica, version, minute and kind of count (about 300 000 a day
for one model with 50 features served by 4 workers) and ``monitor_results`` one per statistic
per monitor run; neither is ever rewritten, so both grow until pruned. :func:`prune` deletes
the rows whose window started before a cutoff, in batches of ``batch_size`` rows, each its own
short write transaction (the ids are chosen by a read first), so serving replicas that flush
their live counts and the scheduler that records results wait at most one batch.

Old rows are deleted, not coarsened: the dashboard already sums minutes into its chart buckets
in the database, so keeping every range it offers costs only a retention at least as long as
its longest range (``LONGEST_DASHBOARD_RANGE``, plus a bucket of slack), and monitor results,
which are statistics of windows rather than counts, could not be summed into coarser rows
anyway. ``DEFAULT_RETENTION`` is that, with a margin of a few days for a scheduler that was
down when the daily prune was due.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select

from watchkeeper.config import parse_duration
from watchkeeper.errors import InvalidInput
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.schema import LiveStatsRow, MonitorResultRow

LONGEST_DASHBOARD_RANGE = timedelta(days=30)
"""The longest range the dashboard offers (``watchkeeper.ui.timerange.RANGES``)."""
DEFAULT_RETENTION = timedelta(days=35)
"""Rows kept by the scheduler's daily prune unless ``retention`` says otherwise."""
PRUNE_EVERY = timedelta(days=1)
"""How often the scheduler prunes."""
PRUNE_BUDGET_S = 5.0
"""Seconds of pruning per scheduler round, at most about (the batch under way ends first)."""
BATCH_SIZE = 5000

_TABLES: dict[str, type[LiveStatsRow] | type[MonitorResultRow]] = {
    "live_stats": LiveStatsRow,
    "monitor_results": MonitorResultRow,
}
TABLES = tuple(_TABLES)
"""The tables :func:`prune` trims, in the order it trims them."""


def retention_period(text: str) -> timedelta | None:
    """The ``retention`` setting: a duration such as ``35d``, or ``off`` for keeping everything.

    >>> retention_period("35d")
    datetime.timedelta(days=35)
    >>> retention_period("off") is None
    True
    """
    if text.strip().lower() == "off":
        return None
    return older_than(text, what="retention")


def older_than(text: str, *, what: str = "--older-than") -> timedelta:
    """A positive duration (``30d``, ``12h``, ``2w``) naming which rows are old."""
    try:
        period = parse_duration(text)
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {exc.message}") from exc
    if period <= timedelta(0):
        raise InvalidInput(f"{what}: '{text}' must be longer than zero")
    return period


@dataclass(frozen=True, kw_only=True)
class PruneReport:
    """What one :func:`prune` did: rows deleted per table (or that would be, on a dry run)."""

    cutoff: datetime
    deleted: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    complete: bool = True  # False: the time budget ran out first; prune again to go on
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def prune(
    engine: Engine, cutoff: datetime, *, dry_run: bool = False, batch_size: int = BATCH_SIZE,
    budget_s: float | None = None, on_batch: Callable[[str, int], None] | None = None,
) -> PruneReport:  # fmt: skip
    """Delete the ``live_stats`` and ``monitor_results`` rows whose window started before
    ``cutoff``, ``batch_size`` at a time.

    ``dry_run`` counts instead of deleting. ``budget_s`` stops after the batch that exhausts
    that many seconds (``complete`` is then False: the rest goes at the next call).
    ``on_batch(table, rows so far)`` is called after every batch, for progress.
    """
    if batch_size < 1:
        raise InvalidInput(f"batch size must be at least 1, not {batch_size}")
    started = time.monotonic()
    deadline = None if budget_s is None else started + budget_s
    deleted: dict[str, int] = {}
    complete = True
    for name, row in _TABLES.items():
        done, finished = _prune_table(
            engine, name, row, cutoff, dry_run=dry_run, batch_size=batch_size,
            deadline=deadline, on_batch=on_batch,
        )  # fmt: skip
        deleted[name] = done
        if not finished:
            complete = False
            break
    return PruneReport(cutoff=cutoff, deleted=deleted, dry_run=dry_run, complete=complete,
                       seconds=time.monotonic() - started)  # fmt: skip


def _prune_table(
    engine: Engine, name: str, row: type[LiveStatsRow] | type[MonitorResultRow],
    cutoff: datetime, *, dry_run: bool, batch_size: int, deadline: float | None,
    on_batch: Callable[[str, int], None] | None,
) -> tuple[int, bool]:  # fmt: skip
    """Rows deleted (or found, on a dry run) and whether the table is done.

    The old rows are walked in id order, a batch of ids read in a read transaction and then
    deleted in a write transaction of its own: the write lock (all of a SQLite database) is
    held only for the delete of one batch. Old rows never turn new, so the ids read stay old.
    """
    done, after = 0, 0
    while True:
        chosen = (
            select(row.id).where(row.window_start < cutoff, row.id > after)
            .order_by(row.id).limit(batch_size)
        )  # fmt: skip
        with session_scope(engine) as session:
            ids = list(session.scalars(chosen))
        if not ids:
            return done, True
        after = ids[-1]
        if dry_run:
            done += len(ids)
        else:
            with session_scope(engine, write=True) as session:
                gone = delete(row).where(row.id.in_(ids))
                result = session.execute(gone.execution_options(synchronize_session=False))
                done += int(getattr(result, "rowcount", 0) or 0)
        if on_batch is not None:
            on_batch(name, done)
        if len(ids) < batch_size:
            return done, True
        if deadline is not None and time.monotonic() >= deadline:
            return done, False
