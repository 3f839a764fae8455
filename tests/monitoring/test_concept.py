"""Concept drift: a flipped label rule is found on its feature; a covariate shift is not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.concept import (
    performance_decay,
    reference_model_gap,
    relation_change,
)
from watchkeeper.monitoring.performance import evaluate

N = 4000
FEATURES = ["x0", "x1", "x2", "x3"]


def _frame(rng, shift=(0.0, 0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0, 1.0)):
    return pd.DataFrame(
        {name: rng.normal(s, c, N) for name, s, c in zip(FEATURES, shift, scale, strict=True)}
    )


def _labels(rng, X, x1_sign=1.0):
    """y depends on x0 and x1 only; x1_sign=-1 flips x1's effect (a concept change)."""
    logit = 1.5 * X["x0"].to_numpy() + x1_sign * 1.5 * X["x1"].to_numpy()
    return (rng.random(len(X)) < 1 / (1 + np.exp(-logit))).astype(int)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flipped_rule_is_found_on_that_feature_only(seed):
    rng = np.random.default_rng(seed)
    ref = _frame(rng)
    cur = _frame(rng)
    result = relation_change(
        ref, _labels(rng, ref), cur, _labels(rng, cur, x1_sign=-1.0), features=FEATURES
    )
    assert result.changed == ("x1",)
    x1 = result.features[1]
    assert x1.reference_rates[0] < 0.3 < 0.7 < x1.current_rates[0]  # low x1 now means positive


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_covariate_shift_under_the_same_rule_is_not_concept_drift(seed):
    rng = np.random.default_rng(seed)
    ref = _frame(rng)
    cur = _frame(rng, shift=(0.5, 0.0, 1.0, -1.0), scale=(1.0, 1.0, 1.0, 1.5))
    result = relation_change(ref, _labels(rng, ref), cur, _labels(rng, cur), features=FEATURES)
    assert result.changed == ()
    gap = reference_model_gap(
        ref, _labels(rng, ref), cur, _labels(rng, cur), features=FEATURES, input_drift=0.75
    )
    assert gap.gap < 0.05
    assert gap.verdict == "data_drift"


@pytest.mark.parametrize("model", ["logistic", "gradient_boosting"])
def test_model_gap_names_concept_drift_when_inputs_are_steady(model):
    rng = np.random.default_rng(4)
    ref, cur = _frame(rng), _frame(rng)
    y_ref, y_cur = _labels(rng, ref), _labels(rng, cur, x1_sign=-1.0)
    gap = reference_model_gap(
        ref, y_ref, cur, y_cur, features=FEATURES, model=model, input_drift=0.0
    )
    assert gap.reference > 0.75
    assert gap.gap > 0.2
    assert gap.verdict == "concept_drift"
    assert json.dumps(gap.to_dict(), allow_nan=False)
    same = reference_model_gap(ref, y_ref, cur, _labels(rng, cur), features=FEATURES, model=model)
    assert same.verdict == "stable"
    unattributed = reference_model_gap(ref, y_ref, cur, y_cur, features=FEATURES, model=model)
    assert unattributed.verdict == "performance_drop"


def test_relation_change_reads_arrays_by_index_and_leaves_out_nan():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(N, 2))
    X[:10, 0] = np.nan
    y = (rng.random(N) < 1 / (1 + np.exp(-2 * X[:, 1]))).astype(int)
    result = relation_change(X, y, X, y, features=[0, 1], bins=4, model="gradient_boosting")
    assert result.changed == ()
    assert relation_change(X, y, X, y, features=[0, 1], adjust=False).changed == ()
    with pytest.raises(InvalidInput, match="needs finite values"):
        relation_change(X, y, X, y, features=[0, 1])
    assert len(result.features[0].edges) == 5
    assert json.dumps(result.to_dict(), allow_nan=False)


def test_relation_change_skips_thin_bins_and_refuses_bad_input():
    X = np.arange(100, dtype=float).reshape(-1, 1)
    y = (X[:, 0] > 50).astype(int)
    result = relation_change(X, y, X, 1 - y, features=[0], min_count=1000)
    assert result.features[0].p_value == 1.0
    with pytest.raises(InvalidInput, match="column indices"):
        relation_change(X, y, X, y, features=["x"])
    with pytest.raises(InvalidInput, match="100 rows but 3 labels"):
        relation_change(X, y, X, [0, 1, 0], features=[0])


def _windows(accuracies, seed=0):
    rng = np.random.default_rng(seed)
    reports = []
    for acc in accuracies:
        t = rng.integers(0, 2, 1000)
        p = np.where(rng.random(1000) < acc, t, 1 - t)
        reports.append(evaluate("classification", t, p, metrics=["accuracy"], n_boot=100))
    return reports


def test_performance_decay_sees_a_falling_metric():
    trend = performance_decay(_windows([0.9, 0.85, 0.8, 0.75]), "accuracy")
    assert trend.slope == pytest.approx(-0.05, abs=0.02)
    assert trend.worse
    assert trend.n_windows == 4
    steady = performance_decay(_windows([0.9, 0.9, 0.9], seed=1), "accuracy")
    assert not steady.worse
    assert abs(steady.slope) < 0.02


def test_performance_decay_for_a_lower_is_better_metric():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    windows = [evaluate("regression", y, y + rng.normal(0, s, 500), n_boot=100) for s in (1, 2)]
    trend = performance_decay(windows, "mae")
    assert trend.slope > 0
    assert trend.worse
    assert json.dumps(trend.to_dict())


def test_performance_decay_refuses_bad_windows():
    windows = _windows([0.9, 0.9])
    with pytest.raises(InvalidInput, match="two windows"):
        performance_decay(windows[:1], "accuracy")
    with pytest.raises(InvalidInput, match="'f1' missing"):
        performance_decay(windows, "f1")


def test_model_gap_refuses_bad_options():
    X = np.zeros((10, 1))
    with pytest.raises(InvalidInput, match="two reference classes"):
        reference_model_gap(X, np.zeros(10), X, np.zeros(10))
    with pytest.raises(InvalidInput, match="model must be"):
        reference_model_gap(X, np.arange(10) % 2, X, np.arange(10) % 2, model="svm")  # type: ignore[arg-type]
