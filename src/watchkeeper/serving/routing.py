"""Which version answers one request: deterministic per routing key, random without one.

A key is hashed (BLAKE2b, salted with the model name so two models split users
independently) to a point in [0, 1); the candidate answers when the point falls below its
share. The same key therefore always sees the same arm while the share stays put, and a
widening canary only adds keys to the candidate, never moves one back.
"""

from __future__ import annotations

import hashlib
import random

_SCALE = float(1 << 64)


def bucket(model: str, key: str) -> float:
    """The key's fixed point in [0, 1) for this model.

    >>> bucket("churn", "user-42") == bucket("churn", "user-42")
    True
    >>> 0.0 <= bucket("churn", "user-42") < 1.0
    True
    """
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=_person(model)).digest()
    return int.from_bytes(digest, "big") / _SCALE


def to_candidate(model: str, share: float, key: str | None, rng: random.Random) -> bool:
    """Whether this request goes to the candidate."""
    if share <= 0.0:
        return False
    if share >= 1.0:
        return True
    point = bucket(model, key) if key else rng.random()
    return point < share


def _person(model: str) -> bytes:
    return hashlib.blake2b(model.encode(), digest_size=16).digest()
