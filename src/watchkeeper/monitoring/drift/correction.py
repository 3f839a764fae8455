"""Multiple-testing corrections across features: adjusted p-values, compared with alpha.

* ``"bonferroni"`` (the default): ``min(1, p · m)``. Controls the chance of *any* false alarm
  among the ``m`` features (family-wise error rate) at alpha, whatever their dependence.
* ``"bh"``: Benjamini–Hochberg step-up, ``min_{j ≥ i} p_(j) · m / j`` on the sorted p-values.
  Controls the expected share of false alarms among the alarms (false discovery rate); more
  power when many features drift; computed by ``scipy.stats.false_discovery_control``.
* ``None``: no correction, each feature tested at alpha on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.drift.result import FloatArray

__all__ = ["CORRECTIONS", "Correction", "adjust_p_values", "benjamini_hochberg", "bonferroni"]

Correction: TypeAlias = Literal["bonferroni", "bh"] | None
CORRECTIONS: tuple[Correction, ...] = ("bonferroni", "bh", None)


def bonferroni(p_values: Sequence[float] | npt.ArrayLike) -> FloatArray:
    """Bonferroni-adjusted p-values.

    >>> bonferroni([0.01, 0.02, 0.5]).tolist()
    [0.03, 0.06, 1.0]
    """
    p = _check(p_values)
    return np.minimum(p * p.size, 1.0)


def benjamini_hochberg(p_values: Sequence[float] | npt.ArrayLike) -> FloatArray:
    """Benjamini–Hochberg-adjusted p-values, in the input's order.

    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.5]).round(4).tolist()
    [0.04, 0.0533, 0.0533, 0.5]
    """
    p = _check(p_values)
    if p.size == 0:
        return p
    from scipy.stats import false_discovery_control  # scipy.stats is slow to import: when used

    return np.asarray(false_discovery_control(p, method="bh"), dtype=np.float64)


def adjust_p_values(
    p_values: Sequence[float] | npt.ArrayLike, correction: Correction
) -> FloatArray:
    """Adjust by name (see the module docstring).

    >>> adjust_p_values([0.01, 0.02], None).tolist()
    [0.01, 0.02]
    """
    if correction == "bonferroni":
        return bonferroni(p_values)
    if correction == "bh":
        return benjamini_hochberg(p_values)
    if correction is None:
        return _check(p_values)
    raise InvalidInput(f"unknown correction {correction!r} (expected 'bonferroni', 'bh' or None)")


def _check(p_values: Sequence[float] | npt.ArrayLike) -> FloatArray:
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise InvalidInput("p-values must be a 1-D sequence of numbers in [0, 1]")
    return p
