"""Pinned versions (``name@3``, ``name@latest``, ``name@champion``): loaded on first use, bounded.

Anyone who can reach the data plane can ask for any version, so what pinning keeps loaded is
bounded twice: at most ``max_versions`` at once (the least recently used goes first) and none
idle for more than ``idle_seconds``. This module only keeps the order; the routing table loads
versions and closes the ones handed back to it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from watchkeeper.errors import InvalidInput

T = TypeVar("T")
Key = tuple[str, int]  # model, version


@dataclass(frozen=True, kw_only=True)
class PinPolicy:
    """How many pinned versions stay loaded, and for how long without a request.

    >>> PinPolicy()
    PinPolicy(max_versions=8, idle_seconds=600.0)
    """

    max_versions: int = 8
    idle_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.max_versions < 1:
            raise InvalidInput(f"max_versions must be at least 1, got {self.max_versions}")
        if not self.idle_seconds > 0:
            raise InvalidInput(f"idle_seconds must be > 0, got {self.idle_seconds}")


class PinnedVersions(Generic[T]):
    """A least-recently-used map of loaded pinned versions.

    >>> pins = PinnedVersions[str](PinPolicy(max_versions=2))
    >>> pins.add(("m", 1), "v1"), pins.add(("m", 2), "v2")
    ([], [])
    >>> pins.get(("m", 1))
    'v1'
    >>> pins.add(("m", 3), "v3")  # v2 is the least recently used
    ['v2']
    >>> sorted(pins.keys())
    [('m', 1), ('m', 3)]
    """

    def __init__(self, policy: PinPolicy, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self._items: OrderedDict[Key, tuple[T, float]] = OrderedDict()  # value, last used

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[Key]:
        return list(self._items)

    def values(self) -> list[T]:
        return [value for value, _ in self._items.values()]

    def get(self, key: Key) -> T | None:
        """The pinned value, now the most recently used; None when not pinned."""
        item = self._items.get(key)
        if item is None:
            return None
        self._items[key] = (item[0], self.clock())
        self._items.move_to_end(key)
        return item[0]

    def add(self, key: Key, value: T) -> list[T]:
        """Pin ``value``; returns what no longer fits (least recently used first)."""
        self._items[key] = (value, self.clock())
        self._items.move_to_end(key)
        evicted = []
        while len(self._items) > self.policy.max_versions:
            _, (old, _) = self._items.popitem(last=False)
            evicted.append(old)
        return evicted

    def pop(self, key: Key) -> T | None:
        item = self._items.pop(key, None)
        return item[0] if item is not None else None

    def pop_idle(self) -> list[T]:
        """Unpin and return every value unused for more than ``idle_seconds``."""
        cutoff = self.clock() - self.policy.idle_seconds
        idle = [key for key, (_, used) in self._items.items() if used < cutoff]
        return [self._items.pop(key)[0] for key in idle]

    def pop_model(self, name: str) -> list[T]:
        """Unpin every version of ``name`` (the model is no longer served here)."""
        return [self._items.pop(key)[0] for key in self.keys() if key[0] == name]
