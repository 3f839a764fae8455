"""Wasserstein-1 distance divided by the reference's standard deviation.

``W = ∫ |F_ref(x) - F_cur(x)| dx`` is the average distance values must move; dividing by the
reference's population std (``np.std``, as in the profile) makes it unit-free: 0.1 means
"a tenth of a standard deviation". A constant reference (std 0) is divided by 1.

The binned form takes counts in the layout of
:func:`~watchkeeper.monitoring.drift.binning.count_numeric` (``[below, bins..., above]``) or
plain counts over the bins. Inside each bin both CDFs are taken as linear between the edges
(values spread evenly), so ``|F_ref - F_cur|`` is integrated exactly for that picture; the tail
bins contribute their summed distance beyond the edge, which is exact when only one sample
has values there. Against the exact distance this is within 0.005 + 2% on 100 quantile bins
for moves up to half a standard deviation; a move of several standard deviations piles the
window into the wide outer bins, where "evenly spread" is wrong, and the error reaches ~20%
(far above any threshold either way). See tests/monitoring/test_drift_numeric.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.drift._cdf import binned_cdfs, pooled_cdfs
from watchkeeper.monitoring.drift.result import (
    DriftResult,
    FloatArray,
    check_counts,
    check_threshold,
    distance_result,
    present_values,
)

__all__ = ["DEFAULT_THRESHOLD", "wasserstein", "wasserstein_binned"]

DEFAULT_THRESHOLD = 0.1
"""Fixed threshold (in reference standard deviations) when none can be calibrated."""


def wasserstein(
    reference: npt.ArrayLike, current: npt.ArrayLike, *, threshold: float = DEFAULT_THRESHOLD
) -> DriftResult:
    """Wasserstein distance over the reference's std, on raw finite values; nulls dropped.

    >>> r = wasserstein([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    >>> round(r.statistic, 4), r.drifted
    (0.8944, True)
    """
    check_threshold(threshold)
    ref = present_values(reference, "reference")
    cur = present_values(current, "current")
    if not (np.isfinite(ref).all() and np.isfinite(cur).all()):
        raise InvalidInput("the exact Wasserstein distance needs finite values; use the binned one")
    points, f_ref, f_cur = pooled_cdfs(ref, cur)
    distance = float(np.dot(np.abs(f_ref - f_cur)[:-1], np.diff(points)))
    statistic = distance / _scale(float(np.std(ref)))
    return distance_result("wasserstein", statistic, threshold, ref.size, cur.size)


def wasserstein_binned(
    reference_counts: npt.ArrayLike,
    current_counts: npt.ArrayLike,
    edges: Sequence[float] | npt.ArrayLike,
    *,
    std: float,
    reference_tails: tuple[float, float] = (0.0, 0.0),
    current_tails: tuple[float, float] = (0.0, 0.0),
    threshold: float = DEFAULT_THRESHOLD,
) -> DriftResult:
    """Wasserstein distance over ``std`` from counts on ``edges``.

    ``*_tails`` are ``(below_excess, above_excess)`` of a
    :class:`~watchkeeper.monitoring.drift.binning.BinnedColumn`.

    >>> r = wasserstein_binned([0, 5, 5, 0], [0, 0, 5, 5], [0.0, 1.0, 2.0], std=1.0,
    ...                        current_tails=(0.0, 5.0))
    >>> r.statistic
    1.25
    """
    check_threshold(threshold)
    cuts = np.asarray(edges, dtype=np.float64)
    ref, cur = _with_tails(*check_counts(reference_counts, current_counts), cuts.size - 1)
    f_ref, f_cur = binned_cdfs(ref, cur)
    gap = (f_ref - f_cur)[:-1]  # at each edge e_0 .. e_k
    inner = float(np.sum(_integral_abs_linear(gap[:-1], gap[1:], np.diff(cuts))))
    n, m = int(ref.sum()), int(cur.sum())
    below = abs(reference_tails[0] / n - current_tails[0] / m)
    above = abs(reference_tails[1] / n - current_tails[1] / m)
    statistic = (inner + below + above) / _scale(std)
    return distance_result("wasserstein", statistic, threshold, n, m)


def _with_tails(
    ref: npt.NDArray[np.int64], cur: npt.NDArray[np.int64], bins: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    if ref.size == bins:
        return np.pad(ref, 1), np.pad(cur, 1)
    if ref.size != bins + 2:
        raise InvalidInput(
            f"expected {bins} or {bins + 2} counts for {bins + 1} edges, got {ref.size}"
        )
    return ref, cur


def _integral_abs_linear(left: FloatArray, right: FloatArray, width: FloatArray) -> FloatArray:
    """``∫ |g|`` over each bin where ``g`` runs linearly from ``left`` to ``right``."""
    same_sign = left * right >= 0
    magnitude = np.abs(left) + np.abs(right)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = (left**2 + right**2) / np.where(magnitude > 0, 2 * magnitude, 1.0)
    return width * np.where(same_sign, magnitude / 2, crossing)


def _scale(std: float) -> float:
    return std if std > 0 and np.isfinite(std) else 1.0
