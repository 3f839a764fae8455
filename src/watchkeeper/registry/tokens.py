"""API tokens: created with a role, stored as SHA-256 hashes, revocable.

Once a token has existed, authentication stays on: revoking every token leaves a server that
refuses everyone (create a new token with the CLI, which talks to the database directly), never
one that opens up again. Revoking the last live token is refused unless forced.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from watchkeeper.errors import Conflict, InvalidInput, NotFound
from watchkeeper.registry import convert
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.schema import TokenRow

# What each role may do. The management roles rank reader < deployer < admin; the data-plane
# roles (``client``: predict, ``feedback``: send labels) are for callers that need only that,
# enforced when a server runs with ``--require-token``.
GRANTS: dict[str, frozenset[str]] = {
    "client": frozenset({"client"}),
    "feedback": frozenset({"feedback"}),
    "reader": frozenset({"reader", "client"}),
    "deployer": frozenset({"deployer", "reader", "client", "feedback"}),
    "admin": frozenset({"admin", "deployer", "reader", "client", "feedback"}),
}
ROLES = tuple(GRANTS)


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    role: str
    created_by: str
    created_at: datetime
    revoked: bool


NAME = re.compile(r"[^\x00-\x1f\x7f]{1,256}")


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
        if not NAME.fullmatch(name):
            raise InvalidInput(f"token name {name[:80]!r} must be 1-256 printable characters")
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
        """Whether a token has ever existed: then every API and dashboard call needs one, even
        after every token is revoked (auth never switches itself off)."""
        with session_scope(self.engine) as session:
            return session.scalar(select(TokenRow.id).limit(1)) is not None

    def live(self) -> int:
        """How many tokens are not revoked."""
        with session_scope(self.engine) as session:
            query = select(func.count()).select_from(TokenRow).where(TokenRow.revoked.is_(False))
            return int(session.scalar(query) or 0)

    def list(self) -> list[TokenInfo]:
        with session_scope(self.engine) as session:
            return [_info(r) for r in session.scalars(select(TokenRow).order_by(TokenRow.id))]

    def revoke(self, token_id: int, *, force: bool = False) -> TokenInfo:
        """Revoke a token (its dashboard sessions end with it). The last live token is revoked
        only with ``force``: afterwards nobody can use the API or dashboard until a new token
        is created."""
        with session_scope(self.engine, write=True) as session:
            row = session.get(TokenRow, token_id)
            if row is None:
                raise NotFound(f"no token {token_id}")
            if row.revoked:
                return _info(row)
            others = (
                select(func.count())
                .select_from(TokenRow)
                .where(TokenRow.revoked.is_(False), TokenRow.id != token_id)
            )
            if not force and not session.scalar(others):
                raise Conflict(
                    f"token {token_id} is the last live token: without it nobody can use the API "
                    "or the dashboard (authentication stays on); create another first, or pass "
                    "--force"
                )
            row.revoked = True
            return _info(row)


def _info(row: TokenRow) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.role, row.created_by, convert.aware(row.created_at),
                     row.revoked)  # fmt: skip
