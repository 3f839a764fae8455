"""Who is calling: bearer tokens for the API, a session cookie for the dashboard, CSRF values.

With no token configured, every caller is the local operator with every role — and the server
listens on 127.0.0.1 only (``watchkeeper serve`` enforces that and says so). Once one token
exists, the management API and the dashboard need one: ``Authorization: Bearer <token>`` or
the HTTP-only, SameSite=Strict ``wk_session`` cookie the dashboard's login sets. Roles rank
``reader`` < ``deployer`` < ``admin``. Token checks are cached for a few seconds so a busy
dashboard does not query the database on every call; a revoked token stops working within
that time.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from watchkeeper.errors import Forbidden, Unauthorized
from watchkeeper.registry.tokens import ROLES, TokenStore

COOKIE = "wk_session"
CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    secret: str | None = None  # the token it came with (None: local operator, no auth)

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


LOCAL = Principal("local", "admin")


class Authenticator:
    def __init__(self, store: TokenStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._configured: tuple[float, bool] | None = None
        self._seen: dict[str, tuple[float, Principal | None]] = {}

    def configured(self) -> bool:
        now = self.clock()
        with self._lock:
            if self._configured is not None and now - self._configured[0] < CACHE_SECONDS:
                return self._configured[1]
        answer = self.store.configured()
        with self._lock:
            self._configured = (now, answer)
        return answer

    def principal(self, connection: HTTPConnection) -> Principal | None:
        """The caller, ``LOCAL`` when auth is off, or None (no or unknown token)."""
        if not self.configured():
            return LOCAL
        secret = _bearer(connection) or connection.cookies.get(COOKIE)
        if not secret:
            return None
        now = self.clock()
        with self._lock:
            cached = self._seen.get(secret)
            if cached is not None and now - cached[0] < CACHE_SECONDS:
                return cached[1]
        info = self.store.verify(secret)
        found = Principal(info.name, info.role, secret) if info is not None else None
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[secret] = (now, found)
        return found

    def require(self, connection: HTTPConnection, role: str) -> Principal:
        """The caller if allowed ``role``; else 401 (who are you?) or 403 (not allowed)."""
        found = self.principal(connection)
        if found is None:
            raise Unauthorized("a valid API token is required (Authorization: Bearer <token>)")
        if not found.allows(role):
            raise Forbidden(f"'{found.name}' has role {found.role}; this needs {role}")
        return found


def csrf_value(principal: Principal) -> str:
    """The value every dashboard form carries: tied to the session, useless without it."""
    key = (principal.secret or "local").encode()
    return hmac.new(key, b"watchkeeper-csrf", hashlib.sha256).hexdigest()


def csrf_ok(principal: Principal, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(csrf_value(principal), given)


def _bearer(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
