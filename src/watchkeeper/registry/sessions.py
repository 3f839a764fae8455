"""Dashboard sessions kept on the server: a random id in the browser's cookie, everything else
here.

The cookie holds only a random id (never an API token); this table holds its SHA-256, the
session's own random CSRF value, when it expires, and the token it was opened with. A session
ends at logout, at expiry, or when its token is revoked, whichever comes first. Sessions of the
local operator (no tokens configured) have no token.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine

from watchkeeper.registry import convert
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.schema import SessionRow, TokenRow
from watchkeeper.registry.tokens import digest

DEFAULT_TTL = timedelta(hours=12)
MAX_LOCAL = 1000  # local sessions kept (the oldest go first)


@dataclass(frozen=True)
class SessionInfo:
    id: int
    csrf: str
    expires_at: datetime
    token_id: int | None
    name: str  # who: the token's name, or "local"
    role: str


class SessionStore:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))

    def open(
        self, token_id: int | None, *, ttl: timedelta = DEFAULT_TTL
    ) -> tuple[SessionInfo, str]:
        """A new session; the returned secret goes into the cookie and is never stored."""
        secret, csrf, now = secrets.token_urlsafe(32), secrets.token_hex(32), self.clock()
        with session_scope(self.engine, write=True) as session:
            session.execute(delete(SessionRow).where(SessionRow.expires_at < now))
            if token_id is None:  # anyone local may open one: keep only the newest
                newest = session.scalar(select(func.max(SessionRow.id))) or 0
                session.execute(delete(SessionRow).where(
                    SessionRow.token_id.is_(None), SessionRow.id <= newest - MAX_LOCAL
                ))  # fmt: skip
            row = SessionRow(session_hash=digest(secret), csrf=csrf, token_id=token_id,
                             created_at=now, expires_at=now + ttl, revoked=False)  # fmt: skip
            session.add(row)
            session.flush()
            token = session.get(TokenRow, token_id) if token_id is not None else None
        name, role = (token.name, token.role) if token is not None else ("local", "admin")
        return SessionInfo(
            row.id, csrf, convert.aware(row.expires_at), token_id, name, role
        ), secret

    def get(self, secret: str) -> SessionInfo | None:
        """The live session behind a cookie: not ended, not expired, its token not revoked."""
        with session_scope(self.engine) as session:
            query = (
                select(SessionRow, TokenRow)
                .outerjoin(TokenRow, SessionRow.token_id == TokenRow.id)
                .where(SessionRow.session_hash == digest(secret))
            )
            found = session.execute(query).first()
            if found is None:
                return None
            row, token = found
            if row.revoked or convert.aware(row.expires_at) <= self.clock():
                return None
            if row.token_id is not None and (token is None or token.revoked):
                return None
            name, role = (token.name, token.role) if token is not None else ("local", "admin")
            return SessionInfo(row.id, row.csrf, convert.aware(row.expires_at), row.token_id,
                               name, role)  # fmt: skip

    def end(self, secret: str) -> None:
        """Logout: the session stops working on every replica at once."""
        with session_scope(self.engine, write=True) as session:
            session.execute(
                update(SessionRow).where(SessionRow.session_hash == digest(secret))
                .values(revoked=True)
            )  # fmt: skip

    def end_all(self, token_id: int | None = None) -> int:
        """End every session (of one token, when given); how many had not been ended yet."""
        with session_scope(self.engine, write=True) as session:
            query = update(SessionRow).where(SessionRow.revoked.is_(False))
            if token_id is not None:
                query = query.where(SessionRow.token_id == token_id)
            return int(session.execute(query.values(revoked=True)).rowcount)  # type: ignore[attr-defined]
