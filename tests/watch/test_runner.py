"""The monitor runner's own checks: operational figures and estimated performance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from watchkeeper.config import Settings
from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import FeedbackItem, Logbook, PredictionBatch
from watchkeeper.monitoring.checks import Window
from watchkeeper.monitoring.spec import MonitorSpec
from watchkeeper.registry import Registry
from watchkeeper.registry.live import LATENCY_EDGES_MS, LiveStatsStore
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.serving.live import LiveStats, Publisher
from watchkeeper.watch.runner import (
    histogram_quantile,
    operational_results,
    run_monitor,
)

END = datetime(2026, 11, 26, 12, tzinfo=UTC)
WINDOW = Window("m", 1, END - timedelta(hours=1), END)


def _by_statistic(results):
    return {r.statistic: r for r in results}


def test_operational_figures_from_live_counts() -> None:
    latency = [0] * (len(LATENCY_EDGES_MS) + 1)
    latency[3] = 90  # 2-5 ms
    latency[6] = 9  # 20-50 ms
    latency[9] = 1  # 200-500 ms
    counts = {(1, "requests"): [100, 95, 3, 2], (1, "rows"): [150], (1, "latency_ms"): latency}
    spec = MonitorSpec(model="m", max_error_rate=0.01, max_latency_p99_s=0.1)
    found = _by_statistic(operational_results(WINDOW, counts, spec))
    assert found["requests"].value == 100
    assert found["throughput_rps"].value == 100 / 3600
    assert found["error_rate"].value == 0.02
    assert found["error_rate"].status == "fail"  # 2% of 5xx > 1%
    assert found["client_error_rate"].value == 0.03
    assert found["latency_p50_s"].value == 0.005
    assert found["latency_p99_s"].value == 0.05
    assert found["latency_p99_s"].status == "ok"
    assert found["rows"].value == 150
    assert operational_results(WINDOW, {}, spec) == []


def test_histogram_quantile_matches_numpy_on_bin_edges() -> None:
    rng = np.random.default_rng(0)
    samples = rng.lognormal(mean=1.0, sigma=1.0, size=10_000)  # ms
    counts = np.bincount(np.searchsorted(LATENCY_EDGES_MS, samples),
                         minlength=len(LATENCY_EDGES_MS) + 1)  # fmt: skip
    for q in (0.5, 0.9, 0.99):
        exact = np.quantile(samples, q)
        upper = histogram_quantile(counts.tolist(), LATENCY_EDGES_MS, q)
        index = int(np.searchsorted(LATENCY_EDGES_MS, exact))
        assert upper == LATENCY_EDGES_MS[min(index, len(LATENCY_EDGES_MS) - 1)]


def test_run_monitor_estimates_and_counts_live_traffic(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(4000, 2)), columns=["a", "b"])
    y = (X["a"] + rng.normal(scale=0.5, size=4000) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    settings = Settings(home=tmp_path)
    with Registry(settings) as registry:
        registry.register("m", model, input_example=X, reference_data=X, stage="production")
        live = LiveStats(replica="r", clock=lambda: END - timedelta(minutes=30))
        for _ in range(10):
            live.observe_request("m", 1, 0.003, 200)
        Publisher(live, LiveStatsStore(registry.engine).write).publish()
        with Logbook(settings.resolved_logbook_url) as book:
            proba = model.predict_proba(X)
            book.log_predictions(PredictionBatch(
                request_id="r1", model="m", version=1, role="primary",
                timestamp=END - timedelta(minutes=10), features=X.to_numpy(),
                feature_names=["a", "b"], predictions=model.predict(X).astype(float),
                probabilities=proba, classes=["0", "1"], latency_s=0.01,
            ))  # fmt: skip
        run = run_monitor(MonitorSpec(model="m"), registry=registry,
                          logbook=Logbook(settings.resolved_logbook_url),
                          store=MonitoringStore(registry.engine), end=END,
                          live=LiveStatsStore(registry.engine))  # fmt: skip
    found = {(r.check, r.statistic): r for r in run.results}
    assert found[("operational", "requests")].value == 10
    # the labels were never sent, yet accuracy is estimated: on calibrated probabilities it is
    # the mean confidence of the predicted class
    expected = float(np.mean(proba.max(axis=1)))
    assert abs(found[("estimated", "accuracy")].value - expected) < 1e-9
    assert run.labelled == 0


def test_multivariate_check_sees_a_joint_shift(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(size=(6000, 2))
    reference = pd.DataFrame({"a": base[:, 0], "b": 0.9 * base[:, 0] + 0.44 * base[:, 1]})
    flipped = rng.normal(size=(3000, 2))
    current = pd.DataFrame({"a": flipped[:, 0], "b": -0.9 * flipped[:, 0] + 0.44 * flipped[:, 1]})
    data = tmp_path / "train.parquet"
    reference.to_parquet(data)
    model = LogisticRegression().fit(reference, (reference["a"] > 0).astype(int))
    settings = Settings(home=tmp_path / "home")
    with Registry(settings) as registry:
        registry.register("m", model, input_example=reference, reference_data=data,
                          stage="production")  # fmt: skip
        with Logbook(settings.resolved_logbook_url) as book:
            book.log_predictions(PredictionBatch(
                request_id="r", model="m", version=1, role="primary",
                timestamp=END - timedelta(minutes=5), features=current.to_numpy(),
                feature_names=["a", "b"], predictions=model.predict(current).astype(float),
                probabilities=None, classes=None, latency_s=0.01,
            ))  # fmt: skip
        spec = MonitorSpec(model="m", checks=("drift", "multivariate"))
        run = run_monitor(spec, registry=registry, logbook=Logbook(settings.resolved_logbook_url),
                          store=MonitoringStore(registry.engine), end=END)  # fmt: skip
    found = {(r.check, r.feature, r.statistic): r for r in run.results}
    assert found[("multivariate", "", "domain_auc")].status == "fail"
    importance = [r.feature for r in run.results if r.statistic == "importance"]
    assert set(importance[:2]) == {"a", "b"}


def _log_labelled(settings: Settings, model, frame: pd.DataFrame, labels: np.ndarray) -> None:
    with Logbook(settings.resolved_logbook_url) as book:
        when = END - timedelta(minutes=20)
        predicted = model.predict(frame)
        book.log_predictions(PredictionBatch(
            request_id="w", model="m", version=1, role="primary", timestamp=when,
            features=frame.to_numpy(), feature_names=list(frame.columns),
            predictions=predicted if predicted.dtype == object else predicted.astype(float),
            probabilities=None, classes=None, latency_s=0.01,
        ))  # fmt: skip
        book.log_feedback(FeedbackItem(request_id="w", row=i, label=label,
                                       timestamp=when + timedelta(minutes=5))
                          for i, label in enumerate(labels.tolist()))  # fmt: skip


# labels as the model's classes are: integers, or words (kept apart in the logbook's label_text)
AS_INTS = lambda positive: positive.astype(int)  # noqa: E731
AS_WORDS = lambda positive: np.where(positive, "churned", "stayed").astype(object)  # noqa: E731


@pytest.mark.parametrize("changed", [False, True])
@pytest.mark.parametrize("as_labels", [AS_INTS, AS_WORDS], ids=["int-labels", "text-labels"])
def test_concept_check_tells_a_changed_relation_from_a_stable_one(
    tmp_path: Path, changed: bool, as_labels
) -> None:
    rng = np.random.default_rng(3)
    train = pd.DataFrame(rng.normal(size=(4000, 2)), columns=["a", "b"])
    train["label"] = as_labels((train["a"] + rng.normal(scale=0.3, size=4000) > 0).to_numpy())
    data = tmp_path / "train.parquet"
    train.to_parquet(data)
    X = train[["a", "b"]]
    model = LogisticRegression().fit(X, train["label"])
    current = pd.DataFrame(rng.normal(size=(2000, 2)), columns=["a", "b"])  # same inputs
    # the same inputs, but now the label follows b instead of a: only the relation moved
    noise = rng.normal(scale=0.3, size=2000)
    labels = as_labels((current["b" if changed else "a"] + noise > 0).to_numpy())
    settings = Settings(home=tmp_path / "home")
    with Registry(settings) as registry:
        registry.register("m", model, input_example=X, reference_data=X, data_uri=str(data),
                          stage="production")  # fmt: skip
        _log_labelled(settings, model, current, labels)
        steps: list[str] = []
        spec = MonitorSpec(model="m", checks=("drift", "performance", "concept"))
        run = run_monitor(spec, registry=registry, logbook=Logbook(settings.resolved_logbook_url),
                          store=MonitoringStore(registry.engine), end=END,
                          progress=steps.append)  # fmt: skip
    found = {(r.check, r.feature, r.statistic): r for r in run.results}
    gap = found[("concept", "", "reference_model_gap")]
    assert gap.status == ("fail" if changed else "ok")
    assert (gap.value > 0.3) if changed else (abs(gap.value) < 0.05)
    assert found[("drift", "", "drift_share")].status == "ok"  # the inputs did not move
    relation = {f: found[("concept", f, "relation_p_value")].status for f in ("a", "b")}
    assert relation == ({"a": "fail", "b": "fail"} if changed else {"a": "ok", "b": "ok"})
    assert "concept drift" in steps
    assert steps[0] == "reading the logbook"
    assert run.seconds > 0
    assert run.rows_per_second > 0


def test_concept_check_is_skipped_without_labelled_training_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.normal(size=(500, 2)), columns=["a", "b"])
    model = LogisticRegression().fit(X, (X["a"] > 0).astype(int))
    settings = Settings(home=tmp_path)
    with Registry(settings) as registry:
        registry.register("m", model, input_example=X, reference_data=X, stage="production")
        _log_labelled(settings, model, X, (X["a"] > 0).astype(int).to_numpy())
        spec = MonitorSpec(model="m", checks=("concept",))
        run = run_monitor(spec, registry=registry, logbook=Logbook(settings.resolved_logbook_url),
                          store=MonitoringStore(registry.engine), end=END)  # fmt: skip
    assert [(r.check, r.status) for r in run.results] == [("concept", "skipped")]


def test_window_cost_from_predict_cpu_time() -> None:
    live = LiveStats(replica="r", clock=lambda: END - timedelta(minutes=30))
    live.observe_request("m", 1, 0.003, 200)
    live.observe_cpu("m", 1, 1.5)
    live.observe_cpu("m", 1, 0.5)
    counts = {(i.version, i.kind): list(i.counts) for i in live.drain()
              if isinstance(i.counts, tuple)}  # latency is a sketch  # fmt: skip
    spec = MonitorSpec(model="m", price_per_cpu_hour=3.6)
    found = _by_statistic(operational_results(WINDOW, counts, spec))
    assert found["cpu_seconds"].value == pytest.approx(2.0)
    assert found["estimated_cost"].value == pytest.approx(2.0 / 3600 * 3.6)


def test_a_drift_setting_for_a_feature_the_model_lacks_is_refused(tmp_path: Path) -> None:
    X = pd.DataFrame({"mean_radius": [1.0, 2.0, 3.0, 4.0], "mean_texture": [2.0, 1.0, 4.0, 3.0]})
    settings = Settings(home=tmp_path)
    with Registry(settings) as registry:
        registry.register("m", LogisticRegression().fit(X, [0, 1, 0, 1]), input_example=X,
                          reference_data=X, stage="production")  # fmt: skip
        thresholds = {"mean texture": 0.1, "mean_radius": 0.2}
        spec = MonitorSpec.from_dict("m", {"drift": {"threshold": thresholds}})
        store = MonitoringStore(registry.engine)
        with pytest.raises(InvalidInput) as caught:
            run_monitor(spec, registry=registry, logbook=Logbook(settings.resolved_logbook_url),
                        store=store, end=END)  # fmt: skip
        assert store.series("m") == []  # nothing ran, nothing was stored
    assert "mean texture" in caught.value.message
    assert "mean_texture" in caught.value.message  # the names it does have
    assert [d.field for d in caught.value.details] == ["monitors.m.drift.mean texture"]
