"""Who is calling: bearer tokens for the API and the data plane, server-side dashboard sessions.

- **No token has ever existed**: every caller is the local operator with every role, and the
  server listens on loopback only (``watchkeeper serve`` narrows any other address and says so).
  A server bound beyond loopback is built with ``required=True`` and never runs in this mode.
- **Once a token has existed**, authentication stays on, even after every token is revoked.
  The management API (``/api/v1``) takes only ``Authorization: Bearer <token>``; the dashboard
  takes only its session cookie, which holds a random session id (the session, its CSRF value
  and its expiry live in the database, see ``registry/sessions.py``), never a token.
- **The data plane** (predict, feedback) needs a token only when the server was started with
  ``--require-token predict,feedback``; roles ``client`` and ``feedback`` exist for it.

Roles: see ``registry.tokens.GRANTS``. Token and session checks are cached for a few seconds in
each process, so a revoked token or an ended session stops working everywhere within that time.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from starlette.requests import HTTPConnection

from watchkeeper.errors import Forbidden, Unauthorized, WatchkeeperError
from watchkeeper.registry.sessions import SessionStore
from watchkeeper.registry.tokens import GRANTS, TokenStore

COOKIE = "wk_session"
CACHE_SECONDS = 5.0
CACHE_ENTRIES = 10_000
DATA_PLANE = ("predict", "feedback")  # what --require-token may name
V = TypeVar("V")


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    authenticated: bool = True  # False: the local operator (no token has ever existed)
    token_id: int | None = None
    csrf: str | None = None  # the dashboard session's CSRF value (None: not a session)

    def allows(self, role: str) -> bool:
        return role in GRANTS.get(self.role, frozenset())


LOCAL = Principal("local", "admin", authenticated=False)


class _Cache(Generic[V]):
    """A few seconds' memory of answers, bounded in size."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, V]] = {}

    def get(self, key: str) -> tuple[bool, V | None]:
        with self._lock:
            found = self._seen.get(key)
        if found is not None and self.clock() - found[0] < CACHE_SECONDS:
            return True, found[1]
        return False, None

    def put(self, key: str, value: V) -> None:
        with self._lock:
            if len(self._seen) >= CACHE_ENTRIES:
                self._seen.clear()
            self._seen[key] = (self.clock(), value)

    def drop(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)


class Authenticator:
    def __init__(
        self,
        tokens: TokenStore,
        sessions: SessionStore | None = None,
        *,
        required: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = tokens
        self.sessions = sessions or SessionStore(tokens.engine)
        self.required = required
        self.clock = clock
        self._on = required  # once on, never off in this process
        self._checked = -CACHE_SECONDS
        self._tokens: _Cache[Principal | None] = _Cache(clock)
        self._sessions: _Cache[Principal | None] = _Cache(clock)

    def configured(self) -> bool:
        """Whether callers must prove who they are (sticky: never switches back off)."""
        if self._on:
            return True
        now = self.clock()
        if now - self._checked >= CACHE_SECONDS:
            self._on = self.store.configured()
            self._checked = now
        return self._on

    # --- bearer tokens: the management API and the data plane --------------------------------

    def token(self, secret: str) -> Principal | None:
        hit, found = self._tokens.get(secret)
        if hit:
            return found
        info = self.store.verify(secret)
        found = Principal(info.name, info.role, token_id=info.id) if info is not None else None
        self._tokens.put(secret, found)
        return found

    def principal(self, connection: HTTPConnection) -> Principal | None:
        """The API caller: ``LOCAL`` when auth is off, else the bearer token's holder or None.
        The dashboard's cookie is never accepted here (it is not a credential for the API)."""
        if not self.configured():
            return LOCAL
        secret = bearer(connection.headers.get("authorization"))
        return self.token(secret) if secret else None

    def require(self, connection: HTTPConnection, role: str) -> Principal:
        """The caller if allowed ``role``; else 401 (who are you?) or 403 (not allowed)."""
        return _allowed(self.principal(connection), role)

    async def data_plane(self, authorization: str | None, role: str) -> WatchkeeperError | None:
        """The fast path's check (``client`` for predict, ``feedback`` for feedback): None when
        the caller may go on. A cached answer costs a dictionary lookup; a new token one
        database query, off the event loop."""
        secret = bearer(authorization)
        if not secret:
            return Unauthorized(f"this server requires a token with role {role} or higher "
                                "(Authorization: Bearer <token>)")  # fmt: skip
        hit, found = self._tokens.get(secret)
        if not hit:
            found = await asyncio.to_thread(self.token, secret)
        try:
            _allowed(found, role)
        except WatchkeeperError as exc:
            return exc
        return None

    # --- dashboard sessions ------------------------------------------------------------------

    def session(self, connection: HTTPConnection) -> Principal | None:
        """The dashboard's visitor: the live session behind the cookie, or None. With auth on,
        only sessions opened with a token count (a local session from before is void)."""
        secret = connection.cookies.get(COOKIE)
        if not secret:
            return None
        hit, found = self._sessions.get(secret)
        if not hit:
            info = self.sessions.get(secret)
            found = None
            if info is not None:
                found = Principal(info.name, info.role, authenticated=info.token_id is not None,
                                  token_id=info.token_id, csrf=info.csrf)  # fmt: skip
            self._sessions.put(secret, found)
        if found is not None and found.authenticated != self.configured():
            return None
        return found

    def open_session(self, token: str | None) -> tuple[Principal, str] | None:
        """A new session for a token (None: the local operator, only while auth is off);
        None when the token is unknown or revoked. Returns the visitor and the cookie value."""
        if token is None:
            if self.configured():
                return None
            info, secret = self.sessions.open(None)
        else:
            found = self.store.verify(token)
            if found is None:
                return None
            info, secret = self.sessions.open(found.id)
        who = Principal(info.name, info.role, authenticated=info.token_id is not None,
                        token_id=info.token_id, csrf=info.csrf)  # fmt: skip
        self._sessions.put(secret, who)
        return who, secret

    def end_session(self, secret: str) -> None:
        self.sessions.end(secret)
        self._sessions.drop(secret)


def csrf_ok(principal: Principal, given: str | None) -> bool:
    """Whether a form carries its session's CSRF value (a random value per session)."""
    expected = principal.csrf
    return bool(expected and given) and hmac.compare_digest(expected or "", given or "")


def bearer(header: str | None) -> str | None:
    scheme, _, value = (header or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _allowed(found: Principal | None, role: str) -> Principal:
    if found is None:
        raise Unauthorized("a valid API token is required (Authorization: Bearer <token>)")
    if not found.allows(role):
        raise Forbidden(f"'{found.name}' has role {found.role}; this needs {role}")
    return found
