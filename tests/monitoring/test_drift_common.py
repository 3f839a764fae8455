"""Properties every drift test shares, checked over the registry (exact and binned forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.drift import METHODS, DriftPolicy, count_numeric, default_method
from watchkeeper.monitoring.drift.methods import run_binned, run_exact
from watchkeeper.monitoring.profile import profile_numeric

CASES = [(name, kind) for name, method in METHODS.items() for kind in method.kinds]
LABELS = np.array(list("abcdef"), dtype=object)


def data(kind, seed, n, shifted):
    rng = np.random.default_rng(seed)
    if kind == "numeric":
        return rng.normal(1.0 if shifted else 0.0, 1.0, size=n)
    p = [0.1, 0.1, 0.1, 0.1, 0.1, 0.5] if shifted else [0.3, 0.2, 0.2, 0.1, 0.1, 0.1]
    return rng.choice(LABELS, p=p, size=n)


def both_forms(name, kind, ref, cur, threshold):
    exact = run_exact(name, kind, ref, cur, threshold)
    if kind == "numeric":
        prof = profile_numeric(ref)
        r, c = count_numeric(ref, prof.edges), count_numeric(cur, prof.edges)
        tails = ((r.below_excess, r.above_excess), (c.below_excess, c.above_excess))
        binned = run_binned(
            name, kind, r.counts, c.counts, threshold, edges=prof.edges, std=prof.std, tails=tails
        )
    else:
        counts = [[list(x).count(k) for k in LABELS] for x in (ref, cur)]
        binned = run_binned(name, kind, counts[0], counts[1], threshold)
    return exact, binned


def threshold_of(name):
    return METHODS[name].default_threshold


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_identical_samples_score_zero_and_do_not_drift(name, kind):
    ref = data(kind, 0, 2000, False)
    for result in both_forms(name, kind, ref, ref.copy(), threshold_of(name)):
        assert not result.drifted
        assert result.statistic == pytest.approx(0.0, abs=1e-12)
        if result.p_value is not None:
            assert result.p_value == pytest.approx(1.0)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_same_distribution_is_not_drifted(name, kind):
    ref, cur = data(kind, 1, 5000, False), data(kind, 2, 3000, False)
    for result in both_forms(name, kind, ref, cur, threshold_of(name)):
        assert not result.drifted, result


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_shifted_distribution_is_drifted(name, kind):
    ref, cur = data(kind, 1, 5000, False), data(kind, 2, 3000, True)
    for result in both_forms(name, kind, ref, cur, threshold_of(name)):
        assert result.drifted, result
        assert (result.n_reference, result.n_current) == (5000, 3000)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_symmetric_statistics_are_symmetric(name, kind):
    ref, cur = data(kind, 1, 3000, False), data(kind, 2, 3000, True)
    forward = run_exact(name, kind, ref, cur, threshold_of(name)).statistic
    backward = run_exact(name, kind, cur, ref, threshold_of(name)).statistic
    if name == "wasserstein":  # divided by the *reference's* std: symmetric up to that
        forward *= np.std(ref)
        backward *= np.std(cur)
    if name == "psi" and kind == "numeric":  # bins are the reference's quantiles
        return
    assert math.isclose(forward, backward, rel_tol=1e-9)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_nulls_are_dropped_not_propagated(name, kind):
    ref, cur = data(kind, 1, 3000, False), data(kind, 2, 3000, False)
    holed = cur.astype(float if kind == "numeric" else object)
    holed[::10] = np.nan if kind == "numeric" else None
    result = run_exact(name, kind, ref, holed, threshold_of(name))
    assert math.isfinite(result.statistic)
    assert result.n_current == 2700
    assert result.p_value is None or math.isfinite(result.p_value)


def test_empty_samples_are_refused():
    with pytest.raises(InvalidInput, match="no non-null values"):
        run_exact("ks", "numeric", [1.0, 2.0], [np.nan], 0.05)


def test_default_method_rule():
    assert default_method("float", 999, 10**6) == "ks"
    assert default_method("bool", 10**6, 999) == "chisquare"
    assert default_method("int", 1000, 1000) == "wasserstein"
    assert default_method("string", 1000, 1000) == "jensenshannon"
    with pytest.raises(InvalidInput, match="no drift test"):
        default_method("datetime", 10, 10)


def test_policy_checks_methods_against_kinds():
    with pytest.raises(InvalidInput, match="unknown drift method"):
        DriftPolicy(method={"x": "magic"})
    with pytest.raises(InvalidInput, match="does not apply to categorical"):
        DriftPolicy(method={"x": "ks"}).method_for("x", "categorical", 10, 10)
    with pytest.raises(InvalidInput, match="unknown correction"):
        DriftPolicy(correction="holm")  # type: ignore[arg-type]
