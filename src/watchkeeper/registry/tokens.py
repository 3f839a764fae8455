"""API tokens: created with a role, stored as SHA-256 hashes, revocable."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from watchkeeper.errors import InvalidInput, NotFound
from watchkeeper.registry import convert
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.schema import TokenRow

ROLES = ("reader", "deployer", "admin")  # each role can do what the ones before it can


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    role: str
    created_by: str
    created_at: datetime
    revoked: bool


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))

    def create(self, name: str, role: str, *, actor: str) -> tuple[TokenInfo, str]:
        """A new token; the secret is returned once and never stored."""
        if role not in ROLES:
            raise InvalidInput(f"--role must be one of {', '.join(ROLES)}, not '{role}'")
        secret = "wk_" + secrets.token_urlsafe(32)
        with session_scope(self.engine, write=True) as session:
            row = TokenRow(name=name, role=role, token_hash=digest(secret), created_by=actor,
                           created_at=self.clock(), revoked=False)  # fmt: skip
            session.add(row)
            session.flush()
            return _info(row), secret

    def verify(self, secret: str) -> TokenInfo | None:
        with session_scope(self.engine) as session:
            row = session.scalar(select(TokenRow).where(TokenRow.token_hash == digest(secret)))
            return _info(row) if row is not None and not row.revoked else None

    def configured(self) -> bool:
        """Whether any live token exists: then every API and dashboard call needs one."""
        with session_scope(self.engine) as session:
            query = select(TokenRow.id).where(TokenRow.revoked.is_(False)).limit(1)
            return session.scalar(query) is not None

    def list(self) -> list[TokenInfo]:
        with session_scope(self.engine) as session:
            return [_info(r) for r in session.scalars(select(TokenRow).order_by(TokenRow.id))]

    def revoke(self, token_id: int) -> TokenInfo:
        with session_scope(self.engine, write=True) as session:
            row = session.get(TokenRow, token_id)
            if row is None:
                raise NotFound(f"no token {token_id}")
            row.revoked = True
            return _info(row)


def _info(row: TokenRow) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.role, row.created_by, convert.aware(row.created_at),
                     row.revoked)  # fmt: skip
