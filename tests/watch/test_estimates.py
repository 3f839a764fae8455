"""`monitor run`'s probability side (issue 19, items 5-7): realised ROC AUC, log loss and Brier
from the logged probabilities; the estimate calibrated on the labelled reference, with a
threshold; regression MAE/RMSE estimated by direct loss estimation."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.naive_bayes import GaussianNB

from watchkeeper.config import Settings
from watchkeeper.logbook import FeedbackItem, Logbook, PredictionBatch
from watchkeeper.monitoring.spec import MonitorSpec
from watchkeeper.registry import Registry
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.watch.estimates import class_codes
from watchkeeper.watch.runner import run_monitor

END = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _log(settings, model, frame, *, proba=True, labels=None, request="r"):
    names = list(frame.columns)
    with Logbook(settings.resolved_logbook_url) as book:
        book.log_predictions(PredictionBatch(
            request_id=request, model="m", version=1, role="primary",
            timestamp=END - timedelta(minutes=10), features=frame.to_numpy(dtype=float),
            feature_names=names, predictions=np.asarray(model.predict(frame), dtype=float),
            probabilities=model.predict_proba(frame) if proba else None,
            classes=[str(c) for c in model.classes_] if proba else None, latency_s=0.01,
        ))  # fmt: skip
        if labels is not None:
            book.log_feedback([
                FeedbackItem(request_id=request, row=i, label=label, timestamp=END)
                for i, label in enumerate(labels)
            ])  # fmt: skip


def _run(settings, registry, checks):
    return run_monitor(MonitorSpec(model="m", checks=checks), registry=registry,
                       logbook=Logbook(settings.resolved_logbook_url),
                       store=MonitoringStore(registry.engine), end=END)  # fmt: skip


def _found(run, check):
    return {r.statistic: r for r in run.results if r.check == check}


def _logged_proba(model, frame):
    """The probabilities as the logbook keeps them (float32)."""
    return model.predict_proba(frame).astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_realised_probability_metrics_match_sklearn(tmp_path: Path, n_classes: int) -> None:
    rng = np.random.default_rng(20 + n_classes)
    x = pd.DataFrame(rng.normal(size=(1500, 2)), columns=["a", "b"])
    score = x["a"] + rng.normal(scale=0.8, size=len(x))
    y = np.digitize(score, [0.0] if n_classes == 2 else [-0.5, 0.5])
    model = LogisticRegression().fit(x, y)
    settings = Settings(home=tmp_path)
    with Registry(settings) as registry:
        registry.register("m", model, input_example=x, reference_data=x, stage="production")
        _log(settings, model, x, labels=y.tolist())
        run = _run(settings, registry, ("performance",))
    found = _found(run, "performance")
    proba = _logged_proba(model, x)
    with warnings.catch_warnings():  # float32 rows sum to 1 only to ~1e-7: the same inputs
        warnings.filterwarnings("ignore", message="The y_prob values do not sum to one")
        expected = {
            "roc_auc": skm.roc_auc_score(y, proba[:, 1] if n_classes == 2 else proba,
                                         multi_class="ovr", average="macro"),
            "log_loss": skm.log_loss(y, proba),
            "brier": skm.brier_score_loss(y, proba[:, 1] if n_classes == 2 else proba),
        }  # fmt: skip
    for name, value in expected.items():
        assert found[name].value == pytest.approx(value, rel=1e-6), name
        assert found[name].status == "ok"
    assert found["accuracy"].value == pytest.approx(skm.accuracy_score(y, model.predict(x)))


def test_probability_metrics_are_absent_with_the_reason_when_not_logged(tmp_path: Path) -> None:
    rng = np.random.default_rng(23)
    x = pd.DataFrame(rng.normal(size=(300, 2)), columns=["a", "b"])
    y = (x["a"] > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    settings = Settings(home=tmp_path)
    with Registry(settings) as registry:
        registry.register("m", model, input_example=x, reference_data=x, stage="production")
        _log(settings, model, x, proba=False, labels=y.tolist())
        run = _run(settings, registry, ("performance", "estimated"))
    found = _found(run, "performance")
    assert "accuracy" in found
    for name in ("roc_auc", "log_loss", "brier"):
        assert found[name].value is None  # absent, not zero
        assert found[name].status == "skipped"
        assert found[name].feature == "no probabilities logged"
    estimated = _found(run, "estimated")
    assert estimated["accuracy"].status == "skipped"
    assert estimated["accuracy"].feature == "no probabilities logged"


# A deliberately miscalibrated classifier: Gaussian naive Bayes given the same signal twice
# (``a`` and a near copy ``a2``) counts its evidence twice and is far too confident. The
# labelled reference is its training file (with the ``label`` column). Tolerance: the
# calibrated accuracy estimate within 0.03 of the realised accuracy on 3 000-row windows (the
# realised value's chance standard deviation is ~0.008 there); the raw one is off by > 0.04.


def _nb_data(rng, n, spread=1.0):
    a = rng.normal(0, spread, n)
    frame = pd.DataFrame({"a": a, "a2": a + rng.normal(0, 0.05, n), "b": rng.normal(0, 1, n)})
    label = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * a + 0.3 * frame["b"])))).astype(int)
    return frame, label.to_numpy()


@pytest.mark.parametrize(("spread", "drifted"), [(1.0, False), (0.3, True)])
def test_scheduled_estimate_is_calibrated_on_the_reference_and_alerts_on_a_real_drop(
    tmp_path: Path, spread: float, drifted: bool
) -> None:
    rng = np.random.default_rng(30)
    train, label = _nb_data(rng, 8000)
    data = tmp_path / "train.parquet"
    train.assign(label=label).to_parquet(data)
    model = GaussianNB().fit(train, label)
    reference_accuracy = skm.accuracy_score(label, model.predict(train))
    current, truth = _nb_data(rng, 3000, spread)
    settings = Settings(home=tmp_path / "home")
    with Registry(settings) as registry:
        registry.register("m", model, input_example=train, reference_data=data,
                          stage="production")  # fmt: skip
        _log(settings, model, current)
        run = _run(settings, registry, ("estimated",))
    found = _found(run, "estimated")
    realised = skm.accuracy_score(truth, model.predict(current))
    raw = model.predict_proba(current).max(axis=1).mean()
    assert raw - realised > 0.04  # the model is miscalibrated
    assert abs(found["accuracy"].value - realised) <= 0.03
    assert found["accuracy"].threshold < reference_accuracy
    if drifted:
        assert realised < reference_accuracy - 0.1  # accuracy really dropped
        assert found["accuracy"].status == "fail"
        assert any(a.check == "estimated" for a in run.alerts.opened)
    else:
        assert [r for r in found.values() if r.status == "fail"] == []


def test_estimate_without_a_labelled_reference_says_why(tmp_path: Path) -> None:
    rng = np.random.default_rng(31)
    train, label = _nb_data(rng, 500)
    model = GaussianNB().fit(train, label)
    settings = Settings(home=tmp_path)
    with Registry(settings) as registry:
        registry.register("m", model, input_example=train, reference_data=train,
                          stage="production")  # fmt: skip
        _log(settings, model, train)
        run = _run(settings, registry, ("estimated",))
    found = _found(run, "estimated")
    assert found["accuracy"].threshold is None  # raw probabilities: no threshold
    assert found["calibration"].status == "skipped"
    assert "registered without a data file" in found["calibration"].feature


def test_regression_mae_and_rmse_are_estimated_from_the_labelled_reference(
    tmp_path: Path,
) -> None:
    """Direct loss estimation through the runner: a line fitted to a curve, inputs drifted
    along the curve. Tolerance: each estimate within 15% of the realised value (1 500 rows)."""
    rng = np.random.default_rng(32)

    def make(n, shift):
        frame = pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(0, 1, n)})
        noise = rng.normal(0, 0.3 + 0.3 * np.abs(frame["a"]))
        return frame, (frame["a"] + 0.5 * frame["a"] ** 2 + frame["b"] + noise).to_numpy()

    train, target = make(3000, 0.0)
    data = tmp_path / "train.parquet"
    train.assign(label=target).to_parquet(data)
    model = LinearRegression().fit(train, target)
    current, truth = make(1500, 1.0)
    settings = Settings(home=tmp_path / "home")
    with Registry(settings) as registry:
        registry.register("m", model, input_example=train, reference_data=data,
                          stage="production")  # fmt: skip
        _log(settings, model, current, proba=False, labels=truth.tolist())
        run = _run(settings, registry, ("estimated", "performance"))
    estimated, realised = _found(run, "estimated"), _found(run, "performance")
    for name in ("mae", "rmse"):
        assert realised[name].value == pytest.approx(
            getattr(skm, {"mae": "mean_absolute_error", "rmse": "root_mean_squared_error"}[name])(
                truth, model.predict(current)
            )
        )
        assert abs(estimated[name].value - realised[name].value) <= 0.15 * realised[name].value
        assert estimated[name].status == "fail"  # the error grew beyond the reference's band


def test_class_codes_match_labels_of_any_type_to_logged_class_names() -> None:
    assert class_codes([1.0, 0.0], ["0", "1"]).tolist() == [1, 0]
    assert class_codes(["yes", "no"], ["no", "yes"]).tolist() == [1, 0]
    assert class_codes([True, False], ["False", "True"]).tolist() == [1, 0]
    assert class_codes(["2"], ["0", "1"]) is None
    assert class_codes([None], ["0", "1"]) is None
