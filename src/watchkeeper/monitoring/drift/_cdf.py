"""Empirical distribution functions shared by the numeric tests."""

from __future__ import annotations

import numpy as np

from watchkeeper.monitoring.drift.result import FloatArray, IntArray


def pooled_cdfs(
    reference: FloatArray, current: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Both samples' ECDFs at every pooled value, sorted: ``(points, F_ref, F_cur)``."""
    ref = np.sort(reference)
    cur = np.sort(current)
    points = np.sort(np.concatenate([ref, cur]), kind="mergesort")
    f_ref = np.searchsorted(ref, points, side="right") / ref.size
    f_cur = np.searchsorted(cur, points, side="right") / cur.size
    return points, f_ref, f_cur


def binned_cdfs(reference: IntArray, current: IntArray) -> tuple[FloatArray, FloatArray]:
    """Both ECDFs after each bin (the last value is 1)."""
    return np.cumsum(reference) / reference.sum(), np.cumsum(current) / current.sum()


def effective_size(n_reference: int, n_current: int) -> float:
    """``n m / (n + m)``: the size that sets a two-sample statistic's noise."""
    return n_reference * n_current / (n_reference + n_current)
