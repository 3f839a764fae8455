"""What the dashboard reads from: the registry, its stores and the logbook, plus small caches.

The dashboard owns no state of its own. ``Backend`` is anything holding a started registry and
authenticator — the model server (``watchkeeper serve``) or the dashboard's own app
(``watchkeeper ui``); ``Sources`` is built from it once, on the first request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Protocol, TypeVar

from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook
from watchkeeper.monitoring.profile import DatasetProfile
from watchkeeper.registry import Registry
from watchkeeper.registry.entities import ModelVersion
from watchkeeper.registry.live import LiveStatsStore
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.rollout.ab_units import ABLooks
from watchkeeper.rollout.controller import Rollouts
from watchkeeper.serving.auth import Authenticator

T = TypeVar("T")


class Backend(Protocol):
    settings: Settings
    registry: Registry | None
    auth: Authenticator | None
    logbook: Logbook | None


class TTLCache:
    """Values computed at most once per ``ttl`` seconds per key (pages poll; data moves slowly)."""

    def __init__(self, *, max_items: int = 512, clock: Callable[[], float] = time.monotonic):
        self.max_items = max_items
        self.clock = clock
        self._lock = threading.Lock()
        self._items: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable, ttl: float, compute: Callable[[], T]) -> T:
        now = self.clock()
        with self._lock:
            found = self._items.get(key)
        if found is not None and now - found[0] < ttl:
            value: T = found[1]
            return value
        value = compute()
        with self._lock:
            if len(self._items) >= self.max_items:
                self._items.clear()
            self._items[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class Sources:
    def __init__(self, registry: Registry, *, logbook: Logbook | None = None) -> None:
        self.registry = registry
        self.monitoring = MonitoringStore(registry.engine)
        self.live = LiveStatsStore(registry.engine)
        self.logbook = logbook or Logbook(registry.settings.resolved_logbook_url)
        self.ab = ABLooks(self.logbook)  # A/B looks stay incremental across page views
        self.cache = TTLCache()
        self._profiles: dict[tuple[str, int, str], DatasetProfile | None] = {}

    def rollouts(self, registry: Registry | None = None) -> Rollouts:
        """The rollout operations, recording ``registry``'s actor (``registry.acting_as``)."""
        return Rollouts(registry or self.registry, logbook=self.logbook, live=self.live,
                        ab=self.ab)  # fmt: skip

    def profile(self, version: ModelVersion) -> DatasetProfile | None:
        """A version's reference profile, hash-checked once and then kept (versions never
        change)."""
        key = (version.name, version.version, version.manifest_digest)
        if key not in self._profiles:
            if len(self._profiles) > 256:
                self._profiles.clear()
            self._profiles[key] = self.registry.profile_of(version)
        return self._profiles[key]
