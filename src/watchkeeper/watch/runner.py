"""Running a monitor over one window of the logbook.

The runner is handed open stores (registry, logbook, monitoring store) and does the reading
and recording; every computation is a pure function from the other modules. It returns the
alert changes for the caller to deliver (``watchkeeper.notify``): monitoring never speaks HTTP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from watchkeeper.errors import Detail, InvalidInput, NotFound
from watchkeeper.logbook import Logbook
from watchkeeper.logbook.records import merged_values, typed_features
from watchkeeper.models.signature import Signature
from watchkeeper.monitoring.checks import (
    Window,
    drift_results,
    performance_results,
    quality_results,
)
from watchkeeper.monitoring.concept import reference_model_gap, relation_change
from watchkeeper.monitoring.drift import (
    BinnedColumn,
    count_window,
    detect_drift_binned,
    domain_classifier_drift,
)
from watchkeeper.monitoring.html import render_report, report_summary
from watchkeeper.monitoring.labels import (
    label_name,
    match_labels,
    numeric_labels,
    sorted_classes,
)
from watchkeeper.monitoring.performance import evaluate
from watchkeeper.monitoring.profile import CategoricalProfile, DatasetProfile, NumericProfile
from watchkeeper.monitoring.quality import check_quality
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.monitoring.sketch import LogSketch
from watchkeeper.monitoring.spec import MonitorSpec
from watchkeeper.registry import ModelVersion, Registry
from watchkeeper.registry.live import LATENCY_EDGES_MS, LiveStatsStore
from watchkeeper.registry.monitoring import AlertChanges, MonitoringStore
from watchkeeper.registry.registry import read_table
from watchkeeper.watch.estimates import (
    estimated_results,
    skipped_results,
    with_probability_metrics,
)

Progress = Callable[[str], None]  # told the name of each step as it starts


@dataclass(frozen=True)
class MonitorRun:
    window: Window
    rows: int
    labelled: int
    results: tuple[CheckResult, ...]
    alerts: AlertChanges
    seconds: float = 0.0

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.window.model,
            "version": self.window.version,
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "rows": self.rows,
            "labelled_rows": self.labelled,
            "seconds": round(self.seconds, 3),
            "failed": len(self.failed),
            "results": [r.to_dict() for r in self.results],
            "alerts_opened": [a.message for a in self.alerts.opened],
            "alerts_closed": [a.message for a in self.alerts.closed],
        }


def run_monitor(
    spec: MonitorSpec, *, registry: Registry, logbook: Logbook, store: MonitoringStore,
    end: datetime, live: LiveStatsStore | None = None, progress: Progress | None = None,
) -> MonitorRun:  # fmt: skip
    """Compute every check of ``spec`` on the window ending at ``end``; store and alert."""
    step = progress or (lambda _name: None)
    started = time.perf_counter()
    version = registry.get(f"{spec.model}@{spec.version or 'production'}")
    window = Window(spec.model, version.version, end - spec.window, end)
    step("reading the logbook")
    table = logbook.read(spec.model, window.start, window.end, version=version.version)
    signature = Signature.from_dict(version.signature) if version.signature else None
    profile = registry.profile_of(version)
    if profile is not None:
        _refuse_unknown_features(spec, profile)
    inputs = _input_table(table, signature)
    results: list[CheckResult] = []
    if table.num_rows == 0:
        results.append(window.result("quality", "", "row_count", 0.0, None, "skipped"))
    else:
        step("data quality and drift")
        results += _window_checks(spec, window, inputs, table, signature, profile)
    if "multivariate" in spec.checks and table.num_rows:
        step("multivariate drift")
        results += _multivariate(window, version, _inputs(table, signature))
    if "estimated" in spec.checks and table.num_rows:
        step("estimating performance")
        regression = isinstance(getattr(profile, "predictions", None), NumericProfile)
        results += estimated_results(spec, window, table, _inputs(table, signature),
                                     registry=registry, version=version, signature=signature,
                                     regression=regression)  # fmt: skip
    labelled = 0
    if {"performance", "concept"} & set(spec.checks):
        step("joining labels")
        joined = logbook.join_feedback(spec.model, window.start, window.end,
                                       version=version.version)  # fmt: skip
        if "performance" in spec.checks:
            perf, labelled = _performance(spec, window, joined, version, profile)
            results += perf
        if "concept" in spec.checks:
            step("concept drift")
            results += _concept(spec, window, version, joined, _drift_share(results))
    if "operational" in spec.checks and live is not None:
        counts = live.merged(spec.model, window.start, window.end, version=version.version)
        sketches = live.sketches(spec.model, window.start, window.end, version=version.version)
        latency = sketches.get((version.version, "latency_ms"))
        results += operational_results(window, counts, spec, latency=latency)
    step("storing results")
    store.record(results)
    changes = store.apply_alerts(results)
    seconds = time.perf_counter() - started
    return MonitorRun(window, table.num_rows, labelled, tuple(results), changes, seconds)


def _refuse_unknown_features(spec: MonitorSpec, profile: DatasetProfile) -> None:
    """A per-feature drift setting must name a feature (or ``prediction``): a misspelt name
    would otherwise leave that feature on its defaults without a word."""
    known = {*profile.features, "prediction"}
    named = [*spec.drift.method, *spec.drift.threshold]
    unknown = sorted({n for n in named if n not in known})
    if unknown:
        where = f"monitors.{spec.model}.drift"
        raise InvalidInput(
            f"[{where}] names features {spec.model} does not have: {', '.join(unknown)}; its "
            f"features: {', '.join(sorted(profile.features))}",
            details=[Detail(f"{where}.{n}", "no such feature") for n in unknown],
        )


def _window_checks(
    spec: MonitorSpec, window: Window, inputs: pa.Table, table: pa.Table,
    signature: Signature | None, profile: DatasetProfile | None,
) -> list[CheckResult]:  # fmt: skip
    out: list[CheckResult] = []
    counts = count_window(profile, inputs) if profile is not None else None
    if "quality" in spec.checks and signature is not None:
        quality = check_quality(inputs, signature, profile, policy=spec.quality, counts=counts)
        out += quality_results(window, quality)
    if "drift" in spec.checks and profile is not None and counts is not None:
        report = detect_drift_binned(profile, counts, policy=spec.drift)
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


def operational_results(
    window: Window, counts: Mapping[tuple[int, str], list[int]], spec: MonitorSpec,
    *, latency: LogSketch | None = None,
) -> list[CheckResult]:  # fmt: skip
    """Requests, throughput, error rate, latency percentiles, rows, CPU seconds and estimated
    cost (CPU-hours times ``spec.price_per_cpu_hour``) from the live aggregates. Latency comes
    from the live latency sketch; without one, from an old histogram in ``counts``."""
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
    cpu = counts.get((version, "cpu_us"))
    if cpu:  # CPU time inside the model's predict calls, summed over replicas
        cpu_s = cpu[0] / 1e6
        cost = cpu_s / 3600.0 * spec.price_per_cpu_hour
        out += [window.result("operational", "", "cpu_seconds", cpu_s, None, "ok"),
                window.result("operational", "", "estimated_cost", cost, None, "ok")]  # fmt: skip
    histogram = counts.get((version, "latency_ms"))
    if (latency is not None and latency.count) or (histogram and sum(histogram)):
        for q in (0.5, 0.95, 0.99):
            if latency is not None and latency.count:
                value = latency.quantile(q) / 1000.0
            else:
                value = histogram_quantile(histogram or [], LATENCY_EDGES_MS, q) / 1000.0
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
    signature = Signature.from_dict(found.signature) if found.signature else None
    return profile, count_window(profile, _input_table(table, signature)), table.num_rows


def model_report(
    registry: Registry, logbook: Logbook, name: str, *, window: timedelta, since: timedelta,
    version: int | None = None, now: datetime | None = None,
) -> str:  # fmt: skip
    """The self-contained HTML report of one model from its stored results and logbook."""
    now = now or datetime.now(UTC)
    store = MonitoringStore(registry.engine)
    history = store.series(name, since=now - since)
    latest = store.latest(name)
    wanted = version or max((r.version for r in latest if r.version is not None), default=None)
    profile, counts, rows = window_counts(registry, logbook, name, wanted, now - window, now)
    summary = report_summary(name, wanted, latest, rows)
    return render_report(title=f"watchkeeper: {name}", summary=summary, results=latest,
                         reference=profile, current_counts=counts, history=history)  # fmt: skip


def _input_table(table: pa.Table, signature: Signature | None) -> pa.Table:
    """The logged inputs under their own names, as Arrow (counting needs no pandas copy), each
    in its signature type's encoding (bool features as booleans, also from older segments)."""
    names = [c for c in table.column_names if c.startswith("feature_")]
    inputs = table.select(names).rename_columns([n.removeprefix("feature_") for n in names])
    if signature is not None:
        inputs = inputs.select([n for n in signature.names if n in inputs.column_names])
        inputs = typed_features(inputs, {c.name: c.dtype for c in signature.columns})
    return inputs


def _inputs(table: pa.Table, signature: Signature | None) -> pd.DataFrame:
    """The logged inputs under their own names (``feature_age`` -> ``age``)."""
    inputs = _input_table(table, signature)
    return inputs.to_pandas() if inputs.num_columns else pd.DataFrame(index=range(0))


def _predictions(table: pa.Table) -> np.ndarray[Any, Any]:
    numeric = table.column("prediction").to_numpy(zero_copy_only=False)
    if "prediction_label" in table.column_names:
        labels = table.column("prediction_label").to_numpy(zero_copy_only=False)
        if np.isnan(numeric.astype(float)).all() and len(labels):
            return np.asarray(labels, dtype=object)
    return np.asarray(numeric)


def _performance(
    spec: MonitorSpec, window: Window, joined: pa.Table, version: ModelVersion,
    profile: DatasetProfile | None,
) -> tuple[list[CheckResult], int]:  # fmt: skip
    if joined.num_rows == 0 or "label" not in joined.column_names:
        return [], 0
    frame = joined.to_pandas()
    labels = merged_values(joined, "label", "label_text")  # numbers, booleans and strings
    has_label = pd.notna(labels)
    labelled = frame[has_label]
    coverage = len(labelled) / len(frame)
    out = [window.result("performance", "", "label_coverage", coverage, None, "ok")]
    if len(labelled) < 2:
        return out, len(labelled)
    predictions = merged_values(joined, "prediction", "prediction_label")[has_label]
    scored = _scored(labels[has_label], predictions, _logged_classes(joined), profile)
    # labels of a type the model's classes cannot be: never silent (ok at 0 closes the alert)
    out.append(window.result("performance", "", "mismatched_labels", float(scored.mismatched),
                             0.0, "fail" if scored.mismatched else "ok"))  # fmt: skip
    if len(scored.y_true) < 2:
        return out, len(labelled)
    report = evaluate(scored.task, scored.y_true, scored.y_pred, classes=scored.classes,
                      n_boot=100)  # fmt: skip
    skips: dict[str, str] = {}
    if scored.kept is not None:  # ROC AUC, log loss, Brier from the logged probabilities
        report, skips = with_probability_metrics(report, labelled[scored.kept], scored.y_true)
    out += performance_results(window, report, version.metrics,
                               tolerance=spec.performance_tolerance)  # fmt: skip
    out += skipped_results(window, "performance", skips)
    lag = labelled["label_delay_s"].median() if "label_delay_s" in labelled else None
    if lag is not None and not pd.isna(lag):
        out.append(window.result("performance", "", "label_lag_p50_s", float(lag), None, "ok"))
    return out, len(labelled)


@dataclass(frozen=True)
class _Scored:
    """Labelled rows ready to score (see ``monitoring.labels``): class names for a classifier
    (``kept``: the labelled rows scored), numbers for a regressor; ``mismatched`` counts the
    labels that cannot be scored."""

    task: Literal["classification", "regression"]
    y_true: np.ndarray[Any, Any]
    y_pred: np.ndarray[Any, Any]
    classes: tuple[str, ...] | None
    mismatched: int
    kept: np.ndarray[Any, Any] | None = None


def _scored(labels: np.ndarray[Any, Any], predictions: np.ndarray[Any, Any],
            classes: list[str] | None, profile: DatasetProfile | None) -> _Scored:  # fmt: skip
    """A classifier (logged classes, label predictions or a categorical prediction profile)
    scores labels matched to its classes; a regressor, labels read as numbers."""
    reference = getattr(profile, "predictions", None)
    if isinstance(reference, CategoricalProfile) and classes is None:
        classes = sorted_classes(reference.frequencies)
    if classes is not None or any(isinstance(v, str) for v in predictions.tolist()):
        found = match_labels(labels, predictions, classes=classes)
        present = {*found.y_true.tolist(), *found.y_pred.tolist()}  # as scikit-learn's default
        scored = tuple(c for c in found.classes if c in present)
        return _Scored("classification", found.y_true, found.y_pred, scored, found.mismatched,
                       found.kept)  # fmt: skip
    truth, bad, _ = numeric_labels(labels)
    guessed = np.array([np.nan if v is None else float(v) for v in predictions.tolist()])
    present = ~np.isnan(truth) & ~np.isnan(guessed)
    return _Scored("regression", truth[present], guessed[present], None, bad)


def _logged_classes(table: pa.Table) -> list[str] | None:
    """The class names a classifier logged with its predictions (one list per version)."""
    if "classes" not in table.column_names:
        return None
    logged = table.column("classes").drop_null()
    return [str(c) for c in json.loads(logged[0].as_py())] if len(logged) else None


def _drift_share(results: Sequence[CheckResult]) -> float | None:
    shares = [r.value for r in results if r.check == "drift" and r.statistic == "drift_share"]
    return shares[0] if shares else None


MIN_CONCEPT_ROWS = 50


def _concept_labels(
    reference: npt.NDArray[np.object_], window: npt.NDArray[np.object_]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """The reference's and the window's labels as numbers the concept models learn from, and
    which window rows have one. Numbers stay as they are (a regression's too); when either side
    holds text, labels are matched to the reference's classes (``monitoring.labels``) and
    numbered by class, so ``"churned"`` on both sides is one class; window labels of a type no
    class can be are left out."""
    present = np.array([v is not None for v in window], dtype=bool)
    text = any(isinstance(v, str) for v in (*reference.tolist(), *window[present].tolist()))
    if not text:
        numbers = np.array([np.nan if v is None else float(v) for v in reference.tolist()])
        return numbers, window[present].astype(float), present
    classes = sorted_classes({label_name(v) for v in reference.tolist() if v is not None})
    ref = match_labels(reference, reference, classes=classes)
    cur = match_labels(window, window, classes=classes)
    number = {name: float(i) for i, name in enumerate(dict.fromkeys((*ref.classes, *cur.classes)))}
    codes = np.array([number[n] for n in ref.y_true], dtype=float)
    full = np.full(len(reference), np.nan)
    full[ref.kept] = codes
    return full, np.array([number[n] for n in cur.y_true], dtype=float), cur.kept


def _concept(
    spec: MonitorSpec, window: Window, version: ModelVersion, joined: pa.Table,
    drift_share: float | None,
) -> list[CheckResult]:  # fmt: skip
    """Concept drift: a model trained on the training data (features -> label) scored on the
    labelled window; a gap with steady inputs is a changed relation, not moved inputs. For
    binary labels, also which features' conditional label rate moved."""
    skipped = [window.result("concept", "", "reference_model_gap", None, None, "skipped")]
    if not version.data_uri or not Path(version.data_uri).exists():
        return skipped
    reference = read_table(version.data_uri)
    if spec.label_column not in reference.columns or not {"label", "label_text"} & set(
        joined.column_names
    ):
        return skipped
    ref_y, labels, keep = _concept_labels(
        reference[spec.label_column].to_numpy(dtype=object),
        merged_values(joined, "label", "label_text"),
    )
    reference = reference[~np.isnan(ref_y)]  # rows of the training file without a label
    ref_y = ref_y[~np.isnan(ref_y)]
    current = joined.filter(pa.array(keep))
    frame = _inputs(current, None)
    features = [c for c in frame.columns if c in reference.columns
                and pd.api.types.is_numeric_dtype(reference[c])
                and pd.api.types.is_numeric_dtype(frame[c])]  # fmt: skip
    if len(labels) < MIN_CONCEPT_ROWS or not features or np.unique(ref_y).size < 2:
        return skipped
    ref_x = reference[features].fillna(reference[features].median())
    cur_x = frame[features].fillna(reference[features].median())
    tolerance = spec.performance_tolerance or 0.05
    gap = reference_model_gap(ref_x, ref_y.astype(float), cur_x, labels.astype(float),
                              features=features, input_drift=drift_share,
                              gap_tolerance=tolerance)  # fmt: skip
    out = [window.result("concept", "", "reference_model_gap", gap.gap, tolerance,
                         "fail" if gap.verdict == "concept_drift" else "ok")]  # fmt: skip
    if np.unique(np.concatenate([ref_y.astype(float), labels.astype(float)])).size == 2:
        change = relation_change(ref_x, ref_y.astype(float), cur_x, labels.astype(float),
                                 features=features)  # fmt: skip
        out += [window.result("concept", f.feature, "relation_p_value", f.p_value,
                              change.alpha, "fail" if f.changed else "ok")
                for f in change.features]  # fmt: skip
    return out
