"""The result every drift test returns, and the checks the tests share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring._columns import float_values, non_null

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]


@dataclass(frozen=True, kw_only=True)
class DriftResult:
    """One test of one feature.

    ``p_value`` is ``None`` for distances. A distance drifts when ``statistic > threshold``;
    a p-value test when ``p_value < threshold`` (the threshold is then the significance level).
    ``n_reference`` and ``n_current`` count the non-null values compared.
    """

    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "statistic": json_float(self.statistic),
            "p_value": None if self.p_value is None else json_float(self.p_value),
            "threshold": json_float(self.threshold),
            "drifted": self.drifted,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
        }


def distance_result(
    method: str, statistic: float, threshold: float, n_reference: int, n_current: int
) -> DriftResult:
    return DriftResult(
        method=method,
        statistic=statistic,
        p_value=None,
        threshold=threshold,
        drifted=bool(statistic > threshold),
        n_reference=n_reference,
        n_current=n_current,
    )


def pvalue_result(
    method: str, statistic: float, p_value: float, alpha: float, n_reference: int, n_current: int
) -> DriftResult:
    return DriftResult(
        method=method,
        statistic=statistic,
        p_value=p_value,
        threshold=alpha,
        drifted=bool(p_value < alpha),
        n_reference=n_reference,
        n_current=n_current,
    )


def json_float(value: float) -> float | str:
    """Finite floats as they are; NaN and infinities as the strings the profiles use."""
    if math.isfinite(value):
        return float(value)
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def present_values(values: npt.ArrayLike, what: str) -> FloatArray:
    """The non-null numbers of a sample; refuses an empty one."""
    present = non_null(float_values(values))
    if present.size == 0:
        raise InvalidInput(f"the {what} sample has no non-null values")
    return present


def check_counts(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """Two count vectors over the same bins, each with a positive total."""
    ref = np.asarray(reference, dtype=np.int64)
    cur = np.asarray(current, dtype=np.int64)
    if ref.ndim != 1 or ref.shape != cur.shape:
        raise InvalidInput(f"count vectors must be 1-D and alike, got {ref.shape} and {cur.shape}")
    if (ref < 0).any() or (cur < 0).any():
        raise InvalidInput("counts must not be negative")
    for name, counts in (("reference", ref), ("current", cur)):
        if counts.sum() == 0:
            raise InvalidInput(f"the {name} counts are all zero")
    return ref, cur


def check_threshold(threshold: float) -> None:
    if not (isinstance(threshold, int | float) and math.isfinite(threshold) and threshold >= 0):
        raise InvalidInput(f"threshold must be a finite non-negative number, got {threshold!r}")
