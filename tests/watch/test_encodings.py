"""``monitor run`` on bool features and on labels of any type (issue 19, items 3 and 4).

Regression tests: a bool feature logged as 0.0/1.0 was counted against the profile's
``"True"``/``"False"`` categories as unseen (drift 1.0 in every window); string labels were
stored as ``label_text`` and never scored (label coverage 0, no metric, no error)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from watchkeeper.config import Settings
from watchkeeper.logbook import FeedbackItem, Logbook, PredictionBatch
from watchkeeper.models.signature import Signature
from watchkeeper.monitoring.spec import MonitorSpec
from watchkeeper.registry import Registry
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.watch.runner import MonitorRun, run_monitor

END = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n), "member": rng.random(n) < 0.4})


def _run(settings: Settings, registry: Registry, checks: tuple[str, ...]) -> MonitorRun:
    return run_monitor(MonitorSpec(model="m", checks=checks), registry=registry,
                       logbook=Logbook(settings.resolved_logbook_url),
                       store=MonitoringStore(registry.engine), end=END)  # fmt: skip


def test_clean_bool_traffic_is_not_drifted_in_old_or_new_segments(tmp_path: Path) -> None:
    reference = _frame(5000, 0)
    model = LogisticRegression().fit(reference, reference["x"] > 0)
    settings = Settings(home=tmp_path)
    with Registry(settings) as registry:
        version = registry.register("m", model, input_example=reference,
                                    reference_data=reference, stage="production")  # fmt: skip
        signature = registry.get("m@production").signature
        assert signature is not None
        assert signature["columns"][1]["dtype"] == "bool"
        current = _frame(4000, 1)
        served = current.to_numpy(dtype=np.float64)  # how serving hands a bool column on: 0/1
        with Logbook(settings.resolved_logbook_url) as book:
            for i, (start, typed) in enumerate([(0, False), (2000, True)]):  # before/after
                chunk = slice(start, start + 2000)
                book.log_predictions(PredictionBatch(
                    request_id=f"r{i}", model="m", version=version.version, role="primary",
                    timestamp=END - timedelta(minutes=30 - i), features=served[chunk],
                    feature_names=["x", "member"], predictions=model.predict(current[chunk]),
                    probabilities=None, classes=None, latency_s=0.001,
                    signature=Signature.from_dict(signature) if typed else None,
                ))  # fmt: skip
                book.flush()
        run = _run(settings, registry, ("quality", "drift"))
    found = {(r.check, r.feature, r.statistic): r for r in run.results}
    drift = [r for r in run.results if r.check == "drift" and r.feature == "member"]
    assert drift
    assert [r.status for r in drift] == ["ok"], drift  # JS = 1.0, failing, before
    assert found[("quality", "member", "unseen_category")].value == 0.0  # was 1.0 before


def _data(classes: np.ndarray, n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Two features; the label is ``classes[1]`` when ``a`` plus noise is positive."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return frame, np.where(frame["a"] + 0.7 * rng.normal(size=n) > 0, classes[1], classes[0])


def _log_labelled(settings: Settings, model: LogisticRegression, frame: pd.DataFrame,
                  labels: list[object]) -> None:  # fmt: skip
    when = END - timedelta(minutes=20)
    with Logbook(settings.resolved_logbook_url) as book:
        book.log_predictions(PredictionBatch(
            request_id="w", model="m", version=1, role="primary", timestamp=when,
            features=frame.to_numpy(), feature_names=list(frame.columns),
            predictions=model.predict(frame), probabilities=model.predict_proba(frame),
            classes=[str(c) for c in model.classes_.tolist()], latency_s=0.01,
        ))  # fmt: skip
        book.log_feedback(FeedbackItem(request_id="w", row=i, label=label, timestamp=when)
                          for i, label in enumerate(labels))  # fmt: skip


@pytest.mark.parametrize(
    "classes",
    [np.array(["churned", "stayed"]), np.array([False, True]), np.array([3, 7])],
    ids=["strings", "booleans", "integers"],
)
def test_labels_of_any_type_the_model_predicts_join_and_score(tmp_path: Path, classes) -> None:
    reference, target = _data(classes, 2000, seed=2)
    model = LogisticRegression().fit(reference, target)
    current, truth = _data(classes, 1200, seed=3)
    settings = Settings(home=tmp_path)
    with Registry(settings) as registry:
        registry.register("m", model, input_example=reference, reference_data=reference,
                          stage="production")  # fmt: skip
        _log_labelled(settings, model, current, truth.tolist())  # JSON-like: str, bool, int
        run = _run(settings, registry, ("performance",))
    found = {r.statistic: r for r in run.results}
    assert found["label_coverage"].value == 1.0
    assert found["mismatched_labels"].value == 0
    assert found["mismatched_labels"].status == "ok"
    expected = accuracy_score(truth, model.predict(current))
    assert found["accuracy"].value == pytest.approx(expected, abs=1e-12)
    assert run.labelled == len(current)


def test_labels_that_cannot_match_the_classes_fail_the_run_visibly(tmp_path: Path) -> None:
    reference, target = _data(np.array([0, 1]), 1000, seed=2)
    model = LogisticRegression().fit(reference, target)
    settings = Settings(home=tmp_path)
    with Registry(settings) as registry:
        registry.register("m", model, input_example=reference, reference_data=reference,
                          stage="production")  # fmt: skip
        words = np.where(reference["a"] > 0, "churned", "stayed").tolist()
        _log_labelled(settings, model, reference, words)
        run = _run(settings, registry, ("performance",))
    found = {r.statistic: r for r in run.results}
    assert found["mismatched_labels"].status == "fail"
    assert found["mismatched_labels"].value == len(reference)
    assert "accuracy" not in found  # nothing to score, and said so
