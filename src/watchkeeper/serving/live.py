"""Live per-version aggregates of one server process, published to the metadata database.

On the request path only O(1) work happens: counters are bumped and the batch is queued by
reference. A publisher thread, every ``interval`` seconds, bins the queued batches on the
reference profile's edges (one vectorised pass per feature), then writes this replica's running
totals for the current minute. Totals from every replica merge exactly by summing.

Kinds of counts (the meaning of each list):
- ``requests``: [answered, ok, client errors (4xx), server errors (5xx)]
- ``rows``: [rows predicted]
- ``cpu_us``: [CPU microseconds spent in the model's predict calls]
- ``latency_ms``: a ``LogSketch`` of request latencies in milliseconds (1% relative error, no
  upper limit; see ``watchkeeper.registry.live.latency_sketch``)
- ``feature:<name>``: numeric — counts on the reference profile's bins; categorical — counts
  of the reference categories in profile order, then one for unseen values, then one for nulls
- ``prediction``: the same, on the profile of the model's predictions
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from watchkeeper.errors import WatchkeeperError
from watchkeeper.monitoring.profile import (
    CategoricalProfile,
    DatasetProfile,
    FeatureProfile,
    NumericProfile,
    bin_counts,
    category_counts,
)
from watchkeeper.monitoring.sketch import LogSketch
from watchkeeper.registry.live import LiveCounts, latency_sketch

log = logging.getLogger("watchkeeper.serving")

Key = tuple[str, int, datetime]  # model, version, minute


@dataclass
class _Pending:
    key: Key
    names: list[str]
    data: Any
    predictions: np.ndarray[Any, Any]
    profile: DatasetProfile | None


def replica_id() -> str:
    return f"{socket.gethostname()[:60]}-{os.getpid()}-{secrets.token_hex(3)}"


def _minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


class LiveStats:
    def __init__(self, *, replica: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:  # fmt: skip
        self.replica = replica or replica_id()
        self.clock = clock
        self._totals: dict[Key, dict[str, np.ndarray[Any, Any]]] = defaultdict(dict)
        self._latency: dict[Key, LogSketch] = {}
        self._pending: list[_Pending] = []
        self._dirty: set[Key] = set()
        self._lock = threading.Lock()

    def observe_request(self, model: str, version: int, latency_s: float, status: int,
                        *, count: int = 1) -> None:  # fmt: skip
        """``count`` requests answered with ``status`` in ``latency_s`` each."""
        key = (model, version, _minute(self.clock()))
        with self._lock:
            self._count_request(key, latency_s, status, count)

    def _count_request(self, key: Key, latency_s: float, status: int, count: int) -> None:
        totals = self._totals[key]
        requests = totals.get("requests")
        if requests is None:
            requests = totals["requests"] = np.zeros(4, dtype=np.int64)
        requests[0] += count
        requests[1 if status < 400 else 2 if status < 500 else 3] += count
        if key not in self._latency:
            self._latency[key] = latency_sketch()
        self._latency[key].add(latency_s * 1000.0, count=count)
        self._dirty.add(key)

    def observe_cpu(self, model: str, version: int, seconds: float) -> None:
        """CPU time of one predict call (a micro-batch), for the cost of a window."""
        key = (model, version, _minute(self.clock()))
        with self._lock:
            self._bump(key, "cpu_us", int(seconds * 1e6))

    def observe_shadow_dropped(self, model: str, version: int, *, count: int = 1) -> None:
        """Shadow copies not scored: too many were waiting (kind ``shadow_dropped``)."""
        key = (model, version, _minute(self.clock()))
        with self._lock:
            self._bump(key, "shadow_dropped", count)

    def _bump(self, key: Key, kind: str, amount: int) -> None:
        """Add to a one-number kind, in place (call with the lock held)."""
        self._totals[key].setdefault(kind, np.zeros(1, dtype=np.int64))[0] += amount
        self._dirty.add(key)

    def observe_batch(
        self, model: str, version: int, names: list[str], data: Any,
        predictions: np.ndarray[Any, Any], profile: DatasetProfile | None,
    ) -> None:  # fmt: skip
        key = (model, version, _minute(self.clock()))
        with self._lock:  # rows and histograms are counted together, in drain()
            self._pending.append(_Pending(key, names, data, predictions, profile))

    def drain(self) -> list[LiveCounts]:
        """Bin what is queued and return the totals of every window that changed."""
        with self._lock:
            pending, self._pending = self._pending, []
        binned = [(item.key, self._bin(item)) for item in _merged(pending)]  # slow: unlocked
        with self._lock:
            for key, histograms in binned:
                for kind, counts in histograms.items():
                    _add(self._totals[key], kind, counts)
                self._dirty.add(key)
            dirty, self._dirty = self._dirty, set()
            out = [
                LiveCounts(key[0], key[1], self.replica, key[2], kind, tuple(map(int, counts)))
                for key in dirty
                for kind, counts in self._totals[key].items()
            ]
            out += [LiveCounts(key[0], key[1], self.replica, key[2], "latency_ms", sketch.copy())
                    for key in dirty if (sketch := self._latency.get(key)) is not None]  # fmt: skip
            self._forget_old()
        return out

    def restore(self, items: list[LiveCounts]) -> None:
        """Mark windows whose publication failed so the next drain sends them again."""
        with self._lock:
            self._dirty.update((i.model, i.version, i.window_start) for i in items)

    @staticmethod
    def _bin(item: _Pending) -> dict[str, np.ndarray[Any, Any]]:
        out: dict[str, np.ndarray[Any, Any]] = {"rows": np.array([len(item.predictions)])}
        if item.profile is None:
            return out
        for i, name in enumerate(item.names):
            feature = item.profile.features.get(name)
            if feature is not None:
                values = item.data[:, i] if isinstance(item.data, np.ndarray) else item.data[name]
                out[f"feature:{name}"] = _histogram(feature, np.asarray(values))
        if item.profile.predictions is not None:
            out["prediction"] = _histogram(item.profile.predictions, item.predictions)
        return out

    def _forget_old(self) -> None:
        current = _minute(self.clock())
        for key in [k for k in self._totals if (current - k[2]).total_seconds() > 120]:
            del self._totals[key]
            self._latency.pop(key, None)


def _merged(pending: list[_Pending]) -> list[_Pending]:
    """One item per window, columns and profile: binning costs a few numpy calls per feature
    whatever the rows, so requests of one row each are binned together, not one by one."""
    groups: dict[tuple[Any, ...], list[_Pending]] = defaultdict(list)
    for item in pending:
        groups[(item.key, tuple(item.names), id(item.profile), type(item.data))].append(item)
    out = []
    for items in groups.values():
        if len(items) == 1:
            out.append(items[0])
            continue
        first = items[0]
        datas = [item.data for item in items]
        data = (np.concatenate(datas) if isinstance(first.data, np.ndarray)
                else pd.concat(datas, ignore_index=True))  # fmt: skip
        predictions = np.concatenate([item.predictions for item in items])
        out.append(_Pending(first.key, first.names, data, predictions, first.profile))
    return out


def _add(totals: dict[str, np.ndarray[Any, Any]], kind: str, counts: np.ndarray[Any, Any]) -> None:
    existing = totals.get(kind)
    totals[kind] = counts if existing is None else existing + counts


def _histogram(profile: FeatureProfile, values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if isinstance(profile, NumericProfile):
        if not profile.edges:
            return np.zeros(0, dtype=np.int64)
        return bin_counts(values, profile.edges).astype(np.int64)
    assert isinstance(profile, CategoricalProfile)
    known, unseen = category_counts(values, list(profile.frequencies))
    nulls = len(values) - int(known.sum()) - unseen  # category_counts leaves nulls out
    return np.concatenate([known, [unseen, nulls]]).astype(np.int64)


BACKOFF_MAX = 60.0  # seconds between publications at most, while they fail


class Publisher:
    """Writes a process's live totals to the database every ``interval`` seconds.

    Supervised: a failed publication keeps its totals for the next one, is logged (with its
    traceback unless it is a ``WatchkeeperError``, the database being away), reported to
    ``on_failure`` and followed by longer and longer waits (doubling, up to ``BACKOFF_MAX``);
    ``problem()`` says so if the thread has stopped.
    """

    TASK = "live_stats"

    def __init__(self, stats: LiveStats, write: Callable[[list[LiveCounts]], int],
                 *, interval: float = 5.0,
                 on_failure: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.stats = stats
        self.write = write
        self.interval = interval
        self.on_failure = on_failure  # called with TASK on each failed publication
        self.failures = 0  # in a row
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wk-live-stats", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def problem(self) -> str | None:
        """Why the replica is not ready on this publisher's account (None: it is running)."""
        if self._thread.ident is None or self._thread.is_alive() or self._stop.is_set():
            return None
        return "the live-statistics publisher stopped"

    def publish(self) -> int:
        items = self.stats.drain()
        if not items:
            return 0
        try:
            return self.write(items)
        except BaseException:
            self.stats.restore(items)
            raise

    def _run(self) -> None:
        while not self._stop.wait(self._delay()):
            try:
                self.publish()
                self.failures = 0
            except WatchkeeperError as exc:  # a database blip: the totals are sent next time
                self._failed()
                log.warning("could not publish live statistics (%d in a row): %s",
                            self.failures, exc.message)  # fmt: skip
            except Exception:
                self._failed()
                log.exception("could not publish live statistics (%d in a row)", self.failures)

    def _delay(self) -> float:
        return min(self.interval * 2.0 ** min(self.failures, 16), max(self.interval, BACKOFF_MAX))

    def _failed(self) -> None:
        self.failures += 1
        if self.on_failure is not None:
            self.on_failure(self.TASK)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.publish()
