"""Multiple-testing corrections against worked examples and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control

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
def test_benjamini_hochberg_matches_scipy(seed):
    p = np.random.default_rng(seed).random(40) ** 3
    np.testing.assert_allclose(benjamini_hochberg(p), false_discovery_control(p), rtol=1e-12)


def test_adjust_by_name():
    assert adjust_p_values([0.2], None).tolist() == [0.2]
    assert adjust_p_values([], "bh").tolist() == []
    with pytest.raises(InvalidInput, match="unknown correction"):
        adjust_p_values([0.2], "holm")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"in \[0, 1\]"):
        bonferroni([1.5])
