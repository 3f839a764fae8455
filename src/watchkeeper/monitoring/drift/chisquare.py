"""Pearson's chi-square test of homogeneity on the 2 × k table (reference, current) × label.

Chosen over the goodness-of-fit form (``scipy.stats.chisquare`` with the reference's shares as
expected frequencies) because it treats both samples as samples: the goodness-of-fit form
takes the reference's shares as exact and overstates significance when the reference is
small, and it cannot score a label the reference never saw (expected frequency 0). The
statistic and p-value equal ``scipy.stats.chi2_contingency(table, correction=False)``: no
Yates correction. Labels absent from both samples are dropped; with a single label left the
samples cannot differ (statistic 0, p-value 1).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import chdtrc

from watchkeeper.monitoring.drift._labels import joint_label_counts
from watchkeeper.monitoring.drift.result import DriftResult, IntArray, check_counts, pvalue_result

__all__ = ["chisquare", "chisquare_binned"]


def chisquare(
    reference: npt.ArrayLike, current: npt.ArrayLike, *, alpha: float = 0.05
) -> DriftResult:
    """Chi-square on raw labels, one column per label seen in either sample; nulls dropped.

    >>> r = chisquare(["a"] * 50 + ["b"] * 50, ["a"] * 30 + ["b"] * 70)
    >>> round(r.statistic, 4), round(r.p_value, 5), r.drifted
    (8.3333, 0.00389, True)
    """
    ref, cur = joint_label_counts(reference, current)
    return _result(ref, cur, alpha)


def chisquare_binned(
    reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike, *, alpha: float = 0.05
) -> DriftResult:
    """Chi-square on counts over the same categories (e.g. the reference's plus "unseen").

    >>> chisquare_binned([10, 10, 0], [10, 10, 0]).p_value
    1.0
    """
    return _result(*check_counts(reference_counts, current_counts), alpha)


def _result(ref: IntArray, cur: IntArray, alpha: float) -> DriftResult:
    table = np.vstack([ref, cur]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    n, m = int(ref.sum()), int(cur.sum())
    if table.shape[1] < 2:
        return pvalue_result("chisquare", 0.0, 1.0, alpha, n, m)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    p_value = float(chdtrc(table.shape[1] - 1, statistic))  # chi2.sf(statistic, dof)
    return pvalue_result("chisquare", statistic, p_value, alpha, n, m)
