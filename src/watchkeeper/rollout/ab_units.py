"""A/B analysis per routing key, read incrementally from the logbook.

**The unit is the routing key.** An A/B split is sticky per key (``X-Routing-Key`` or the
plan's ``routing_field``): one user sees one arm, and one user's outcomes are correlated (a
keen buyer converts again and again). Treating each logged row as an independent observation
understates the variance by the design effect ``1 + (m - 1)·ρ`` (``m`` rows a key, ``ρ`` the
correlation within a key) and the always-valid test then finds winners that are not there.
So each arm is summarised over its keys: key ``i`` contributes its count ``n_i`` of outcomes
and their sum ``y_i``, the arm's metric is the ratio ``R = Σy / Σn`` (the mean outcome per
row, as before) and its variance comes from the delta method, i.e. each key's linearised
value ``z_i = (y_i - R n_i) / n̄`` is one observation (:func:`keyed_summary`; equal to the
cluster-robust "sandwich" variance of the mean with clusters = keys). A request that carries
no key was routed at random on its own, so it is a unit of its own.

**Incremental.** :class:`ABLooks` keeps, per deployment, the per-key sums of each arm and the
predictions still waiting for their outcome; a look reads only the predictions logged and the
feedback received since the previous look (plus ``overlap``, for rows that reached storage
late), never the whole logbook. The state is held in memory by whoever owns the
:class:`ABLooks` and hands it to each ``Rollouts`` it builds (the scheduler, the server's
deployment API and the dashboard each keep one for their life). It is not persisted: a new
process (a restart, a scheduler failover, a one-off ``watchkeeper deploy status``) rebuilds it
with one read since the deployment began and is incremental from then on. The always-valid
p-value it restarts from is computed on all the data, so it is still valid: only the running
minimum over earlier looks is forgotten, which can only make it larger.

An outcome counts when it is received within ``attribution`` of its prediction; the first one
received for a row counts (a later correction of an already counted row is ignored).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import Logbook
from watchkeeper.logbook.feedback import KEYS
from watchkeeper.registry.deployments import Deployment
from watchkeeper.rollout.stats import ABAnalysis, ArmSummary, ab_analysis

__all__ = ["ATTRIBUTION", "OVERLAP", "ABLooks", "KeyedSums", "keyed_summary", "unit_keys"]

OVERLAP = timedelta(minutes=1)
"""How far back each look re-reads, for rows written to storage after their timestamp (the
writer flushes every couple of seconds); rows later than this are left out of the analysis."""

ATTRIBUTION = timedelta(days=1)
"""An outcome received longer than this after its prediction does not count."""

_KEYED, _UNKEYED = "k:", "r:"
_TIMESTAMP = pa.timestamp("us", tz="UTC")


def keyed_summary(counts: npt.ArrayLike, sums: npt.ArrayLike) -> ArmSummary:
    """One arm over its routing keys: per key the number of outcomes ``n_i`` and their sum
    ``y_i``. ``mean`` is ``R = Σy / Σn`` (per row), ``n`` the number of keys and
    ``variance / n`` the delta-method variance of ``R``::

        Var(R) ≈ Σ (y_i - R n_i)² / (n̄² K (K - 1)),   n̄ = Σn / K

    Keys without outcomes are left out. Feed the result to
    :func:`~watchkeeper.rollout.stats.ab_analysis`; do not ``merge`` two of them (merge the
    :class:`KeyedSums` instead: a key may be in both).

    >>> s = keyed_summary([1, 2, 1], [1.0, 0.0, 1.0])  # R = 2/4, n̄ = 4/3
    >>> s.n, s.mean, round(s.variance / s.n, 6)  # (0.25 + 1 + 0.25) / ((16/9) · 3 · 2)
    (3, 0.5, 0.140625)
    """
    n = np.asarray(counts, dtype=np.float64)
    y = np.asarray(sums, dtype=np.float64)
    if n.shape != y.shape or n.ndim != 1 or (n < 0).any() or not np.isfinite(y).all():
        raise InvalidInput("counts and sums must be 1-D, alike, counts >= 0, sums finite")
    used = n > 0
    n, y = n[used], y[used]
    if n.size == 0:
        return ArmSummary(0)
    ratio = float(y.sum() / n.sum())
    z = (y - ratio * n) / (n.sum() / n.size)
    return ArmSummary(int(n.size), ratio, float(np.sum(z * z)))


class KeyedSums:
    """Running count and sum of one arm's outcomes per routing key (mergeable).

    >>> arm = KeyedSums().update(["a", "b", "a"], [1.0, 0.0, 1.0])
    >>> arm += KeyedSums().add(["b"], [1], [1.0])
    >>> arm.keys, arm.rows, arm.summary().mean
    (2, 4, 0.75)
    """

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._n = np.zeros(16, dtype=np.int64)
        self._y = np.zeros(16, dtype=np.float64)

    def __repr__(self) -> str:
        return f"KeyedSums(keys={self.keys}, rows={self.rows})"

    def update(self, keys: Sequence[str] | pa.Array, values: npt.ArrayLike) -> KeyedSums:
        """Add one outcome per row: ``keys[j]``'s outcome is ``values[j]``."""
        x = np.asarray(values, dtype=np.float64)
        if len(keys) != x.size or x.ndim != 1 or not np.isfinite(x).all():
            raise InvalidInput("need one finite value per key")
        if x.size == 0:
            return self
        table = pa.table({"key": pa.array(keys, pa.string()), "value": x})
        grouped = table.group_by("key", use_threads=False).aggregate(
            [("value", "count"), ("value", "sum")]
        )
        return self.add(grouped["key"].to_pylist(), grouped["value_count"].to_numpy(),
                        grouped["value_sum"].to_numpy())  # fmt: skip

    def add(self, keys: Sequence[str], counts: npt.ArrayLike, sums: npt.ArrayLike) -> KeyedSums:
        """Add per-key batch totals: ``counts[j]`` outcomes summing to ``sums[j]`` for
        ``keys[j]`` (a key may repeat)."""
        n, y = np.asarray(counts, dtype=np.int64), np.asarray(sums, dtype=np.float64)
        if not (len(keys) == n.size == y.size) or (n < 0).any() or not np.isfinite(y).all():
            raise InvalidInput("need one count >= 0 and one finite sum per key")
        index = np.fromiter((self._slot(k) for k in keys), dtype=np.int64, count=len(keys))
        np.add.at(self._n, index, n)
        np.add.at(self._y, index, y)
        return self

    def __iadd__(self, other: KeyedSums) -> KeyedSums:
        k = other.keys
        return self.add(list(other._index), other._n[:k], other._y[:k])

    def _slot(self, key: str) -> int:
        slot = self._index.setdefault(key, len(self._index))
        if slot == self._n.size:
            self._n = np.concatenate([self._n, np.zeros_like(self._n)])
            self._y = np.concatenate([self._y, np.zeros_like(self._y)])
        return slot

    @property
    def keys(self) -> int:
        return len(self._index)

    @property
    def rows(self) -> int:
        return int(self._n[: self.keys].sum())

    def summary(self) -> ArmSummary:
        """:func:`keyed_summary` of the keys so far."""
        return keyed_summary(self._n[: self.keys], self._y[: self.keys])


def unit_keys(routing_keys: pa.Array | pa.ChunkedArray, request_ids: pa.Array) -> pa.Array:
    """The unit of each row: its routing key, or its own request when it came without one."""
    keyed = pc.binary_join_element_wise(_KEYED, routing_keys, "")
    alone = pc.binary_join_element_wise(_UNKEYED, request_ids, "")
    return pc.if_else(pc.is_null(routing_keys), alone, keyed)


@dataclass
class _State:
    """One deployment's analysis so far."""

    identity: tuple[object, ...]
    metric: str
    cursor: datetime
    arms: tuple[KeyedSums, KeyedSums] = field(default_factory=lambda: (KeyedSums(), KeyedSums()))
    pending: pa.Table | None = None  # predictions waiting for an outcome: keys, arm, unit, time
    seen: pa.Table | None = None  # predictions read within the overlap: keys, time
    p_value: float = 1.0
    interval: tuple[float, float] | None = None


class ABLooks:
    """Incremental per-key A/B looks for the deployments of one owner (see the module): keep
    it as long as the owner lives and pass it to every ``Rollouts`` built for a request."""

    def __init__(
        self,
        logbook: Logbook,
        *,
        overlap: timedelta = OVERLAP,
        attribution: timedelta = ATTRIBUTION,
    ) -> None:
        self.logbook = logbook
        self.overlap = overlap
        self.attribution = attribution
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()  # API threads may look at once: each row counts once

    def look(
        self, d: Deployment, metric: str, *, now: datetime, alpha: float = 0.05
    ) -> ABAnalysis | None:
        """Read what is new since the last look at ``d``, then analyse the keys so far; None
        until each arm has outcomes from two keys."""
        if d.baseline is None or d.candidate is None:
            return None
        with self._lock:
            return self._look(d, metric, now, alpha)

    def _look(self, d: Deployment, metric: str, now: datetime, alpha: float) -> ABAnalysis | None:
        metric = metric if metric.startswith("outcome_") else f"outcome_{metric}"
        identity = (d.started_at, d.baseline, d.candidate, metric)
        state = self._states.get(d.model)
        if state is None or state.identity != identity:
            state = _State(identity, metric, d.started_at)
            self._states[d.model] = state
        if now > state.cursor:
            self._read(d, state, now)
        control, treatment = state.arms
        if min(control.keys, treatment.keys) < 2:
            return None
        analysis = ab_analysis(
            control.summary(),
            treatment.summary(),
            alpha=alpha,
            previous_p=state.p_value,
            previous_interval=state.interval,
        )
        state.p_value = analysis.p_value
        if math.isfinite(analysis.ci_lower) and math.isfinite(analysis.ci_upper):
            state.interval = (analysis.ci_lower, analysis.ci_upper)
        return replace(analysis, unit="routing_key",
                       rows=(control.rows, treatment.rows))  # fmt: skip

    def _read(self, d: Deployment, state: _State, now: datetime) -> None:
        since = max(d.started_at, state.cursor - self.overlap)
        columns = [*KEYS, "timestamp", "version", "routing_key"]
        predictions = self.logbook.read(d.model, since, now, role="primary", columns=columns)
        fresh = self._new_predictions(d, state, predictions, now)
        pending = _concat(state.pending, fresh)
        feedback = self.logbook.read_feedback(since, now)
        if pending is not None and state.metric in feedback.column_names:
            pending = self._count(state, pending, feedback)
        if pending is not None:  # what can no longer be attributed waits no more
            oldest = pa.scalar(now - self.attribution, _TIMESTAMP)
            pending = pending.filter(pc.greater_equal(pending["timestamp"], oldest))
        state.pending = pending
        state.cursor = now

    def _new_predictions(
        self, d: Deployment, state: _State, predictions: pa.Table, now: datetime
    ) -> pa.Table:
        """This look's predictions of either arm not read before, as pending exposures."""
        arms = pa.array([d.baseline, d.candidate], pa.int32())
        rows = predictions.filter(pc.is_in(predictions["version"], value_set=arms))
        if state.seen is not None:
            rows = rows.join(state.seen.select(KEYS), KEYS, join_type="left anti")
        keep_after = pa.scalar(now - self.overlap, _TIMESTAMP)
        recent = _concat(state.seen, rows.select([*KEYS, "timestamp"]))
        assert recent is not None
        state.seen = recent.filter(pc.greater_equal(recent["timestamp"], keep_after))
        arm = pc.cast(pc.equal(rows["version"], pa.scalar(d.candidate, pa.int32())), pa.int8())
        return pa.table({
            "request_id": rows["request_id"], "row": rows["row"], "arm": arm,
            "unit": unit_keys(rows["routing_key"], rows["request_id"]),
            "timestamp": rows["timestamp"],
        })  # fmt: skip

    def _count(self, state: _State, pending: pa.Table, feedback: pa.Table) -> pa.Table:
        """Count the outcomes that complete pending predictions; the rest stays pending."""
        outcomes = feedback.filter(pc.is_valid(feedback[state.metric]))
        outcomes = outcomes.select([*KEYS, state.metric, "received_at"])
        matched = pending.join(outcomes, KEYS, join_type="inner")
        late = pc.subtract(matched["received_at"], matched["timestamp"])
        matched = matched.filter(
            pc.less_equal(late, pa.scalar(self.attribution, pa.duration("us")))
        )
        for arm in (0, 1):
            rows = matched.filter(pc.equal(matched["arm"], pa.scalar(arm, pa.int8())))
            values = rows[state.metric].to_numpy()
            state.arms[arm].update(rows["unit"].combine_chunks(), values)
        return pending.join(matched.select(KEYS), KEYS, join_type="left anti")


def _concat(a: pa.Table | None, b: pa.Table) -> pa.Table | None:
    if a is None:
        return b
    return pa.concat_tables([a, b.cast(a.schema)])
