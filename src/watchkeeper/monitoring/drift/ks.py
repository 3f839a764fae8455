"""Two-sample Kolmogorov–Smirnov test, on raw values or on counts over shared bins.

The statistic is ``D = sup |F_ref - F_cur|``. On raw values both ``D`` and the p-value are
``scipy.stats.ks_2samp``'s (``method="auto"``: the exact p-value while both samples are small,
Smirnov's asymptotic one beyond). Counts over bins have no scipy equivalent: their p-value is
the asymptotic one, ``kstwo.sf(D, round(n m / (n + m)))`` (:func:`ks_p_value`).

The binned form evaluates the ECDFs at the bin boundaries only, so it never exceeds the exact
``D`` and falls short of it by at most the largest share of either sample in one bin
(:func:`ks_binned_tolerance`): on 100 reference-quantile bins about 0.01 while the window
looks like the reference, more when it piles into few bins (and has drifted anyway).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from watchkeeper.monitoring.drift._cdf import binned_cdfs, effective_size
from watchkeeper.monitoring.drift.result import (
    DriftResult,
    check_counts,
    present_values,
    pvalue_result,
)

__all__ = ["ks", "ks_binned", "ks_binned_tolerance", "ks_p_value"]


def ks(reference: npt.ArrayLike, current: npt.ArrayLike, *, alpha: float = 0.05) -> DriftResult:
    """Kolmogorov–Smirnov on raw values; nulls are dropped.

    >>> r = ks([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0, None])
    >>> r.statistic, round(r.p_value, 4), r.drifted
    (0.5, 0.7714, False)
    """
    ref = present_values(reference, "reference")
    cur = present_values(current, "current")
    from scipy.stats import ks_2samp  # scipy.stats costs ~0.8 s to import: only when used

    result = ks_2samp(ref, cur, method="auto")
    d, p = float(result.statistic), float(result.pvalue)
    return pvalue_result("ks", d, p, alpha, ref.size, cur.size)


def ks_binned(
    reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike, *, alpha: float = 0.05
) -> DriftResult:
    """Kolmogorov–Smirnov on counts over the same ordered bins.

    >>> ks_binned([2, 1, 1], [1, 1, 2]).statistic
    0.25
    """
    ref, cur = check_counts(reference_counts, current_counts)
    f_ref, f_cur = binned_cdfs(ref, cur)
    d = float(np.max(np.abs(f_ref - f_cur)))
    n, m = int(ref.sum()), int(cur.sum())
    return pvalue_result("ks", d, ks_p_value(d, n, m), alpha, n, m)


def ks_binned_tolerance(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Bound on ``exact D - binned D``: the largest share of either sample in one bin.

    >>> ks_binned_tolerance([5, 5], [2, 8])
    0.8
    """
    ref, cur = check_counts(reference_counts, current_counts)
    return float(max(np.max(ref / ref.sum()), np.max(cur / cur.sum())))


def ks_p_value(d: float, n_reference: int, n_current: int) -> float:
    """Smirnov's asymptotic two-sided p-value (scipy's ``method="asymp"``).

    >>> round(ks_p_value(0.1, 1000, 1000), 4)
    0.0001
    """
    en = np.round(effective_size(n_reference, n_current))
    from scipy.stats import kstwo  # imported here: scipy.stats costs ~0.8 s to import

    return float(np.clip(kstwo.sf(d, en), 0.0, 1.0))
