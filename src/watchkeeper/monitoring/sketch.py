"""A mergeable quantile sketch with bounded relative error (DDSketch-style).

Positive values fall in logarithmic buckets: bucket ``i`` holds ``(γ^(i-1), γ^i]`` with
``γ = (1 + α) / (1 - α)``, so ``i = ceil(log_γ x)``; values at or below ``floor`` (zero,
negatives) fall in one explicit zero bucket. There is no upper limit: any finite value lands
in a finite bucket. Every value is read back as its bucket's representative ``2γ^i / (γ + 1)``,
which is within ``α`` of it (relative), so quantiles are within ``α`` of a true sample value.

Two sketches of the same ``alpha`` and ``floor`` merge exactly by summing counts per bucket
index: sketches of parts (replicas, minutes) sum to the sketch of the whole. Stored as a small
JSON object, sparse: ``{"format": "logsketch", "alpha", "floor", "zero", "bins": {index:
count}}``.

Written here rather than taken from the ``ddsketch`` package: its public API has no count
above a value, its serialization is protobuf, and a sparse ``{index: count}`` form (for JSON
rows that merge by summing) would mean reading its private stores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InvalidInput

__all__ = ["FORMAT", "LogSketch", "is_sketch"]

FORMAT = "logsketch"
_MAX_BINS = 100_000  # a stored sketch larger than this is refused (α = 1% spans 10^870)


class LogSketch:
    """Counts of values in logarithmic buckets of relative width ``2·alpha``.

    >>> s = LogSketch(alpha=0.01).update([1.0, 2.0, 3.0, 4.0, 1e6])
    >>> s.count, round(s.quantile(0.5), 1), s.count_above(10.0)
    (5, 3.0, 1)
    >>> other = LogSketch(alpha=0.01).add(0.0, count=2)
    >>> s += other
    >>> s.count, s.zero, s.quantile(0.0)
    (7, 2, 0.0)
    >>> LogSketch.from_dict(s.to_dict()) == s
    True
    """

    __slots__ = ("_bins", "_gamma", "_log_gamma", "alpha", "floor", "zero")

    def __init__(self, *, alpha: float = 0.01, floor: float = 1e-9) -> None:
        if not 0.0 < alpha < 1.0:
            raise InvalidInput(f"alpha must be in (0, 1), got {alpha!r}")
        if not (math.isfinite(floor) and floor > 0.0):
            raise InvalidInput(f"floor must be positive and finite, got {floor!r}")
        self.alpha = float(alpha)
        self.floor = float(floor)
        self.zero = 0
        self._gamma = (1.0 + alpha) / (1.0 - alpha)
        self._log_gamma = math.log(self._gamma)
        self._bins: dict[int, int] = {}

    # -- updating ---------------------------------------------------------------------------

    def index(self, value: float) -> int:
        """The bucket of a value above ``floor``: ``ceil(log_γ value)``."""
        return math.ceil(math.log(value) / self._log_gamma)

    def add(self, value: float, *, count: int = 1) -> LogSketch:
        """Count ``value`` ``count`` times; returns the sketch."""
        if not math.isfinite(value):
            raise InvalidInput(f"a sketch counts finite values, got {value!r}")
        if count < 0:
            raise InvalidInput(f"count must be non-negative, got {count!r}")
        if count == 0:
            return self
        if value <= self.floor:
            self.zero += count
        else:
            key = self.index(value)
            self._bins[key] = self._bins.get(key, 0) + count
        return self

    def update(self, values: npt.ArrayLike) -> LogSketch:
        """Count every value of an array (vectorised); returns the sketch."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if not np.isfinite(x).all():
            raise InvalidInput("a sketch counts finite values only")
        low = x <= self.floor
        self.zero += int(low.sum())
        keys, counts = np.unique(np.ceil(np.log(x[~low]) / self._log_gamma), return_counts=True)
        for key, count in zip(keys.astype(np.int64).tolist(), counts.tolist(), strict=True):
            self._bins[key] = self._bins.get(key, 0) + count
        return self

    def merge(self, other: LogSketch) -> LogSketch:
        """Add ``other``'s counts bucket by bucket (same ``alpha`` and ``floor``); returns self."""
        self._check_compatible(other)
        self.zero += other.zero
        for key, count in other._bins.items():
            self._bins[key] = self._bins.get(key, 0) + count
        return self

    def __iadd__(self, other: LogSketch) -> LogSketch:
        return self.merge(other)

    def __add__(self, other: LogSketch) -> LogSketch:
        return self.copy().merge(other)

    def since(self, earlier: LogSketch) -> LogSketch:
        """What was counted after ``earlier``, a snapshot of the same stream (per bucket, never
        below zero).

        >>> before = LogSketch().add(1.0)
        >>> after = before.copy().add(1.0).add(50.0)
        >>> later = after.since(before)
        >>> later.count, later.count_above(10.0)
        (2, 1)
        """
        self._check_compatible(earlier)
        out = self._empty_like()
        out.zero = max(self.zero - earlier.zero, 0)
        for key, count in self._bins.items():
            left = count - earlier._bins.get(key, 0)
            if left > 0:
                out._bins[key] = left
        return out

    def copy(self) -> LogSketch:
        out = self._empty_like()
        out.zero = self.zero
        out._bins = dict(self._bins)
        return out

    # -- reading ----------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return self.zero + sum(self._bins.values())

    @property
    def bins(self) -> dict[int, int]:
        """``{bucket index: count}`` of the non-zero buckets above ``floor`` (a copy)."""
        return dict(self._bins)

    def value(self, key: int) -> float:
        """The representative of bucket ``key``: within ``alpha`` of every value it holds."""
        return 2.0 * math.exp(key * self._log_gamma) / (self._gamma + 1.0)

    def quantile(self, q: float) -> float:
        """The value of rank ``⌊q·(n - 1)⌋`` (numpy's ``method="lower"``), within ``alpha``
        relative error (the zero bucket reads as 0).

        >>> s = LogSketch(alpha=0.01).update([10.0, 20.0, 30.0, 40.0])
        >>> [round(s.quantile(q)) for q in (0.0, 0.5, 1.0)]  # each within 1%
        [10, 20, 40]
        """
        if not 0.0 <= q <= 1.0:
            raise InvalidInput(f"q must be in [0, 1], got {q!r}")
        n = self.count
        if n == 0:
            raise InvalidInput("the quantile of an empty sketch is undefined")
        rank = math.floor(q * (n - 1))
        running = self.zero
        if running > rank:
            return 0.0
        for key in sorted(self._bins):
            running += self._bins[key]
            if running > rank:
                return self.value(key)
        raise AssertionError("unreachable: the ranks are counted")  # pragma: no cover

    def count_above(self, limit: float) -> int:
        """How many values exceed ``limit``, in bucket terms: a bucket counts whole when its
        representative is above ``limit``. Buckets wholly above count exactly; only the bucket
        holding ``limit`` is approximate, so the answer lies between the true counts above
        ``limit / (1 - alpha)`` and above ``limit / (1 + alpha)``.

        >>> s = LogSketch(alpha=0.01).update([1.0, 100.0, 1e4, 1e8])
        >>> s.count_above(50.0), s.count_above(1e9), s.count_above(-1.0)
        (3, 0, 4)
        """
        above = self.zero if limit < 0.0 else 0
        return above + sum(c for key, c in self._bins.items() if self.value(key) > limit)

    # -- storage ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready, sparse form: bucket indexes as string keys."""
        return {"format": FORMAT, "alpha": self.alpha, "floor": self.floor, "zero": self.zero,
                "bins": {str(k): c for k, c in sorted(self._bins.items())}}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogSketch:
        """Read :meth:`to_dict`'s form back; anything else is :class:`InvalidInput`."""
        if not is_sketch(data):
            raise InvalidInput("not a stored sketch (no format marker)")
        bins = data.get("bins") or {}
        if not isinstance(bins, Mapping) or len(bins) > _MAX_BINS:
            raise InvalidInput(f"a stored sketch has a mapping of at most {_MAX_BINS} bins")
        try:
            out = cls(alpha=float(data["alpha"]), floor=float(data["floor"]))
            out.zero = _count(data.get("zero", 0))
            out._bins = {int(k): c for k, v in bins.items() if (c := _count(v))}
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"a stored sketch is malformed: {exc}") from exc
        return out

    @classmethod
    def merged(cls, sketches: Iterable[LogSketch], *, alpha: float = 0.01,
               floor: float = 1e-9) -> LogSketch:  # fmt: skip
        """The sum of ``sketches`` (an empty sketch of ``alpha`` and ``floor`` when none)."""
        out: LogSketch | None = None
        for sketch in sketches:
            out = sketch.copy() if out is None else out.merge(sketch)
        return out if out is not None else cls(alpha=alpha, floor=floor)

    # -- plumbing ---------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogSketch):
            return NotImplemented
        return (self.alpha, self.floor, self.zero, self._bins) == (
            other.alpha, other.floor, other.zero, other._bins)  # fmt: skip

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (f"LogSketch(alpha={self.alpha}, floor={self.floor}, count={self.count}, "
                f"buckets={len(self._bins)})")  # fmt: skip

    def _empty_like(self) -> LogSketch:
        return LogSketch(alpha=self.alpha, floor=self.floor)

    def _check_compatible(self, other: LogSketch) -> None:
        if (self.alpha, self.floor) != (other.alpha, other.floor):
            raise InvalidInput(
                f"sketches merge only with the same alpha and floor: ({self.alpha}, "
                f"{self.floor}) and ({other.alpha}, {other.floor})"
            )


def is_sketch(data: object) -> bool:
    """Whether a stored value is a sketch (rather than an older list of counts)."""
    return isinstance(data, Mapping) and data.get("format") == FORMAT


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a count must be a number, got {value!r}")
    out = int(value)
    if out != value or out < 0:
        raise ValueError(f"a count is a non-negative integer, got {value!r}")
    return out
