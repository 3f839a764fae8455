"""Running a monitor over one window of the logbook.

The runner is handed open stores (registry, logbook, monitoring store) and does the reading
and recording; every computation is a pure function from the other modules. It returns the
alert changes for the caller to deliver (``watchkeeper.notify``): monitoring never speaks HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from watchkeeper.errors import InvalidInput, NotFound
from watchkeeper.logbook import Logbook
from watchkeeper.models.signature import Signature
from watchkeeper.monitoring.checks import (
    Window,
    drift_results,
    performance_results,
    quality_results,
)
from watchkeeper.monitoring.drift import (
    BinnedColumn,
    DriftPolicy,
    count_window,
    detect_drift_binned,
    domain_classifier_drift,
)
from watchkeeper.monitoring.estimation import estimate_performance
from watchkeeper.monitoring.performance import evaluate
from watchkeeper.monitoring.profile import CategoricalProfile, DatasetProfile
from watchkeeper.monitoring.quality import QualityPolicy, check_quality
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.registry import ModelVersion, Registry
from watchkeeper.registry.live import LATENCY_EDGES_MS, LiveStatsStore
from watchkeeper.registry.monitoring import AlertChanges, MonitoringStore
from watchkeeper.registry.registry import read_table

CHECKS = ("quality", "drift", "prediction_drift", "performance", "estimated", "operational")
ALL_CHECKS = (*CHECKS, "multivariate")  # multivariate needs the raw reference data: opt in


@dataclass(frozen=True, kw_only=True)
class MonitorSpec:
    """What to check for one model: window length, checks and thresholds (serialisable)."""

    model: str
    window: timedelta = timedelta(hours=1)
    version: int | None = None  # default: the production version
    checks: tuple[str, ...] = CHECKS
    drift: DriftPolicy = field(default_factory=DriftPolicy)
    quality: QualityPolicy = field(default_factory=QualityPolicy)
    performance_tolerance: float = 0.0
    max_error_rate: float = 0.01  # operational: share of 5xx answers that fails the check
    max_latency_p99_s: float | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.checks) - set(ALL_CHECKS))
        if unknown:
            raise InvalidInput(f"unknown check(s) {unknown}; choose from {list(ALL_CHECKS)}")
        if self.window <= timedelta(0):
            raise InvalidInput("the window must be longer than zero")


@dataclass(frozen=True)
class MonitorRun:
    window: Window
    rows: int
    labelled: int
    results: tuple[CheckResult, ...]
    alerts: AlertChanges

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.window.model,
            "version": self.window.version,
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "rows": self.rows,
            "labelled_rows": self.labelled,
            "failed": len(self.failed),
            "results": [r.to_dict() for r in self.results],
            "alerts_opened": [a.message for a in self.alerts.opened],
            "alerts_closed": [a.message for a in self.alerts.closed],
        }


def run_monitor(
    spec: MonitorSpec, *, registry: Registry, logbook: Logbook, store: MonitoringStore,
    end: datetime, live: LiveStatsStore | None = None,
) -> MonitorRun:  # fmt: skip
    """Compute every check of ``spec`` on the window ending at ``end``; store and alert."""
    version = registry.get(f"{spec.model}@{spec.version or 'production'}")
    window = Window(spec.model, version.version, end - spec.window, end)
    table = logbook.read(spec.model, window.start, window.end, version=version.version)
    signature = Signature.from_dict(version.signature) if version.signature else None
    profile = registry.profile_of(version)
    frame = _inputs(table, signature)
    results: list[CheckResult] = []
    if table.num_rows == 0:
        results.append(window.result("quality", "", "row_count", 0.0, None, "skipped"))
    else:
        results += _window_checks(spec, window, frame, table, signature, profile)
    if "multivariate" in spec.checks and table.num_rows:
        results += _multivariate(window, version, frame)
    if "estimated" in spec.checks and table.num_rows:
        results += _estimated(window, table)
    labelled = 0
    if "performance" in spec.checks:
        perf, labelled = _performance(spec, window, logbook, version, profile)
        results += perf
    if "operational" in spec.checks and live is not None:
        counts = live.merged(spec.model, window.start, window.end, version=version.version)
        results += operational_results(window, counts, spec)
    store.record(results)
    changes = store.apply_alerts(results)
    return MonitorRun(window, table.num_rows, labelled, tuple(results), changes)


def _window_checks(
    spec: MonitorSpec, window: Window, frame: pd.DataFrame, table: pa.Table,
    signature: Signature | None, profile: DatasetProfile | None,
) -> list[CheckResult]:  # fmt: skip
    out: list[CheckResult] = []
    if "quality" in spec.checks and signature is not None:
        out += quality_results(window, check_quality(frame, signature, profile,
                                                     policy=spec.quality))  # fmt: skip
    if "drift" in spec.checks and profile is not None:
        report = detect_drift_binned(profile, count_window(profile, frame), policy=spec.drift)
        out += drift_results(window, report)
    if "prediction_drift" in spec.checks and profile is not None and profile.predictions:
        outputs = DatasetProfile(row_count=profile.row_count,
                                 features={"prediction": profile.predictions})  # fmt: skip
        current = {"prediction": _predictions(table)}
        report = detect_drift_binned(outputs, count_window(outputs, current), policy=spec.drift)
        out += drift_results(window, report, check="prediction_drift")
    return out


def _multivariate(window: Window, version: ModelVersion, frame: pd.DataFrame) -> list[CheckResult]:
    """Domain classifier on the version's training data (its ``data_uri``) vs the window."""
    if not version.data_uri or not Path(version.data_uri).exists():
        return [window.result("multivariate", "", "domain_auc", None, None, "skipped")]
    reference = read_table(version.data_uri)
    found = domain_classifier_drift(reference, frame, features=list(frame.columns))
    out = [window.result("multivariate", "", "domain_auc", found.auc, found.threshold,
                         "fail" if found.drifted else "ok")]  # fmt: skip
    out += [window.result("multivariate", name, "importance", value, None, "ok")
            for name, value in found.top_features[:5]]  # fmt: skip
    return out


def _estimated(window: Window, table: pa.Table) -> list[CheckResult]:
    """CBPE: classifier performance expected from the logged probabilities, before labels."""
    if "probabilities" not in table.column_names or "classes" not in table.column_names:
        return []
    logged = table.select(["probabilities", "classes"]).drop_null()
    if logged.num_rows == 0:
        return []
    proba = np.asarray(logged.column("probabilities").to_pylist(), dtype=float)
    classes = json.loads(logged.column("classes")[0].as_py())
    estimate = estimate_performance(proba, classes=np.arange(len(classes)))
    return [
        window.result("estimated", "", name, value.estimated, None, "ok")
        for name, value in estimate.metrics.items()
    ]


def operational_results(
    window: Window, counts: Mapping[tuple[int, str], list[int]], spec: MonitorSpec
) -> list[CheckResult]:
    """Requests, throughput, error rate and latency percentiles from the live aggregates."""
    version = window.version or 0
    requests = counts.get((version, "requests"))
    if not requests or requests[0] == 0:
        return []
    total, _ok, client, server = requests
    seconds = max((window.end - window.start).total_seconds(), 1e-9)
    error_rate = server / total
    out = [
        window.result("operational", "", "requests", float(total), None, "ok"),
        window.result("operational", "", "throughput_rps", total / seconds, None, "ok"),
        window.result("operational", "", "client_error_rate", client / total, None, "ok"),
        window.result("operational", "", "error_rate", error_rate, spec.max_error_rate,
                      "fail" if error_rate > spec.max_error_rate else "ok"),
    ]  # fmt: skip
    rows = counts.get((version, "rows"))
    if rows:
        out.append(window.result("operational", "", "rows", float(rows[0]), None, "ok"))
    latency = counts.get((version, "latency_ms"))
    if latency and sum(latency):
        for q in (0.5, 0.95, 0.99):
            value = histogram_quantile(latency, LATENCY_EDGES_MS, q) / 1000.0
            limit = spec.max_latency_p99_s if q == 0.99 else None
            bad = limit is not None and value > limit
            out.append(window.result("operational", "", f"latency_p{round(q * 100)}_s", value,
                                     limit, "fail" if bad else "ok"))  # fmt: skip
    return out


def histogram_quantile(counts: Sequence[int], edges: Sequence[float], q: float) -> float:
    """The upper edge of the bin holding quantile ``q`` (the last, open bin: its lower edge).

    >>> histogram_quantile([0, 5, 5, 0], [1.0, 2.0, 5.0], 0.5)
    2.0
    """
    target = q * sum(counts)
    running = 0
    for i, count in enumerate(counts):
        running += count
        if running >= target and count:
            return float(edges[min(i, len(edges) - 1)])
    return float(edges[-1])


def window_counts(
    registry: Registry, logbook: Logbook, model: str, version: int | None,
    start: datetime, end: datetime,
) -> tuple[DatasetProfile | None, dict[str, BinnedColumn] | None, int | None]:  # fmt: skip
    """A version's reference profile and one logbook window counted on its bins (for reports).

    ``(None, None, None)`` when the version or its profile does not exist; counts are None for
    an empty window.
    """
    try:
        found = registry.get(f"{model}@{version if version is not None else 'production'}")
    except NotFound:
        return None, None, None
    profile = registry.profile_of(found)
    if profile is None:
        return None, None, None
    columns = [f"feature_{name}" for name in profile.features]
    table = logbook.read(model, start, end, version=found.version, columns=columns)
    if table.num_rows == 0:
        return profile, None, 0
    return profile, count_window(profile, _inputs(table, None)), table.num_rows


def _inputs(table: pa.Table, signature: Signature | None) -> pd.DataFrame:
    """The logged inputs under their own names (``feature_age`` -> ``age``)."""
    prefix = "feature_"
    names = [c for c in table.column_names if c.startswith(prefix)]
    frame = table.select(names).to_pandas() if names else pd.DataFrame(index=range(0))
    frame.columns = [c[len(prefix) :] for c in frame.columns]
    if signature is not None:
        frame = frame.reindex(columns=[n for n in signature.names if n in frame.columns])
    return frame


def _predictions(table: pa.Table) -> np.ndarray[Any, Any]:
    numeric = table.column("prediction").to_numpy(zero_copy_only=False)
    if "prediction_label" in table.column_names:
        labels = table.column("prediction_label").to_numpy(zero_copy_only=False)
        if np.isnan(numeric.astype(float)).all() and len(labels):
            return np.asarray(labels, dtype=object)
    return np.asarray(numeric)


def _performance(
    spec: MonitorSpec, window: Window, logbook: Logbook, version: ModelVersion,
    profile: DatasetProfile | None,
) -> tuple[list[CheckResult], int]:  # fmt: skip
    joined = logbook.join_feedback(spec.model, window.start, window.end, version=version.version)
    if joined.num_rows == 0 or "label" not in joined.column_names:
        return [], 0
    frame = joined.to_pandas()
    labelled = frame[frame["label"].notna()]
    coverage = len(labelled) / len(frame)
    out = [window.result("performance", "", "label_coverage", coverage, None, "ok")]
    if len(labelled) < 2:
        return out, len(labelled)
    classify = isinstance(getattr(profile, "predictions", None), CategoricalProfile)
    y_pred = labelled["prediction"].to_numpy(dtype=float)
    report = evaluate("classification" if classify else "regression",
                      labelled["label"].to_numpy(dtype=float), y_pred, n_boot=100)  # fmt: skip
    out += performance_results(window, report, version.metrics,
                               tolerance=spec.performance_tolerance)  # fmt: skip
    lag = labelled["label_delay_s"].median() if "label_delay_s" in labelled else None
    if lag is not None and not pd.isna(lag):
        out.append(window.result("performance", "", "label_lag_p50_s", float(lag), None, "ok"))
    return out, len(labelled)
