"""Categorical drift tests against scipy: chi-square, Jensen–Shannon, PSI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon as scipy_js
from scipy.stats import chi2_contingency

from watchkeeper.monitoring.drift import (
    chisquare,
    chisquare_binned,
    count_categories,
    jensenshannon,
    jensenshannon_binned,
    label_codes,
    psi_categorical,
)
from watchkeeper.monitoring.profile import category_counts

LABELS = np.array(["a", "b", "c", "d", "e"], dtype=object)


def samples(seed, n=3000, m=2000, shifted=False):
    rng = np.random.default_rng(seed)
    p = [0.4, 0.25, 0.15, 0.12, 0.08]
    q = [0.33, 0.25, 0.15, 0.14, 0.13] if shifted else p
    return rng.choice(LABELS, p=p, size=n), rng.choice(LABELS, p=q, size=m)


def table(ref, cur):
    names = sorted(set(ref) | set(cur))
    return np.array([[list(ref).count(k) for k in names], [list(cur).count(k) for k in names]])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("shifted", [False, True])
def test_chisquare_matches_scipy_contingency(seed, shifted):
    ref, cur = samples(seed, shifted=shifted)
    statistic, p_value, _, _ = chi2_contingency(table(ref, cur), correction=False)
    ours = chisquare(ref, cur)
    assert math.isclose(ours.statistic, statistic, rel_tol=1e-9)
    assert math.isclose(ours.p_value, p_value, rel_tol=1e-9, abs_tol=1e-300)


def test_chisquare_scores_unseen_labels_and_drops_empty_ones():
    statistic, p_value, _, _ = chi2_contingency([[30, 20, 0], [25, 20, 5]], correction=False)
    ours = chisquare_binned([30, 20, 0, 0], [25, 20, 5, 0])
    assert math.isclose(ours.statistic, statistic)
    assert math.isclose(ours.p_value, p_value)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("shifted", [False, True])
def test_jensenshannon_matches_scipy_base_2(seed, shifted):
    ref, cur = samples(seed, shifted=shifted)
    counts = table(ref, cur)
    expected = scipy_js(counts[0], counts[1], base=2)
    assert math.isclose(jensenshannon(ref, cur).statistic, expected, rel_tol=1e-9)


def test_jensenshannon_worked_example():
    # p = (1/2, 1/2), q = (0, 1): m = (1/4, 3/4);
    # KL(p||m) = 1/2 log2 2 + 1/2 log2(2/3); KL(q||m) = log2(4/3)
    kl_p = 0.5 * math.log2(2) + 0.5 * math.log2(2 / 3)
    kl_q = math.log2(4 / 3)
    expected = math.sqrt((kl_p + kl_q) / 2)
    assert math.isclose(jensenshannon_binned([1, 1], [0, 2]).statistic, expected)


def test_psi_categorical_worked_example():
    # shares a: 0.5 -> 0.25, b: 0.5 -> 0.75
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert math.isclose(psi_categorical(["a", "b"] * 2, ["a", "b", "b", "b"]).statistic, expected)


def test_counting_agrees_with_the_profile_category_counts():
    values = np.array(["b", None, "a", "q", 3, 3.0, "b"], dtype=object)
    counted = count_categories(values, ["a", "b", "3"])
    known, unseen = category_counts(values, ["a", "b", "3"])
    assert counted.counts.tolist() == [*known.tolist(), unseen]
    assert counted.nulls == 1
    codes = label_codes(values, ["a", "b", "3"])
    assert np.bincount(codes[codes >= 0], minlength=4).tolist() == counted.counts.tolist()


def test_label_codes_of_numeric_labels():
    assert label_codes([1.0, np.nan, 2.0, 7.0], ["1", "2"]).tolist() == [0, -1, 1, 2]
