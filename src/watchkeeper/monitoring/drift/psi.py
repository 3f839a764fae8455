"""Population Stability Index: ``Σ (q_i - p_i) ln(q_i / p_i)`` over bins.

``p`` are the reference's shares per bin, ``q`` the current ones. An empty bin would make the
logarithm infinite, so both shares are clipped below at :data:`EPSILON` (1e-4, the customary
value). The customary reading is: below 0.1 stable, 0.1 to 0.2 a moderate shift, above 0.2
(:data:`DEFAULT_THRESHOLD`) a significant one.

Numeric features use ``bins`` (default 10) reference-quantile bins, as is customary: the exact
form cuts the reference at its deciles; the binned form merges the profile's fine quantile
bins (and the tail bins) into ``bins`` groups of about equal reference mass, so on a
100-bin profile it uses the same deciles. Categorical features use one bin per category (the
binned form: the reference's categories plus one bin for unseen labels).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring._columns import check_positive
from watchkeeper.monitoring.drift._labels import joint_label_counts
from watchkeeper.monitoring.drift.result import (
    DriftResult,
    IntArray,
    check_counts,
    check_threshold,
    distance_result,
    present_values,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "EPSILON",
    "merge_quantile_bins",
    "psi",
    "psi_binned",
    "psi_categorical",
]

EPSILON = 1e-4
"""Floor of a bin's share, so empty bins give a large but finite term."""

DEFAULT_THRESHOLD = 0.2


def psi(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    bins: int = 10,
    threshold: float = DEFAULT_THRESHOLD,
) -> DriftResult:
    """PSI of numbers on the reference's ``bins`` quantile bins (values outside go to the
    outer bins); nulls dropped.

    >>> round(psi([1, 2, 3, 4], [3, 4, 4, 4], bins=2).statistic, 4)
    4.6043
    """
    check_positive("bins", bins)
    check_threshold(threshold)
    ref = present_values(reference, "reference")
    cur = present_values(current, "current")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)))
    ref_counts = np.bincount(
        np.searchsorted(edges[1:-1], ref, side="right"), minlength=edges.size - 1
    )
    cur_counts = np.bincount(
        np.searchsorted(edges[1:-1], cur, side="right"), minlength=edges.size - 1
    )
    return distance_result("psi", _psi(ref_counts, cur_counts), threshold, ref.size, cur.size)


def psi_categorical(
    reference: npt.ArrayLike, current: npt.ArrayLike, *, threshold: float = DEFAULT_THRESHOLD
) -> DriftResult:
    """PSI of labels, one bin per label seen in either sample; nulls dropped.

    >>> round(psi_categorical(["a", "a", "b", "b"], ["a", "b", "b", "b"]).statistic, 4)
    0.2747
    """
    check_threshold(threshold)
    ref, cur = joint_label_counts(reference, current)
    return distance_result("psi", _psi(ref, cur), threshold, int(ref.sum()), int(cur.sum()))


def psi_binned(
    reference_counts: npt.ArrayLike,
    current_counts: npt.ArrayLike,
    *,
    bins: int | None = 10,
    threshold: float = DEFAULT_THRESHOLD,
) -> DriftResult:
    """PSI from counts; with ``bins`` the ordered bins are first merged into that many groups
    of about equal reference mass (numeric), with ``bins=None`` used as they are (categories).

    >>> psi_binned([50, 50], [50, 50]).statistic
    0.0
    """
    check_threshold(threshold)
    ref, cur = check_counts(reference_counts, current_counts)
    if bins is not None:
        groups = merge_quantile_bins(ref, bins)
        ref = np.bincount(groups, weights=ref).astype(np.int64)
        cur = np.bincount(groups, weights=cur).astype(np.int64)
    return distance_result("psi", _psi(ref, cur), threshold, int(ref.sum()), int(cur.sum()))


def merge_quantile_bins(reference_counts: npt.ArrayLike, bins: int) -> IntArray:
    """The group (``0 .. bins-1``) of each ordered bin, so groups hold about equal reference
    mass: a bin joins the group where the middle of its cumulative share falls.

    >>> merge_quantile_bins([0, 1, 1, 1, 1, 0], 2).tolist()
    [0, 0, 0, 1, 1, 1]
    """
    check_positive("bins", bins)
    counts = np.asarray(reference_counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise InvalidInput("the reference counts are all zero")
    after = np.cumsum(counts) / counts.sum()
    middle = after - counts / counts.sum() / 2
    groups: IntArray = np.minimum((middle * bins).astype(np.int64), bins - 1)
    return groups


def _psi(reference: IntArray, current: IntArray) -> float:
    p = np.maximum(reference / reference.sum(), EPSILON)
    q = np.maximum(current / current.sum(), EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))
