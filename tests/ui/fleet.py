"""A fleet for scale checks: many models, each with days of hourly monitor results, live
traffic, and one model with per-minute live counts over the whole span. Rows are written with
one bulk statement per table (the stores' own writers go row by row, as replicas do)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import insert

from watchkeeper.registry import Registry
from watchkeeper.registry.live import latency_sketch
from watchkeeper.registry.schema import LiveStatsRow, MonitorResultRow
from watchkeeper.registry.store import NewVersion

FEATURES = ("f0", "f1", "f2", "f3")


def name_of(i: int) -> str:
    return f"model-{i:03d}"


def seed_fleet(registry: Registry, *, models: int, days: int, now: datetime,
               busy_minutes: int = 30) -> int:  # fmt: skip
    """Returns the number of rows written. ``name_of(0)`` has per-minute live counts over all
    ``days``; every model has them over the last ``busy_minutes``."""
    now = now.replace(minute=0, second=0, microsecond=0)
    rng = np.random.default_rng(1)
    for i in range(models):
        for v in (1, 2):
            registry.store.add_version(name_of(i), NewVersion(
                flavor="sklearn", artifact_uri=f"memory://{i}/{v}", manifest_digest="0" * 64,
                metrics={"accuracy": 0.9}, stage="production" if v == 1 else "staging",
            ), actor="fleet")  # fmt: skip
    results = []
    hours = days * 24
    for i in range(models):
        drifting = i % 10 == 0
        for h in range(hours, 0, -1):
            start = now - timedelta(hours=h)
            row = {"model_name": name_of(i), "version": 1, "window_start": start,
                   "window_end": start + timedelta(hours=1), "created_at": start}  # fmt: skip
            share = 0.5 if drifting and h < 12 else float(rng.uniform(0, 0.25))

            def result(check: str, feature: str, statistic: str, value: float,
                       threshold: float | None = None, row: dict = row) -> dict:  # fmt: skip
                status = "fail" if threshold is not None and value >= threshold else "ok"
                return row | {"check": check, "feature": feature, "statistic": statistic,
                              "value": value, "threshold": threshold, "status": status}  # fmt: skip

            results.append(result("drift", "", "drift_share", share, 0.5))
            for f in FEATURES:
                results.append(result("drift", f, "wasserstein", float(rng.uniform(0, 0.09)), 0.1))
                results.append(result("quality", f, "null_rate", float(rng.uniform(0, 0.02)), 0.05))
            accuracy = float(rng.uniform(0.85, 0.95))
            results.append(result("performance", "", "accuracy", accuracy, None))
            results.append(result("performance", "", "label_lag_p50_s", 3600.0))
    live = []
    minute_now = now.replace(minute=0)
    latency = latency_sketch().add(7.0, count=50).add(15.0, count=10).to_dict()
    for i in range(models):
        minutes = days * 24 * 60 if i == 0 else busy_minutes
        for m in range(minutes):
            at = minute_now - timedelta(minutes=m)
            row = {"model_name": name_of(i), "version": 1, "replica": "r1", "window_start": at,
                   "updated_at": at}  # fmt: skip
            live.append(row | {"kind": "requests", "counts": [60, 59, 0, 1]})
            live.append(row | {"kind": "latency_ms", "counts": latency})
    with registry.engine.begin() as connection:
        connection.execute(insert(MonitorResultRow), results)
        connection.execute(insert(LiveStatsRow), live)
    return len(results) + len(live)
