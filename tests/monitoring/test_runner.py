"""The monitor runner's own checks: operational figures and estimated performance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook, PredictionBatch
from watchkeeper.monitoring.checks import Window
from watchkeeper.monitoring.runner import (
    MonitorSpec,
    histogram_quantile,
    operational_results,
    run_monitor,
)
from watchkeeper.registry import Registry
from watchkeeper.registry.live import LATENCY_EDGES_MS, LiveStatsStore
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.serving.live import LiveStats, Publisher

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
