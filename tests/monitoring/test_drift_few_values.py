"""Few-valued features (issue 19, item 1): a two-category share shift of 4 points at 5,000 rows
and a 5-valued integer feature are found in every drifted chunk, with no alarm on clean ones.

Before the fix the log-normal calibration put the Jensen–Shannon threshold of a two-category
feature near 0.075, twice the distance such a shift makes (0.031–0.037): missed every time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon as scipy_js
from scipy.stats import chi2, chi2_contingency, norm

from watchkeeper.monitoring.drift import DriftPolicy, detect_drift
from watchkeeper.monitoring.drift.calibration import CalibrationSettings, chi2_threshold
from watchkeeper.monitoring.profile import profile_numeric

N_REFERENCE, N_CHUNK = 50_000, 5_000
VALUES_P = [0.10, 0.20, 0.30, 0.25, 0.15]
VALUES_DRIFTED = [0.10, 0.20, 0.30, 0.21, 0.19]  # between the top two values, once one bin


def reference():
    rng = np.random.default_rng(19)
    return {
        "plan": rng.choice(["yes", "no"], p=[0.405, 0.595], size=N_REFERENCE),
        "visits": rng.choice(5, p=VALUES_P, size=N_REFERENCE),
    }


def chunk(seed, drifted):
    rng = np.random.default_rng(seed)
    share = 0.365 if drifted else 0.405
    return {
        "plan": rng.choice(["yes", "no"], p=[share, 1 - share], size=N_CHUNK),
        "visits": rng.choice(5, p=VALUES_DRIFTED if drifted else VALUES_P, size=N_CHUNK),
    }


def table(ref, cur, labels):
    return np.array([[np.count_nonzero(x == v) for v in labels] for x in (ref, cur)])


def expected_threshold(values, n, m, sigmas=3.0, floor=0.02):
    """The chi-square law of 8 ln2 N JS², written with scipy.stats."""
    quantile = chi2.isf(norm.sf(sigmas), values - 1)
    return max(floor, math.sqrt(quantile / (8 * math.log(2) * n * m / (n + m))))


@pytest.mark.parametrize(("feature", "labels"), [("plan", ["yes", "no"]), ("visits", range(5))])
def test_shift_found_in_every_drifted_chunk_and_no_clean_chunk(feature, labels):
    ref = reference()
    threshold = expected_threshold(len(labels), N_REFERENCE, N_CHUNK)
    for seed in range(5):
        for drifted in (True, False):
            cur = chunk(100 * seed + drifted, drifted)
            found = detect_drift(ref, cur)[feature]
            counts = table(ref[feature], cur[feature], labels)
            assert found.result.method == "jensenshannon"
            assert found.threshold_source == "chi2"
            assert found.result.statistic == pytest.approx(
                scipy_js(counts[0], counts[1], base=2), rel=1e-9
            )
            assert found.result.threshold == pytest.approx(threshold, rel=1e-9)
            assert found.drifted is drifted, (seed, found.result)
            # the independent oracle agrees, at the same level (3 sigmas, one-sided)
            p_value = chi2_contingency(counts, correction=False).pvalue
            assert bool(p_value < norm.sf(3)) is drifted


def test_eight_ln2_n_js_squared_is_the_contingency_chi_square():
    """The approximation the threshold rests on, on clean chunks (where the threshold lives):
    within 5% relative of Pearson's statistic (the second-order expansion of JS; the threshold,
    a square root, moves by half of that)."""
    ref = reference()
    n_eff = N_REFERENCE * N_CHUNK / (N_REFERENCE + N_CHUNK)
    for seed in range(5):
        cur = chunk(seed, drifted=False)
        for feature, labels in (("plan", ["yes", "no"]), ("visits", range(5))):
            counts = table(ref[feature], cur[feature], labels)
            js = scipy_js(counts[0], counts[1], base=2)
            pearson = chi2_contingency(counts, correction=False).statistic
            assert 8 * math.log(2) * n_eff * js**2 == pytest.approx(pearson, rel=0.05)


def test_chi2_threshold_holds_its_false_alarm_rate():
    """4,000 clean pairs (both samples drawn, 3 values) at sigmas=1: the share above the
    threshold is norm.sf(1) = 0.159; tolerance 0.02 (3.4 binomial standard errors)."""
    rng = np.random.default_rng(5)
    p, n, m = np.array([0.5, 0.3, 0.2]), 20_000, 3_000
    ref, cur = rng.multinomial(n, p, size=4000), rng.multinomial(m, p, size=4000)
    js = scipy_js(ref, cur, base=2, axis=1)
    settings = CalibrationSettings(sigmas=1.0, floor=0.0)
    threshold = chi2_threshold(3, n, m, settings).threshold
    assert threshold == pytest.approx(expected_threshold(3, n, m, sigmas=1.0, floor=0.0))
    assert np.mean(js > threshold) == pytest.approx(norm.sf(1), abs=0.02)


def test_huge_samples_keep_the_floor():
    assert chi2_threshold(2, 10**7, 10**7).threshold == 0.02
    policy_floor = CalibrationSettings(floor=0.05)
    assert chi2_threshold(2, 50_000, 5_000, policy_floor).threshold == 0.05


def test_small_samples_of_a_few_valued_integer_use_chi_square_on_its_values():
    rng = np.random.default_rng(3)
    ref = {"visits": rng.choice(5, p=VALUES_P, size=800)}
    cur = {"visits": rng.choice(5, p=VALUES_DRIFTED, size=400)}
    found = detect_drift(ref, cur)["visits"]
    counts = table(ref["visits"], cur["visits"], range(5))
    expected = chi2_contingency(counts, correction=False)
    assert found.result.method == "chisquare"
    assert found.result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert found.result.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_a_tied_maximum_has_a_bin_of_its_own():
    values = reference()["visits"]
    profile = profile_numeric(values)
    assert [c for c in profile.counts if c] == np.bincount(values).tolist()


def test_many_valued_features_keep_the_calibrated_distances():
    rng = np.random.default_rng(4)
    ref = {"x": rng.normal(size=20_000), "c": rng.choice(list("abcdefghijkl"), size=20_000)}
    cur = {"x": rng.normal(size=5_000), "c": rng.choice(list("abcdefghijkl"), size=5_000)}
    report = detect_drift(ref, cur, policy=DriftPolicy(contiguous=False))
    assert report["x"].result.method == "wasserstein"
    assert report["c"].result.method == "jensenshannon"
    assert report["x"].threshold_source == report["c"].threshold_source == "calibrated"
