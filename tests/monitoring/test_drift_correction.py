"""Multiple-testing corrections against worked examples and their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.drift import adjust_p_values, benjamini_hochberg, bonferroni


def test_bonferroni_worked_example():
    np.testing.assert_allclose(bonferroni([0.001, 0.01, 0.04, 0.3]), [0.004, 0.04, 0.16, 1.0])


def test_benjamini_hochberg_worked_example():
    # sorted p: 0.001, 0.008, 0.039, 0.041, 0.2 (m = 5): p * 5 / rank =
    # 0.005, 0.02, 0.065, 0.05125, 0.2; step-up minimum from the top: 0.005, 0.02, 0.05125, ...
    adjusted = benjamini_hochberg([0.041, 0.001, 0.2, 0.008, 0.039])
    np.testing.assert_allclose(adjusted, [0.05125, 0.005, 0.2, 0.02, 0.05125])


@pytest.mark.parametrize("seed", range(5))
def test_benjamini_hochberg_follows_its_definition(seed):
    """Each adjusted p is the smallest ``p_(j) m / j`` over the ranks j at or above its own."""
    p = np.random.default_rng(seed).random(40) ** 3
    ranks = p.argsort().argsort() + 1
    expected = [min(1.0, min(q * p.size / r for q, r in zip(p, ranks, strict=True) if r >= rank))
                for rank in ranks]  # fmt: skip
    np.testing.assert_allclose(benjamini_hochberg(p), expected, rtol=1e-12)


def test_adjust_by_name():
    assert adjust_p_values([0.2], None).tolist() == [0.2]
    assert adjust_p_values([], "bh").tolist() == []
    with pytest.raises(InvalidInput, match="unknown correction"):
        adjust_p_values([0.2], "holm")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"in \[0, 1\]"):
        bonferroni([1.5])
