"""The probability side of a monitor run: estimates before labels, and probability metrics after.

Before labels, a classifier's performance is estimated from the logged probabilities (CBPE) and
a regressor's MAE and RMSE from its inputs and predictions (direct loss estimation). Both learn
from the version's *labelled reference*: its training data (``data_uri``) with the monitor's
``label_column``, scored by the registered model. Without one, classifier estimates use the raw
probabilities and set no threshold, regression is not estimated, and a ``skipped`` result says
why in its ``feature`` field. Once labels arrive, ROC AUC, log loss and Brier score join the
realised metrics when the window's probabilities were logged; otherwise they are ``skipped``
with the reason, never zero. The statistics are in :mod:`watchkeeper.monitoring.estimation`
and :mod:`watchkeeper.monitoring.loss_estimation`; this module only reads and matches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from watchkeeper.errors import InvalidInput
from watchkeeper.models.loaded import LoadedModel
from watchkeeper.models.signature import Signature
from watchkeeper.monitoring.checks import Window, estimate_results
from watchkeeper.monitoring.estimation import (
    ClassifierReference,
    estimate_performance,
    fit_classifier_reference,
)
from watchkeeper.monitoring.labels import match_labels
from watchkeeper.monitoring.loss_estimation import fit_loss_estimator
from watchkeeper.monitoring.performance import PerformanceReport, evaluate
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.monitoring.spec import MonitorSpec
from watchkeeper.registry import ModelVersion, Registry
from watchkeeper.registry.registry import read_table

MAX_REFERENCE_ROWS = 50_000  # a larger reference is subsampled (seeded) before fitting
PROBABILITY_METRICS = ("roc_auc", "log_loss", "brier")


@dataclass(frozen=True)
class LabelledReference:
    features: pd.DataFrame
    labels: np.ndarray[Any, Any]
    model: LoadedModel


def labelled_reference(
    spec: MonitorSpec, registry: Registry, version: ModelVersion, signature: Signature | None
) -> LabelledReference | str:
    """The version's training data with its labels and the model, or why there is none."""
    label = spec.label_column
    if not version.data_uri:
        return "no labelled reference: registered without a data file"
    if not Path(version.data_uri).exists():
        return f"no labelled reference: {version.data_uri} is missing"
    frame = read_table(version.data_uri)
    if label not in frame.columns:
        return f"no labelled reference: the data has no '{label}' column"
    frame = frame[frame[label].notna()]
    names = signature.names if signature is not None else [c for c in frame.columns if c != label]
    if len(frame) < 20 or any(n not in frame.columns for n in names):
        return "no labelled reference: too few labelled rows or missing features"
    if len(frame) > MAX_REFERENCE_ROWS:
        frame = frame.sample(MAX_REFERENCE_ROWS, random_state=0)
    model = registry.load_version(version)
    return LabelledReference(frame[names].reset_index(drop=True), frame[label].to_numpy(), model)


def scored(reference: LabelledReference, *, proba: bool) -> np.ndarray[Any, Any] | str:
    """The model's probabilities (or predictions) on the reference, or why it could not score
    it: the run goes on without an estimate rather than failing."""
    try:
        x = reference.features
        out = reference.model.predict_proba(x) if proba else reference.model.predict(x)
        return np.asarray(out, dtype=np.float64)
    except (InvalidInput, ValueError, TypeError) as exc:
        return f"the model could not score its reference: {exc}"


def class_codes(values: Any, names: Sequence[str]) -> np.ndarray[Any, Any] | None:
    """Column positions of ``values`` among the logged class names, matched by the rule of
    :mod:`watchkeeper.monitoring.labels`; None when one is missing or matches no class.

    >>> class_codes([1.0, 0.0, 1.0], ["0", "1"]).tolist()
    [1, 0, 1]
    >>> class_codes(["yes", "maybe"], ["no", "yes"]) is None
    True
    """
    labels = np.asarray(values, dtype=object).ravel()
    found = match_labels(labels, labels, classes=list(names))
    if found.mismatched or not found.kept.all() or len(found.classes) != len(names):
        return None
    index = {name: i for i, name in enumerate(names)}
    return np.asarray([index[name] for name in found.y_true.tolist()], dtype=np.intp)


def _logged(probabilities: Any, classes: Any) -> tuple[np.ndarray[Any, Any], list[str]] | str:
    """The probability matrix and class names of rows that all logged them, or why not."""
    texts = set(classes)
    if len(probabilities) == 0 or None in texts or any(p is None for p in probabilities):
        return "no probabilities logged"
    if len(texts) > 1:
        return "the class lists logged differ between rows"
    names = [str(n) for n in json.loads(texts.pop())]
    proba = np.asarray([np.asarray(p, dtype=np.float64) for p in probabilities])
    if proba.ndim != 2 or proba.shape[1] != len(names) or len(names) < 2:
        return "the logged probabilities do not match the logged classes"
    return proba, names


def estimated_results(
    spec: MonitorSpec, window: Window, table: pa.Table, inputs: pd.DataFrame, *,
    registry: Registry, version: ModelVersion, signature: Signature | None, regression: bool,
) -> list[CheckResult]:  # fmt: skip
    """The ``estimated`` check of one window (``inputs``: its features under their names)."""
    have = [c for c in ("probabilities", "classes") if c in table.column_names]
    if len(have) == 2 and table.column("probabilities").null_count < table.num_rows:
        logged = table.select(have).drop_null()
        found = _logged(logged.column("probabilities").to_pylist(),
                        logged.column("classes").to_pylist())  # fmt: skip
        if isinstance(found, str):
            return skipped_results(window, "estimated", {"accuracy": found})
        return _classifier(spec, window, *found, registry=registry, version=version,
                           signature=signature)  # fmt: skip
    if not regression:
        return skipped_results(
            window, "estimated", dict.fromkeys(["accuracy"], "no probabilities logged")
        )
    return _regression(spec, window, table, inputs, registry=registry, version=version,
                       signature=signature)  # fmt: skip


def _regression(
    spec: MonitorSpec, window: Window, table: pa.Table, inputs: pd.DataFrame, *,
    registry: Registry, version: ModelVersion, signature: Signature | None,
) -> list[CheckResult]:  # fmt: skip
    def skip(why: str) -> list[CheckResult]:
        return skipped_results(window, "estimated", dict.fromkeys(["mae", "rmse"], why))

    reference = labelled_reference(spec, registry, version, signature)
    if isinstance(reference, str):
        return skip(reference)
    try:
        ref_y = reference.labels.astype(np.float64)
    except (TypeError, ValueError):
        return skip("reference labels are not numbers")
    missing = [n for n in reference.features.columns if n not in inputs.columns]
    if missing:
        return skip(f"features not logged: {', '.join(missing)}")
    pred = table.column("prediction").to_numpy(zero_copy_only=False).astype(np.float64)
    rows = np.isfinite(pred)
    if not rows.any():
        return skip("no numeric predictions logged")
    ref_pred = scored(reference, proba=False)
    if isinstance(ref_pred, str):
        return skip(ref_pred)
    estimator = fit_loss_estimator(reference.features, ref_pred, ref_y)
    estimate = estimator.estimate(inputs[rows].reset_index(drop=True), pred[rows])
    return estimate_results(window, estimate, estimator.baselines,
                            tolerance=spec.performance_tolerance)  # fmt: skip


def _classifier(
    spec: MonitorSpec, window: Window, proba: np.ndarray[Any, Any], names: list[str], *,
    registry: Registry, version: ModelVersion, signature: Signature | None,
) -> list[CheckResult]:  # fmt: skip
    fitted = _fit_classifier(spec, names, registry=registry, version=version,
                             signature=signature)  # fmt: skip
    if isinstance(fitted, str):
        raw = estimate_performance(proba, classes=np.arange(len(names)))
        return [*estimate_results(window, raw, None),
                *skipped_results(window, "estimated", {"calibration": fitted})]  # fmt: skip
    estimate = estimate_performance(proba, calibrator=fitted.calibrator)
    return estimate_results(window, estimate, fitted.baselines,
                            tolerance=spec.performance_tolerance)  # fmt: skip


def _fit_classifier(
    spec: MonitorSpec, names: list[str], *, registry: Registry, version: ModelVersion,
    signature: Signature | None,
) -> ClassifierReference | str:  # fmt: skip
    """Calibration and baselines from the labelled reference, or why there are none."""
    reference = labelled_reference(spec, registry, version, signature)
    if isinstance(reference, str):
        return reference
    proba = scored(reference, proba=True)
    if isinstance(proba, str):
        return proba
    codes = class_codes(reference.labels, names)
    if codes is None or proba.shape != (codes.size, len(names)):
        return f"no labelled reference: its labels are not among the classes {names}"
    return fit_classifier_reference(proba, codes, classes=np.arange(len(names)))


def with_probability_metrics(
    report: PerformanceReport, labelled: pd.DataFrame, y_true: Any, *, n_boot: int = 100
) -> tuple[PerformanceReport, dict[str, str]]:
    """``report`` with ROC AUC, log loss and Brier score of the labelled rows' logged
    probabilities; those it cannot compute are absent and mapped to the reason."""
    if "probabilities" not in labelled.columns or "classes" not in labelled.columns:
        return report, dict.fromkeys(PROBABILITY_METRICS, "no probabilities logged")
    found = _logged(list(labelled["probabilities"]), list(labelled["classes"]))
    if isinstance(found, str):
        return report, dict.fromkeys(PROBABILITY_METRICS, found)
    proba, names = found
    codes = class_codes(y_true, names)
    if codes is None:
        return report, dict.fromkeys(PROBABILITY_METRICS, "labels not among the logged classes")
    extra = evaluate("classification", codes, proba=proba, classes=np.arange(len(names)),
                     metrics=list(PROBABILITY_METRICS), n_boot=n_boot)  # fmt: skip
    metrics = {name: m for name, m in extra.metrics.items() if np.isfinite(m.value)}
    skips = {name: "undefined: a class has no labelled rows"
             for name in PROBABILITY_METRICS if name not in metrics}  # fmt: skip
    return replace(report, metrics={**report.metrics, **metrics}), skips


def skipped_results(window: Window, check: str, skips: Mapping[str, str]) -> list[CheckResult]:
    """``skipped`` results, the reason in the ``feature`` field."""
    return [window.result(check, why, name, None, None, "skipped") for name, why in skips.items()]
