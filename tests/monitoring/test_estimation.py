"""CBPE: estimates match realised metrics when probabilities are calibrated, and only then.

Tolerances (n = 10 000 rows per window): accuracy within 0.02 of the realised value, precision,
recall, F1 and ROC AUC within 0.025. Over 60 seeds the binary errors had mean ~0.001 and a
standard deviation of ~0.005 at this size, so the tolerances are about four standard deviations.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
import sklearn.metrics as skm

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.checks import Window, estimate_results
from watchkeeper.monitoring.estimation import (
    ESTIMABLE,
    Baseline,
    EstimatedPerformance,
    estimate_performance,
    fit_calibrator,
    fit_classifier_reference,
)

N = 10_000
TOLERANCE = {"accuracy": 0.02}


def _binary(rng, n=N):
    p = rng.beta(2, 2, n)
    return p, (rng.random(n) < p).astype(int)


def _multiclass(rng, n=N, k=3):
    proba = rng.dirichlet(np.full(k, 0.7), n)
    y = (rng.random((n, 1)) > proba.cumsum(axis=1)).sum(axis=1)
    return proba, y


def _overconfident(p):
    """Sharpen: the same ranking, probabilities pushed towards 0 and 1."""
    return p**3 / (p**3 + (1 - p) ** 3)


def _assert_close(estimate):
    for name, m in estimate.metrics.items():
        assert m.realised is not None
        assert abs(m.error) <= TOLERANCE.get(name, 0.025), (name, m)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_estimates_match_realised_when_calibrated(seed):
    p, y = _binary(np.random.default_rng(seed))
    estimate = estimate_performance(p, y_true=y)
    assert set(estimate.metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    _assert_close(estimate)
    assert estimate["roc_auc"].realised == pytest.approx(skm.roc_auc_score(y, p))


@pytest.mark.parametrize("seed", [0, 1])
def test_multiclass_estimates_match_realised_when_calibrated(seed):
    proba, y = _multiclass(np.random.default_rng(seed))
    estimate = estimate_performance(proba, y_true=y)
    assert "f1_macro" in estimate.metrics
    _assert_close(estimate)


def test_accuracy_estimate_is_the_mean_top_probability():
    proba, _ = _multiclass(np.random.default_rng(3), n=50)
    estimate = estimate_performance(proba)
    assert estimate["accuracy"].estimated == pytest.approx(proba.max(axis=1).mean())
    assert estimate["accuracy"].realised is None
    assert estimate["accuracy"].error is None


def test_miscalibrated_probabilities_mislead_until_calibrated():
    rng = np.random.default_rng(5)
    p_ref, y_ref = _binary(rng)
    p_cur, y_cur = _binary(rng)
    shown_ref, shown_cur = _overconfident(p_ref), _overconfident(p_cur)
    naive = estimate_performance(shown_cur, y_true=y_cur)
    assert naive["accuracy"].error > 0.05  # overconfident model looks better than it is
    calibrator = fit_calibrator(shown_ref, y_ref)
    fixed = estimate_performance(shown_cur, calibrator=calibrator, y_true=y_cur)
    assert fixed.calibrated
    _assert_close(fixed)
    # calibration changes soft labels only: predictions and the ranking stay the model's
    assert fixed["accuracy"].realised == naive["accuracy"].realised
    assert fixed["roc_auc"].realised == naive["roc_auc"].realised


def test_multiclass_calibration_rows_sum_to_one():
    rng = np.random.default_rng(6)
    proba, y = _multiclass(rng, n=1000)
    sharp = proba**3 / (proba**3).sum(axis=1, keepdims=True)
    calibrator = fit_calibrator(sharp, y, classes=[0, 1, 2])
    calibrated = calibrator.transform(sharp)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    fixed = estimate_performance(sharp, calibrator=calibrator, y_true=y)
    assert abs(fixed["accuracy"].error) <= 0.03


def test_classes_come_from_the_calibrator_and_label_predictions():
    rng = np.random.default_rng(7)
    p, y = _binary(rng, n=500)
    labels = np.array(["no", "yes"])[y]
    calibrator = fit_calibrator(p, labels)
    assert calibrator.classes == ("no", "yes")
    estimate = estimate_performance(p, calibrator=calibrator, y_true=labels)
    expected = skm.precision_score(labels, np.where(p > 0.5, "yes", "no"), pos_label="yes")
    assert estimate["precision"].realised == pytest.approx(expected)
    threshold = np.where(p > 0.3, "yes", "no")
    custom = estimate_performance(p, calibrator=calibrator, y_pred=threshold, y_true=labels)
    assert custom["recall"].realised == pytest.approx(
        skm.recall_score(labels, threshold, pos_label="yes")
    )


def test_to_dict_is_json_safe():
    estimate = estimate_performance([0.2, 0.7, 0.9], metrics=["accuracy", "f1"])
    assert json.loads(json.dumps(estimate.to_dict(), allow_nan=False))["n"] == 3
    assert EstimatedPerformance("f1", 0.5, 0.4).to_dict()["realised"] == 0.4


def test_invalid_requests_are_refused():
    with pytest.raises(InvalidInput, match="cannot estimate"):
        estimate_performance([0.2, 0.7], metrics=["log_loss"])
    with pytest.raises(InvalidInput, match="3 classes for 2"):
        estimate_performance([0.2, 0.7], classes=[0, 1, 2])
    with pytest.raises(InvalidInput, match="at most 2 classes"):
        estimate_performance(np.full((2, 3), 1 / 3), metrics=["precision"])
    calibrator = fit_calibrator([0.1, 0.9], [0, 1])
    with pytest.raises(InvalidInput, match="calibrator has 2 classes"):
        calibrator.transform(np.full((2, 3), 1 / 3))
    assert "roc_auc" in ESTIMABLE


# --- calibrated on a labelled reference, with an alert threshold (issue 19, item 6) ---------
#
# A deliberately miscalibrated classifier: the true log-odds are ``s = 1.5 x1 - x2`` and the
# model reports ``sigmoid(3 s)`` (the right ranking, far too confident). Chunks of 5 000 rows;
# the calibrated accuracy estimate must be within 0.025 of the realised accuracy (the realised
# value's own standard deviation at this size is ~0.006, the estimate's error had a standard
# deviation of ~0.006 over seeds), the raw one is not. A drifted chunk moves the inputs towards
# the decision boundary (the relation x -> y unchanged, as CBPE assumes), so realised accuracy
# really drops; it must alert, and clean chunks must not.

CHUNK = 5_000
ESTIMATE_TOLERANCE = 0.025


def _sigmoid(s):
    return 1 / (1 + np.exp(-s))


def _miscalibrated(rng, n, spread=1.0):
    x = rng.normal(0, spread, (n, 2))
    s = 1.5 * x[:, 0] - x[:, 1]
    y = (rng.random(n) < _sigmoid(s)).astype(int)
    return _sigmoid(3 * s), y


def _realised_accuracy(p, y):
    return skm.accuracy_score(y, (p > 0.5).astype(int))


def test_calibrated_estimate_tracks_realised_accuracy_and_alerts_on_a_real_drop():
    window = Window("m", 1, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    rng = np.random.default_rng(11)
    reference = fit_classifier_reference(*_miscalibrated(rng, 20_000))
    assert reference.baselines["accuracy"].value == pytest.approx(
        _realised_accuracy(*_miscalibrated(np.random.default_rng(11), 20_000))
    )
    chunks = [(_miscalibrated(rng, CHUNK), False) for _ in range(4)]
    chunks.append((_miscalibrated(rng, CHUNK, spread=0.35), True))
    realised_clean = []
    for (p, y), drifted in chunks:
        realised = _realised_accuracy(p, y)
        raw = estimate_performance(p)["accuracy"].estimated
        fixed = estimate_performance(p, calibrator=reference.calibrator)
        assert abs(fixed["accuracy"].estimated - realised) <= ESTIMATE_TOLERANCE
        assert raw - realised > 0.05  # uncalibrated: the overconfident model looks better
        found = {r.statistic: r for r in estimate_results(window, fixed, reference.baselines)}
        assert found["accuracy"].threshold < reference.baselines["accuracy"].value
        if drifted:
            assert realised < min(realised_clean) - 0.1  # the drop is real
            assert found["accuracy"].status == "fail"
        else:
            realised_clean.append(realised)
            assert all(r.status == "ok" for r in found.values()), found


def test_baseline_spread_is_the_binomial_one_for_accuracy():
    rng = np.random.default_rng(12)
    p = rng.beta(2, 2, 20_000)
    y = (rng.random(p.size) < p).astype(int)
    baseline = fit_classifier_reference(p, y).baselines["accuracy"]
    acc = baseline.value
    # the bootstrap standard deviation per row against the binomial sqrt(acc * (1 - acc))
    assert baseline.unit_sd == pytest.approx(np.sqrt(acc * (1 - acc)), rel=0.1)
    assert baseline.threshold(400) == pytest.approx(acc - 3 * baseline.unit_sd / 20)
    assert baseline.threshold(400, tolerance=0.01) == pytest.approx(baseline.threshold(400) - 0.01)
    assert baseline.worse(baseline.threshold(400) - 1e-6, 400)
    assert not baseline.worse(baseline.threshold(400) + 1e-6, 400)


def test_a_loss_baseline_alerts_upwards():
    loss = Baseline("mae", 1.0, 2.0, "lower")
    assert loss.threshold(100) == pytest.approx(1.6)
    assert loss.worse(1.7, 100)
    assert not loss.worse(0.2, 100)
