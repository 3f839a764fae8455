"""Jensen–Shannon distance between the two samples' label shares, base 2.

``JS = sqrt((KL(p ‖ m) + KL(q ‖ m)) / 2)`` with ``m = (p + q) / 2``, logarithms in base 2, so it
runs from 0 (same shares) to 1 (no label in common). It is the square root of the
divergence, symmetric, a metric, and finite with empty bins, so unseen labels need no
epsilon. Equal to ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from watchkeeper.monitoring.drift._labels import joint_label_counts
from watchkeeper.monitoring.drift.result import (
    DriftResult,
    FloatArray,
    IntArray,
    check_counts,
    check_threshold,
    distance_result,
)

__all__ = ["DEFAULT_THRESHOLD", "jensenshannon", "jensenshannon_binned"]

DEFAULT_THRESHOLD = 0.1
"""Fixed threshold when none can be calibrated."""


def jensenshannon(
    reference: npt.ArrayLike, current: npt.ArrayLike, *, threshold: float = DEFAULT_THRESHOLD
) -> DriftResult:
    """Jensen–Shannon distance of raw labels; nulls dropped.

    >>> jensenshannon(["a", "b"], ["c", "c", None]).statistic
    1.0
    """
    check_threshold(threshold)
    ref, cur = joint_label_counts(reference, current)
    return _result(ref, cur, threshold)


def jensenshannon_binned(
    reference_counts: npt.ArrayLike,
    current_counts: npt.ArrayLike,
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> DriftResult:
    """Jensen–Shannon distance from counts over the same categories.

    >>> round(jensenshannon_binned([1, 1], [1, 3]).statistic, 4)
    0.2209
    """
    check_threshold(threshold)
    return _result(*check_counts(reference_counts, current_counts), threshold)


def _result(ref: IntArray, cur: IntArray, threshold: float) -> DriftResult:
    p = ref / ref.sum()
    q = cur / cur.sum()
    mix = (p + q) / 2
    divergence = (_kl(p, mix) + _kl(q, mix)) / 2
    statistic = float(np.sqrt(min(max(divergence, 0.0), 1.0)))
    return distance_result("jensenshannon", statistic, threshold, int(ref.sum()), int(cur.sum()))


def _kl(p: FloatArray, mix: FloatArray) -> float:
    inside = p > 0
    return float(np.sum(p[inside] * np.log2(p[inside] / mix[inside])))
