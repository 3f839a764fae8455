"""Dashboard sessions and tokens in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchkeeper.errors import Conflict
from watchkeeper.registry import Registry
from watchkeeper.registry.sessions import SessionStore
from watchkeeper.registry.tokens import TokenStore


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_session_is_found_by_its_secret_until_it_expires(registry: Registry) -> None:
    clock = Clock()
    tokens = TokenStore(registry.engine)
    token, _ = tokens.create("ops", "deployer", actor="owner")
    store = SessionStore(registry.engine, clock=clock)
    info, secret = store.open(token.id, ttl=timedelta(hours=1))
    found = store.get(secret)
    assert found is not None
    assert (found.name, found.role, found.csrf) == ("ops", "deployer", info.csrf)
    assert len(info.csrf) == 64
    assert store.get(secret + "x") is None
    clock.now += timedelta(minutes=59)
    assert store.get(secret) is not None
    clock.now += timedelta(minutes=2)
    assert store.get(secret) is None  # expired


def test_sessions_end_at_logout_and_with_their_token(registry: Registry) -> None:
    tokens = TokenStore(registry.engine)
    one, _ = tokens.create("one", "reader", actor="owner")
    two, _ = tokens.create("two", "admin", actor="owner")
    store = SessionStore(registry.engine)
    (a, secret_a), (b, secret_b) = store.open(one.id), store.open(one.id)
    assert a.csrf != b.csrf  # every session its own random value
    _, secret_c = store.open(two.id)
    store.end(secret_a)
    assert store.get(secret_a) is None
    assert store.get(secret_b) is not None
    tokens.revoke(one.id)
    assert store.get(secret_b) is None  # the token's other sessions end with it
    assert store.get(secret_c) is not None
    local, secret_local = store.open(None)
    assert (local.name, local.role, local.token_id) == ("local", "admin", None)
    assert store.end_all() == 3  # b (its token revoked), c and the local one


def test_auth_never_switches_off_once_a_token_existed(registry: Registry) -> None:
    tokens = TokenStore(registry.engine)
    assert not tokens.configured()
    only, _ = tokens.create("only", "admin", actor="owner")
    with pytest.raises(Conflict, match="last live token"):
        tokens.revoke(only.id)
    assert tokens.live() == 1
    tokens.revoke(only.id, force=True)
    assert tokens.live() == 0
    assert tokens.configured()
