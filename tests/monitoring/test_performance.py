"""Performance metrics against scikit-learn, bootstrap intervals by coverage, reports."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sklearn.metrics as skm
from scipy import stats
from sklearn.calibration import calibration_curve

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring import _metric_kernels as kernels
from watchkeeper.monitoring.performance import (
    METRICS,
    accuracy_score,
    evaluate,
    expected_calibration_error,
    f1_score,
    label_coverage,
    label_lag_summary,
    mean_absolute_percentage_error,
    precision_score,
    r2_score,
    reliability_table,
    roc_auc_score,
)

SEEDS = [0, 1, 2]


def _ece_oracle(t, proba, w, bins=10):
    """Brute force: binary calibration of the positive class, top label for multiclass."""
    if proba.shape[1] == 2:
        conf, outcome = proba[:, 1], (t == 1).astype(float)
    else:
        conf, outcome = proba.max(axis=1), (proba.argmax(axis=1) == t).astype(float)
    total = 0.0
    for i in range(bins):
        lo, hi = i / bins, (i + 1) / bins
        inside = (conf > lo) & (conf <= hi) if i else (conf <= hi)
        if w[inside].sum() > 0:
            gap = np.average(outcome[inside], weights=w[inside]) - np.average(
                conf[inside], weights=w[inside]
            )
            total += w[inside].sum() * abs(gap)
    return total / w.sum()


def _prf_oracle(fn: Callable[..., float], average: str) -> Callable[..., float]:
    return lambda t, p, w: fn(t, p, average=average, zero_division=0, sample_weight=w)


def _auc_oracle(t, proba, w):
    if proba.shape[1] == 2:
        return skm.roc_auc_score(t, proba[:, 1], sample_weight=w)
    return skm.roc_auc_score(t, proba, multi_class="ovr", average="macro", sample_weight=w)


ORACLES: dict[str, Callable[..., float]] = {
    "accuracy": lambda t, p, w: skm.accuracy_score(t, p, sample_weight=w),
    "roc_auc": _auc_oracle,
    "log_loss": lambda t, proba, w: skm.log_loss(t, y_proba=proba, sample_weight=w),
    "brier": lambda t, proba, w: skm.brier_score_loss(t, proba, sample_weight=w),
    "ece": _ece_oracle,
    "mae": lambda y, yhat, w: skm.mean_absolute_error(y, yhat, sample_weight=w),
    "rmse": lambda y, yhat, w: skm.root_mean_squared_error(y, yhat, sample_weight=w),
    "mape": lambda y, yhat, w: skm.mean_absolute_percentage_error(y, yhat, sample_weight=w),
    "r2": lambda y, yhat, w: skm.r2_score(y, yhat, sample_weight=w),
}
for _kind, _fn in [
    ("precision", skm.precision_score),
    ("recall", skm.recall_score),
    ("f1", skm.f1_score),
]:
    for _avg in ("binary", "macro", "weighted"):
        ORACLES[_kind if _avg == "binary" else f"{_kind}_{_avg}"] = _prf_oracle(_fn, _avg)


def _data(needs: str, n_classes: int, seed: int, weighted: bool):
    rng = np.random.default_rng(seed)
    n = 300
    w = rng.uniform(0.1, 3.0, n) if weighted else None
    if needs == "values":
        y = rng.normal(5.0, 2.0, n) * rng.choice([-1, 1], n)
        return y, y + rng.normal(0, 1.5, n), w
    proba = rng.dirichlet(np.ones(n_classes), n)
    t = np.array([rng.choice(n_classes, p=row) for row in proba])
    t[:n_classes] = np.arange(n_classes)  # every class present
    if needs == "proba":
        return t, proba, w
    pred = np.where(rng.random(n) < 0.6, t, rng.integers(0, n_classes, n))
    return t, pred, w


def _cases():
    for name, spec in METRICS.items():
        class_counts = [None] if spec.needs == "values" else [2] if spec.binary_only else [2, 4]
        for n_classes in class_counts:
            for weighted in (False, True):
                case_id = f"{name}-{n_classes}-{weighted}"
                yield pytest.param(name, n_classes or 0, weighted, id=case_id)


def test_every_metric_has_an_oracle():
    assert set(ORACLES) == set(METRICS)


@pytest.mark.parametrize(("name", "n_classes", "weighted"), list(_cases()))
def test_metric_matches_sklearn(name, n_classes, weighted):
    spec = METRICS[name]
    for seed in SEEDS:
        t, p, w = _data(spec.needs, n_classes, seed, weighted)
        expected = ORACLES[name](t, p, np.ones(len(t)) if w is None else w)
        second = p[:, 1] if spec.needs == "proba" and n_classes == 2 else p
        assert spec.function(t, second, sample_weight=w) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_batch_kernel_equals_metric_with_resample_weights(name):
    """One matrix call over resamples equals one call per resample with counts as weights."""
    spec = METRICS[name]
    t, p, _ = _data(spec.needs, 2 if spec.binary_only else 3, 7, False)
    if spec.needs == "values":
        d = kernels.regression(t, p, None)
    else:
        d = kernels.prepare(t, **({"proba": p} if spec.needs == "proba" else {"y_pred": p}))
    w = next(kernels.resample_weights(d.weight, 5, seed=3))
    assert np.all(w.sum(axis=1) == len(t))
    batch = spec.kernel(d, w)
    single = [spec.function(t, p, sample_weight=row) for row in w]
    np.testing.assert_allclose(batch, single, rtol=1e-9)


def test_string_labels_use_the_greater_label_as_positive():
    t, p = ["no", "yes", "yes", "no"], ["yes", "yes", "no", "no"]
    assert precision_score(t, p) == skm.precision_score(t, p, pos_label="yes")
    assert f1_score(t, p, pos_label="no") == skm.f1_score(t, p, pos_label="no")


def test_zero_division_is_zero_without_warning():
    assert precision_score([0, 1, 1], [0, 0, 0]) == 0.0


def test_binary_average_rejects_multiclass():
    with pytest.raises(InvalidInput, match="needs at most 2 classes"):
        f1_score([0, 1, 2], [0, 1, 2])


def test_auc_with_one_class_is_refused():
    with pytest.raises(InvalidInput, match="undefined"):
        roc_auc_score([1, 1, 1], [0.2, 0.4, 0.9], labels=[0, 1])


def test_mape_leaves_out_zero_targets():
    y, yhat = np.array([0.0, 2.0, 4.0, 0.0]), np.array([9.0, 1.0, 5.0, 1.0])
    keep = y != 0
    expected = skm.mean_absolute_percentage_error(y[keep], yhat[keep])
    assert mean_absolute_percentage_error(y, yhat) == pytest.approx(expected)
    with pytest.raises(InvalidInput, match="undefined"):
        mean_absolute_percentage_error([0.0, 0.0], [1.0, 2.0])


def test_r2_constant_target_follows_sklearn():
    assert r2_score([3.0, 3.0], [3.0, 3.0]) == skm.r2_score([3.0, 3.0], [3.0, 3.0]) == 1.0
    assert r2_score([3.0, 3.0], [2.0, 3.0]) == skm.r2_score([3.0, 3.0], [2.0, 3.0]) == 0.0


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_reliability_table_matches_calibration_curve(strategy):
    rng = np.random.default_rng(0)
    p = rng.beta(2, 3, 500)
    t = (rng.random(500) < p).astype(int)
    prob_true, prob_pred = calibration_curve(t, p, n_bins=8, strategy=strategy)
    table = [b for b in reliability_table(t, p, bins=8, strategy=strategy) if b.weight > 0]
    np.testing.assert_allclose([b.observed_rate for b in table], prob_true)
    np.testing.assert_allclose([b.mean_confidence for b in table], prob_pred)
    weights = np.array([b.weight for b in table])
    gaps = np.abs(prob_true - prob_pred)
    ece = expected_calibration_error(t, p, bins=8, strategy=strategy)
    assert ece == pytest.approx(float(weights @ gaps / 500))


def test_reliability_table_is_json_safe():
    table = reliability_table([0, 1], [0.1, 0.2], bins=4)
    assert json.dumps([b.to_dict() for b in table], allow_nan=False)
    assert table[3].observed_rate is None


def test_invalid_inputs_are_refused():
    with pytest.raises(InvalidInput, match="y_pred has 2"):
        accuracy_score([0, 1, 1], [0, 1])
    with pytest.raises(InvalidInput, match="sample_weight"):
        accuracy_score([0, 1], [0, 1], sample_weight=[1.0, -1.0])
    with pytest.raises(InvalidInput, match="within"):
        roc_auc_score([0, 1], [0.5, 1.5])
    with pytest.raises(InvalidInput, match="pass classes="):
        evaluate("classification", [0, 1, 1], proba=np.full((3, 3), 1 / 3))
    with pytest.raises(InvalidInput, match="unknown metrics"):
        evaluate("regression", [1.0, 2.0], [1.0, 2.0], metrics=["bogus"])
    with pytest.raises(InvalidInput, match="task must be"):
        evaluate("ranking", [1.0], [1.0])  # type: ignore[arg-type]


def _coverage(draw: Callable[[np.random.Generator], tuple[Any, ...]], metric: str, truth: float):
    hits = 0
    reps = 150
    for rep in range(reps):
        task, t, p, proba = draw(np.random.default_rng(rep))
        report = evaluate(task, t, p, proba=proba, metrics=[metric], n_boot=200, seed=rep)
        hits += report[metric].lower <= truth <= report[metric].upper
    return hits / reps


def test_accuracy_interval_covers_the_true_accuracy():
    def draw(rng):
        t = rng.integers(0, 2, 300)
        return "classification", t, np.where(rng.random(300) < 0.8, t, 1 - t), None

    assert 0.89 <= _coverage(draw, "accuracy", 0.8) <= 0.99


def test_auc_interval_covers_the_true_auc():
    def draw(rng):
        t = rng.integers(0, 2, 300)
        return "classification", t, None, np.clip(0.5 + 0.1 * (rng.normal(0, 1, 300) + t), 0, 1)

    truth = float(stats.norm.cdf(1 / math.sqrt(2)))  # P(N(1,1) > N(0,1)), clipping is rare
    assert 0.89 <= _coverage(draw, "roc_auc", truth) <= 0.99


def test_mae_interval_covers_the_true_mae():
    def draw(rng):
        y = rng.normal(0, 1, 300)
        return "regression", y, y + rng.normal(0, 1, 300), None

    assert 0.89 <= _coverage(draw, "mae", math.sqrt(2 / math.pi)) <= 0.99


def test_evaluate_point_values_equal_the_metric_functions():
    t, proba, _ = _data("proba", 3, 0, False)
    report = evaluate("classification", t, proba=proba, n_boot=20)
    pred = proba.argmax(axis=1)
    assert report.n == len(t)
    assert report["accuracy"].value == accuracy_score(t, pred)
    assert report["f1_macro"].value == f1_score(t, pred, average="macro")
    assert report["roc_auc"].value == pytest.approx(_auc_oracle(t, proba, None))
    for m in report.metrics.values():
        assert m.lower <= m.value <= m.upper or m.name == "ece"  # ece is biased upward
    again = evaluate("classification", t, proba=proba, n_boot=20)
    assert again == report


def test_evaluate_skips_undefined_default_metrics():
    report = evaluate("classification", [1, 1, 1], [1, 0, 1], proba=[0.9, 0.4, 0.8], classes=[0, 1])
    assert "roc_auc" not in report.metrics
    assert "log_loss" in report.metrics


def test_compare_to_flags_only_a_degradation_beyond_the_interval():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, 500)
    p = np.where(rng.random(500) < 0.7, t, 1 - t)
    report = evaluate("classification", t, p, metrics=["accuracy", "f1"], n_boot=200)
    comparison = {c.name: c for c in report.compare_to({"accuracy": 0.9, "f1": 0.7, "x": 1.0})}
    assert set(comparison) == {"accuracy", "f1"}
    assert comparison["accuracy"].worse
    assert comparison["accuracy"].difference == pytest.approx(report["accuracy"].value - 0.9)
    assert not comparison["f1"].worse
    assert not report.compare_to({"accuracy": 0.9}, tolerance=0.3)[0].worse
    lower_better = evaluate("regression", [1.0, 2.0, 3.0], [1.0, 2.5, 3.0], metrics=["mae"])
    assert lower_better.compare_to({"mae": 0.0})[0].worse is False  # interval reaches 0
    assert json.dumps(report.to_dict(), allow_nan=False)


def test_report_to_dict_writes_undefined_bounds_as_null():
    report = evaluate("regression", [1.0, 2.0], [1.0, 3.0], n_boot=0)
    mae = report.to_dict()["metrics"]["mae"]  # type: ignore[index]
    assert mae == {"name": "mae", "value": 0.5, "lower": None, "upper": None, "direction": "lower"}
    assert report.compare_to({"mae": 0.1})[0].worse


def test_label_coverage_and_lag():
    assert label_coverage(0, 0) == 1.0
    assert label_coverage(4, 3) == 0.75
    with pytest.raises(InvalidInput, match="n_labelled"):
        label_coverage(3, 4)
    lag = label_lag_summary(np.array([10.0, 20.0, 30.0, 40.0, 1000.0]))
    assert (lag.count, lag.p50, lag.max) == (5, 30.0, 1000.0)
    assert lag.p90 == pytest.approx(np.quantile([10, 20, 30, 40, 1000], 0.9))
    assert label_lag_summary([]).to_dict() == {"count": 0, "p50": None, "p90": None, "max": None}
    with pytest.raises(InvalidInput, match="non-negative"):
        label_lag_summary([-1.0])


def test_registry_directions_follow_the_naming_rule():
    for spec in METRICS.values():
        name = getattr(spec.function, "func", spec.function).__name__
        assert spec.higher_is_better == name.endswith("_score"), name
