"""A registry with what the dashboard draws: three served models (one drifting, one in a canary,
one with a production history to roll back), two days of hourly monitor results, alerts and
an hour and a half of live traffic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sqlalchemy import insert

from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook
from watchkeeper.monitoring.profile import bin_counts
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.registry import Registry
from watchkeeper.registry.live import LiveCounts, latency_sketch
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.registry.schema import LiveStatsRow
from watchkeeper.rollout.controller import Rollouts
from watchkeeper.rollout.plan import Plan

DRIFTED = "churn"  # its newest windows drift: the overview shows it in the alert colour
HISTORY = "iris"  # v1 then v2 in production: a rollback goes back to v1
CANARY = "fraud"  # v2 in a canary beside v1
HOURS = 48


@dataclass
class Seeded:
    registry: Registry
    X: pd.DataFrame
    now: datetime


def iris() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in X.columns]
    return X, y


def seed(settings: Settings, *, now: datetime | None = None) -> Seeded:
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    X, y = iris()
    registry = Registry(settings)

    def fit(c: float) -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=1000).fit(X, y)

    for name in (HISTORY, DRIFTED, CANARY):
        registry.register(name, fit(1.0), input_example=X, reference_data=X,
                          metrics={"accuracy": 0.95}, run_id="run-1",
                          run_url="https://mlflow.example/runs/1")  # fmt: skip
        registry.promote(name, 1, "production")
    registry.register(HISTORY, fit(0.1), input_example=X, reference_data=X,
                      metrics={"accuracy": 0.93},
                      tags={"gate": "passed", "parent_version": "1"})  # fmt: skip
    registry.promote(HISTORY, 2, "production")
    registry.register(CANARY, fit(0.5), input_example=X, reference_data=X, stage="staging")
    rollouts = Rollouts(registry, logbook=Logbook(settings.resolved_logbook_url))
    rollouts.start(CANARY, "canary", 2, plan=Plan(min_step_seconds=3600), reason="seeded")
    monitoring = MonitoringStore(registry.engine)
    results = [r for name in (HISTORY, DRIFTED, CANARY) for r in _results(name, X, now)]
    monitoring.record(results)
    newest = now - timedelta(hours=1)
    monitoring.apply_alerts([r for r in results if r.window_start == newest])
    write_live(registry, _live(registry, X, now))
    return Seeded(registry, X, now)


def _results(name: str, X: pd.DataFrame, now: datetime) -> list[CheckResult]:
    out = []
    rng = np.random.default_rng(len(name))
    version = 2 if name == HISTORY else 1
    for h in range(HOURS, 0, -1):
        start = now - timedelta(hours=h)
        drifting = name == DRIFTED and h <= 6

        def r(check: str, feature: str, statistic: str, value: float, threshold: float | None,
              status: str, start: datetime = start) -> CheckResult:  # fmt: skip
            return CheckResult(model=name, version=version, window_start=start,
                               window_end=start + timedelta(hours=1), check=check,
                               feature=feature, statistic=statistic, value=value,
                               threshold=threshold, status=status)  # type: ignore[arg-type]  # fmt: skip

        for i, feature in enumerate(X.columns):
            moved = drifting and i < 3
            value = float(rng.uniform(0.3, 0.6) if moved else rng.uniform(0.0, 0.05))
            out.append(r("drift", feature, "wasserstein", value, 0.1, "fail" if moved else "ok"))
            out.append(r("quality", feature, "null_rate", float(rng.uniform(0, 0.01)), 0.05,
                         "ok"))  # fmt: skip
            out.append(r("quality", feature, "out_of_range", 0.08 if moved else 0.0, 0.01,
                         "fail" if moved else "ok"))  # fmt: skip
        share = 0.75 if drifting else 0.0
        out.append(r("drift", "", "drift_share", share, 0.5, "fail" if drifting else "ok"))
        accuracy = 0.78 if drifting else float(rng.uniform(0.93, 0.97))
        out.append(r("performance", "", "accuracy", accuracy, 0.95,
                     "fail" if drifting else "ok"))  # fmt: skip
        out.append(r("performance", "", "label_coverage", 0.4, None, "ok"))
        out.append(r("performance", "", "label_lag_p50_s", 5400.0, None, "ok"))
        out.append(r("estimated", "", "accuracy", float(rng.uniform(0.9, 0.96)), None, "ok"))
    return out


def _live(registry: Registry, X: pd.DataFrame, now: datetime) -> list[LiveCounts]:
    rng = np.random.default_rng(7)
    profile = registry.profile(f"{HISTORY}@2")
    assert profile is not None
    out = []
    for minute in range(90, -1, -1):
        at = now - timedelta(minutes=minute)
        for name, version, n in ((HISTORY, 2, 120), (DRIFTED, 1, 60), (CANARY, 1, 90),
                                 (CANARY, 2, 10)):  # fmt: skip
            errors = 1 if name == DRIFTED and minute % 3 == 0 else 0
            latency = latency_sketch().update(rng.gamma(2.0, 2.0, n))
            out += [LiveCounts(name, version, "replica-1", at, "requests",
                               (n, n - errors, 0, errors)),
                    LiveCounts(name, version, "replica-1", at, "latency_ms", latency)]  # fmt: skip
            rows = X.sample(n=min(n, len(X)), random_state=minute)
            for feature in X.columns:
                counts = bin_counts(rows[feature].to_numpy(), profile.features[feature].edges)
                out.append(LiveCounts(name, version, "replica-1", at, f"feature:{feature}",
                                      tuple(int(c) for c in counts)))  # fmt: skip
    return out


def write_live(registry: Registry, items: list[LiveCounts]) -> None:
    """New rows in one statement (``LiveStatsStore.write`` upserts one by one, as replicas do)."""
    rows = [{"model_name": i.model, "version": i.version, "replica": i.replica,
             "window_start": i.window_start, "kind": i.kind, "counts": i.stored(),
             "updated_at": i.window_start} for i in items]  # fmt: skip
    with registry.engine.begin() as connection:
        connection.execute(insert(LiveStatsRow), rows)
