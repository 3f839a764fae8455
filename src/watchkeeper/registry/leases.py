"""Named leases in the metadata database: one holder at a time, with a fencing epoch.

The scheduler holds the ``scheduler`` lease. Every time checks happen in the database with the
database's clock (:class:`db_now`), never by comparing host clocks: a lease is taken only when
``expires_at <= now`` there, and renewed to ``now + ttl``. Taking the lease adds one to its
``epoch`` (the fencing token), which never goes back (a release only expires the lease).

A write made on behalf of the holder runs in a :func:`fenced` transaction: its first
statement is an ``UPDATE leases ... WHERE epoch = :epoch AND expires_at > now`` that must touch
the row, else :class:`StaleEpoch` and the whole transaction is rolled back. The UPDATE also
locks the lease row (PostgreSQL row lock; SQLite's write lock), so no takeover commits between
the check and the write: a paused-then-resumed old holder changes nothing.

:class:`LeaseKeeper` renews from a thread of its own every ``ttl / 3``, however long the work
that relies on it takes, and believes it leads only until ``ttl`` after its last successful
renewal began (monotonic clock), so a holder that cannot reach the database stops acting in
time too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, DateTime, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from watchkeeper.errors import Conflict, WatchkeeperError
from watchkeeper.registry import convert
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.schema import LeaseRow

log = logging.getLogger("watchkeeper.leases")
# A process paused inside a lease transaction holds the lease row's lock: PostgreSQL ends such a
# transaction after this long idle, so a takeover waits for it at most this long.
IDLE_IN_TRANSACTION_MS = 5000


class StaleEpoch(Conflict):
    """A write on behalf of a lease epoch that is no longer the lease's (or has expired)."""


@dataclass(frozen=True)
class Fence:
    """What a holder's write carries: the lease's name and the epoch it holds."""

    lease: str
    epoch: int


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    epoch: int
    expires_at: datetime
    acquired_at: datetime


class db_now(FunctionElement[datetime]):  # noqa: N801 (an SQL function's name)
    """The database's current time plus ``seconds``, in the column's own storage format.

    PostgreSQL: ``now() + make_interval(secs => s)``. SQLite stores timestamps as naive UTC
    strings with microseconds (SQLAlchemy's format), so its clock is read the same way:
    ``strftime('%Y-%m-%d %H:%M:%f000', 'now', '+s seconds')`` (millisecond resolution, where
    ``CURRENT_TIMESTAMP`` has whole seconds only).
    """

    type = DateTime(timezone=True)
    inherit_cache = False  # ``seconds`` is rendered into the SQL: a cached form would be wrong

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = float(seconds)
        super().__init__()


@compiles(db_now)
def _db_now_default(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(now() + make_interval(secs => {element.seconds!r}))"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m-%d %H:%M:%f000', 'now', '{element.seconds:+.6f} seconds')"


class LeaseStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def hold(self, name: str, holder: str, ttl: float, epoch: int | None = None) -> int | None:
        """Renew ``name`` for ``holder`` at ``epoch``, or take it if it has expired (by the
        database's clock); the epoch held afterwards, or None if another holder has it."""
        try:
            with session_scope(self.engine, write=True) as session:
                _bound_idle(session)
                if epoch is not None and _rows(session.execute(
                    update(LeaseRow)
                    .where(LeaseRow.name == name, LeaseRow.holder == holder,
                           LeaseRow.epoch == epoch)
                    .values(expires_at=db_now(ttl))
                )):  # fmt: skip
                    return epoch
                taken = _rows(session.execute(
                    update(LeaseRow)
                    .where(LeaseRow.name == name, LeaseRow.expires_at <= db_now())
                    .values(holder=holder, epoch=LeaseRow.epoch + 1, acquired_at=db_now(),
                            expires_at=db_now(ttl))
                ))  # fmt: skip
                if not taken:
                    exists = session.scalar(select(LeaseRow.epoch).where(LeaseRow.name == name))
                    if exists is not None:
                        return None
                    session.execute(insert(LeaseRow).values(
                        name=name, holder=holder, epoch=1, acquired_at=db_now(),
                        expires_at=db_now(ttl),
                    ))  # fmt: skip
                new = session.scalar(
                    select(LeaseRow.epoch).where(LeaseRow.name == name, LeaseRow.holder == holder)
                )
                return int(new) if new is not None else None
        except IntegrityError:  # another process inserted the first row at the same moment
            return None

    def release(self, name: str, holder: str, epoch: int) -> None:
        """Give the lease up at once (a clean shutdown): it expires now, its epoch stays."""
        with session_scope(self.engine, write=True) as session:
            session.execute(
                update(LeaseRow)
                .where(LeaseRow.name == name, LeaseRow.holder == holder, LeaseRow.epoch == epoch)
                .values(expires_at=db_now())
            )

    def get(self, name: str) -> Lease | None:
        with session_scope(self.engine) as session:
            row = session.get(LeaseRow, name)
            if row is None:
                return None
            return Lease(row.name, row.holder, row.epoch, convert.aware(row.expires_at),
                         convert.aware(row.acquired_at))  # fmt: skip


def check_fence(session: Session, fence: Fence) -> None:
    """Inside a write transaction: lock the lease row if ``fence`` still holds it, unexpired;
    else :class:`StaleEpoch` (the caller's transaction rolls back)."""
    _bound_idle(session)
    held = _rows(session.execute(
        update(LeaseRow)
        .where(LeaseRow.name == fence.lease, LeaseRow.epoch == fence.epoch,
               LeaseRow.expires_at > db_now())
        .values(epoch=LeaseRow.epoch)
    ))  # fmt: skip
    if not held:
        current = session.scalar(select(LeaseRow.epoch).where(LeaseRow.name == fence.lease))
        raise StaleEpoch(
            f"write refused: lease '{fence.lease}' epoch {fence.epoch} is stale "
            f"(the lease is at epoch {current}, or expired)"
        )


@contextmanager
def fenced(engine: Engine, fence: Fence) -> Iterator[Session]:
    """A write transaction that commits only while ``fence`` holds the lease."""
    with session_scope(engine, write=True) as session:
        check_fence(session, fence)
        yield session


def _bound_idle(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text(f"SET LOCAL idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
        )


def _rows(result: object) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


class LeaseKeeper:
    """Holds a lease from a thread of its own: renews every ``ttl / 3`` and knows when it lost it;
    while another holds it, tries to take it every ``follow_every`` seconds (``ttl / 3`` by
    default), so a lease that expires is taken within that long; ``on_acquired`` is called
    (from the keeper's thread) each time it takes the lease.

    :meth:`fence` is the fence to write with while the lease is believed held, else None.
    """

    def __init__(
        self, store: LeaseStore, name: str, holder: str, ttl: float, *,
        follow_every: float | None = None, on_acquired: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        self.store, self.name, self.holder, self.ttl = store, name, holder, ttl
        self.follow_every = min(follow_every or ttl / 3, ttl / 3)
        self.on_acquired = on_acquired
        self._epoch: int | None = None
        self._valid_until = 0.0  # monotonic
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def fence(self) -> Fence | None:
        with self._lock:
            if self._epoch is None or time.monotonic() >= self._valid_until:
                return None
            return Fence(self.name, self._epoch)

    def renew(self) -> Fence | None:
        """One renewal (or takeover attempt) now; the fence held afterwards."""
        began = time.monotonic()
        with self._lock:
            epoch = self._epoch
        try:
            held = self.store.hold(self.name, self.holder, self.ttl, epoch)
        except WatchkeeperError as exc:
            log.warning("lease %s: renewal failed: %s", self.name, exc.message)
            return self.fence()  # held until its deadline, if nothing else
        with self._lock:
            if held != epoch:
                if epoch is not None:
                    log.warning("%s lost the lease %s (epoch %d is stale)", self.holder,
                                self.name, epoch)  # fmt: skip
                if held is not None:
                    log.info("%s took the lease %s at epoch %d", self.holder, self.name, held)
            self._epoch = held
            self._valid_until = began + self.ttl if held is not None else 0.0
        if held is not None and held != epoch and self.on_acquired is not None:
            self.on_acquired()
        return self.fence()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"wk-lease-{self.name}",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            held = None
            try:
                held = self.renew()
            except Exception:  # a bug here must not end the thread: leadership would freeze
                log.exception("lease %s: renewal crashed", self.name)
            self._stop.wait(self.ttl / 3 if held is not None else self.follow_every)

    def stop(self, *, release: bool = True) -> None:
        """Stop renewing; with ``release``, let the lease go at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.ttl)
        with self._lock:
            epoch, self._epoch, self._valid_until = self._epoch, None, 0.0
        if release and epoch is not None:
            try:
                self.store.release(self.name, self.holder, epoch)
            except WatchkeeperError as exc:
                log.warning("could not release the lease %s: %s", self.name, exc.message)
