"""Named leases in the metadata database: one holder at a time, taken over once expired.

The scheduler holds the ``scheduler`` lease and renews it well within its time to live; if
the holder dies, another process acquires the lease once it has expired. Each acquisition is
one write transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a row lock), so two
processes never both believe they hold it. Works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from watchkeeper.registry import convert
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.schema import LeaseRow


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    expires_at: datetime
    acquired_at: datetime


class LeaseStore:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))

    def acquire(self, name: str, holder: str, ttl: timedelta) -> bool:
        """Take or renew ``name`` for ``holder`` until now + ``ttl``; False if someone else
        holds an unexpired lease."""
        now = self.clock()
        try:
            with session_scope(self.engine, write=True) as session:
                row = session.scalar(
                    select(LeaseRow).where(LeaseRow.name == name).with_for_update()
                )
                if row is None:
                    session.add(LeaseRow(name=name, holder=holder, expires_at=now + ttl,
                                         acquired_at=now))  # fmt: skip
                    return True
                if row.holder != holder and convert.aware(row.expires_at) > now:
                    return False
                if row.holder != holder:
                    row.holder, row.acquired_at = holder, now
                row.expires_at = now + ttl
                return True
        except IntegrityError:  # another process inserted the first row at the same moment
            return False

    def release(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean shutdown), if ``holder`` has it."""
        with session_scope(self.engine, write=True) as session:
            row = session.get(LeaseRow, name)
            if row is not None and row.holder == holder:
                session.delete(row)

    def get(self, name: str) -> Lease | None:
        with session_scope(self.engine) as session:
            row = session.get(LeaseRow, name)
            if row is None:
                return None
            return Lease(row.name, row.holder, convert.aware(row.expires_at),
                         convert.aware(row.acquired_at))  # fmt: skip
