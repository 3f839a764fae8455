"""Numeric drift tests against scipy: KS, Wasserstein/std and PSI, exact and binned."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import ks_2samp, wasserstein_distance

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.drift import (
    count_numeric,
    ks,
    ks_binned,
    ks_binned_tolerance,
    psi,
    psi_binned,
    wasserstein,
    wasserstein_binned,
)
from watchkeeper.monitoring.drift.psi import EPSILON, merge_quantile_bins
from watchkeeper.monitoring.profile import profile_numeric

SEEDS = [0, 1, 2, 3, 4]


def samples(seed, n=3000, m=2000, shift=0.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=n), rng.normal(shift, 1 + 0.1 * seed, size=m)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
def test_ks_matches_scipy(seed, shift):
    ref, cur = samples(seed, shift=shift)
    ours = ks(ref, cur)
    theirs = ks_2samp(ref, cur)
    assert math.isclose(ours.statistic, theirs.statistic, rel_tol=1e-12)
    assert math.isclose(ours.p_value, theirs.pvalue, rel_tol=1e-9, abs_tol=1e-300)


def test_ks_matches_scipy_default_beyond_10000_values():
    ref, cur = samples(7, n=12_000, m=11_000, shift=0.02)
    assert math.isclose(ks(ref, cur).p_value, ks_2samp(ref, cur).pvalue, rel_tol=1e-9)


def _permutation_p_value(ref: list[float], cur: list[float]) -> float:
    """The exact p-value by brute force: the share of all splits of the pooled values into
    samples of these sizes whose D is at least the observed one."""

    def d(a: list[float], b: list[float]) -> float:
        points = sorted(a + b)
        return max(abs(sum(x <= t for x in a) / len(a) - sum(x <= t for x in b) / len(b))
                   for t in points)  # fmt: skip

    pooled, observed = ref + cur, d(ref, cur)
    splits = list(itertools.combinations(range(len(pooled)), len(ref)))
    at_least = sum(
        d([pooled[i] for i in s], [pooled[i] for i in range(len(pooled)) if i not in s])
        >= observed - 1e-12
        for s in splits
    )
    return at_least / len(splits)


def test_small_samples_get_the_exact_p_value_not_the_asymptotic_one():
    """Regression: the raw-value KS used Smirnov's asymptotic p-value at every size. For two
    samples of four, 54 of the 70 equally likely splits reach D = 1/2: p = 0.771, where the
    asymptotic formula says 0.5 and would be far off at this size."""
    ref, cur = [1.0, 2.0, 3.0, 4.0], [2.5, 3.5, 5.0, 6.0]
    result = ks(ref, cur)
    assert result.statistic == 0.5
    assert math.isclose(result.p_value, 54 / 70, rel_tol=1e-9)
    assert math.isclose(result.p_value, _permutation_p_value(ref, cur), rel_tol=1e-9)
    assert ks_2samp(ref, cur, method="asymp").pvalue == pytest.approx(0.5)
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=6).tolist(), rng.normal(1.0, size=5).tolist()
    assert math.isclose(ks(ref, cur).p_value, _permutation_p_value(ref, cur), rel_tol=1e-9)


def test_ks_with_ties_matches_scipy():
    rng = np.random.default_rng(3)
    ref, cur = rng.integers(0, 5, 500).astype(float), rng.integers(0, 6, 400).astype(float)
    assert math.isclose(ks(ref, cur).statistic, ks_2samp(ref, cur).statistic, rel_tol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_binned_ks_is_within_its_stated_tolerance(seed):
    ref, cur = samples(seed, n=50_000, m=80_000, shift=0.05 * seed)
    edges = profile_numeric(ref).edges
    r, c = count_numeric(ref, edges).counts, count_numeric(cur, edges).counts
    exact, binned = ks(ref, cur).statistic, ks_binned(r, c).statistic
    tolerance = ks_binned_tolerance(r, c)
    assert binned <= exact + 1e-12
    assert exact - binned <= tolerance
    if seed == 0:  # alike samples on 100 quantile bins: about 1% of either sample per bin
        assert tolerance < 0.015


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_wasserstein_matches_scipy_over_reference_std(seed, shift):
    ref, cur = samples(seed, shift=shift)
    expected = wasserstein_distance(ref, cur) / np.std(ref)
    assert math.isclose(wasserstein(ref, cur).statistic, expected, rel_tol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5, 4.0])
def test_binned_wasserstein_is_close_to_exact(seed, shift):
    """Documented tolerance: 0.005 + 2% of the exact value on 100 quantile bins for moves up to
    half a standard deviation; a move of ~3 sd piles the window into the wide outer bins, where
    values are taken as evenly spread, and the error grows to ~20%."""
    rng = np.random.default_rng(seed)
    ref = rng.gamma(2.0, size=50_000)
    cur = rng.gamma(2.0, size=80_000) + shift
    prof = profile_numeric(ref)
    r, c = count_numeric(ref, prof.edges), count_numeric(cur, prof.edges)
    binned = wasserstein_binned(
        r.counts,
        c.counts,
        prof.edges,
        std=prof.std,
        reference_tails=(r.below_excess, r.above_excess),
        current_tails=(c.below_excess, c.above_excess),
    ).statistic
    exact = wasserstein(ref, cur).statistic
    relative = 0.02 if shift <= 0.5 else 0.25
    assert abs(binned - exact) <= 0.005 + relative * exact


def test_wasserstein_of_a_constant_reference_is_in_its_own_units():
    assert wasserstein([2.0, 2.0, 2.0], [3.0, 3.0]).statistic == 1.0


def test_exact_wasserstein_refuses_infinities():
    with pytest.raises(InvalidInput, match="finite values"):
        wasserstein([1.0, np.inf], [1.0, 2.0])


def test_psi_worked_example():
    # reference shares (0.5, 0.5), current (0.25, 0.75):
    # (0.25-0.5) ln(0.25/0.5) + (0.75-0.5) ln(0.75/0.5) = 0.25 ln 2 + 0.25 ln 1.5
    result = psi_binned([50, 50], [25, 75], bins=None)
    assert math.isclose(result.statistic, 0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert result.p_value is None
    assert result.threshold == 0.2
    assert result.drifted


def test_psi_clips_empty_bins_at_epsilon():
    expected = (EPSILON - 0.5) * math.log(EPSILON / 0.5) + 0.5 * math.log(1.0 / 0.5)
    assert math.isclose(psi_binned([1, 1], [0, 4], bins=None).statistic, expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_binned_psi_on_a_100_bin_profile_equals_decile_psi(seed):
    ref, cur = samples(seed, n=20_000, m=10_000, shift=0.2)
    edges = profile_numeric(ref).edges
    r, c = count_numeric(ref, edges).counts, count_numeric(cur, edges).counts
    assert math.isclose(psi_binned(r, c).statistic, psi(ref, cur).statistic, rel_tol=1e-9)


def test_merge_quantile_bins_makes_equal_mass_groups():
    groups = merge_quantile_bins(np.full(100, 7), 10)
    assert np.bincount(groups).tolist() == [10] * 10


def test_counting_keeps_values_beyond_the_edges_in_tail_bins():
    counted = count_numeric([-2.0, 0.0, 0.5, 1.0, 3.0, np.nan], [0.0, 0.5, 1.0])
    assert counted.counts.tolist() == [1, 1, 2, 1]
    assert (counted.nulls, counted.below_excess, counted.above_excess) == (1, 2.0, 2.0)


def test_binned_tests_refuse_mismatched_counts():
    with pytest.raises(InvalidInput, match="alike"):
        ks_binned([1, 2], [1, 2, 3])
    with pytest.raises(InvalidInput, match="all zero"):
        ks_binned([0, 0], [1, 2])
