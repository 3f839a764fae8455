"""Performance before the labels arrive: confidence-based performance estimation (CBPE).

When a classifier's probabilities are calibrated, row ``i`` belongs to class ``c`` with
probability ``p[i, c]``. The **expected confusion matrix** is then
``E[C][c, j] = sum of p[i, c] over rows predicted j``, and each metric is estimated by putting
that matrix into its formula (as NannyML's CBPE does). For accuracy this is exactly its
expectation (the mean probability of the predicted class); for precision, recall and F1 it is a
ratio of expectations, close to the expected ratio once a window has a few hundred rows.

**ROC AUC** is the area under the *expected* ROC curve: rows are ranked by the model's own
scores and each counts as ``p`` of a positive and ``1 - p`` of a negative (a soft label); the
cumulative expected true and false positives trace the curve, integrated by the trapezoid rule
as for the realised AUC. Multiclass: one-vs-rest, macro average over classes.

**Calibration** is what the method trusts, so a miscalibrated model gives biased estimates.
:func:`fit_calibrator` learns a monotone map on a labelled reference with scikit-learn's
``IsotonicRegression`` (one-vs-rest per class, clipped outside the fitted range, multiclass rows
renormalised; chosen over Platt scaling because it assumes no shape). Calibrated probabilities
only serve as soft labels: predicted labels and the AUC ranking stay the model's own, since
those are what the realised metrics will measure.

**When an estimate alerts.** :func:`fit_classifier_reference` fits the calibrator on the labelled
reference and records, per metric, a :class:`Baseline`: the metric's realised value on the
reference and its chance spread. The spread comes from a bootstrap over the reference's rows
(standard deviation ``s`` over ``N`` rows) and is scaled to a window of ``n`` rows as
``s * sqrt(N / n)`` (the ``1 / sqrt(n)`` law of a mean; for ratio metrics and the AUC a first-order
approximation). An estimate is worse than the reference when it falls below the reference value
by more than ``z`` such standard deviations (``z = 3`` by default, as CBPE's reference bands) plus
an optional tolerance; lower-is-better metrics (the regression losses of
:mod:`watchkeeper.monitoring.loss_estimation`) mirror the rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring import _metric_kernels as k
from watchkeeper.monitoring._metric_kernels import Average, FloatArray, IntArray
from watchkeeper.monitoring._performance_report import Direction
from watchkeeper.monitoring.performance import METRICS

__all__ = [
    "BAND_Z",
    "ESTIMABLE",
    "Baseline",
    "Calibrator",
    "ClassifierReference",
    "EstimatedPerformance",
    "PerformanceEstimate",
    "estimate_performance",
    "fit_calibrator",
    "fit_classifier_reference",
    "reference_baselines",
]

BAND_Z = 3.0
"""Standard deviations of chance variation an estimate may fall short of the reference by."""

_AVERAGED: dict[str, tuple[str, Average]] = {
    (kind if average == "binary" else f"{kind}_{average}"): (kind, average)
    for kind in ("precision", "recall", "f1")
    for average in ("binary", "macro", "weighted")
}
ESTIMABLE: tuple[str, ...] = ("accuracy", *_AVERAGED, "roc_auc")
"""Metrics :func:`estimate_performance` can estimate (binary-only ones need two classes)."""


@dataclass(frozen=True)
class Calibrator:
    """Isotonic maps from a model's probabilities to observed frequencies, one per class
    (one for the positive class of a binary model)."""

    classes: tuple[Any, ...]
    maps: tuple[Any, ...]

    def transform(self, proba: npt.ArrayLike) -> FloatArray:
        """Calibrated ``(n, classes)`` probabilities."""
        raw = k.proba_matrix(proba, np.shape(proba)[0])
        if raw.shape[1] != len(self.classes):
            raise InvalidInput(f"calibrator has {len(self.classes)} classes, got {raw.shape[1]}")
        if len(self.maps) == 1:
            pos = np.asarray(self.maps[0].predict(raw[:, 1]), dtype=np.float64)
            return np.column_stack([1.0 - pos, pos])
        cols = np.column_stack([m.predict(raw[:, c]) for c, m in enumerate(self.maps)])
        sums = cols.sum(axis=1, keepdims=True)
        uniform = np.full_like(cols, 1.0 / cols.shape[1])
        return np.where(sums > 0, cols / np.where(sums > 0, sums, 1.0), uniform)


def fit_calibrator(
    reference_proba: npt.ArrayLike,
    reference_y: npt.ArrayLike,
    *,
    classes: npt.ArrayLike | None = None,
) -> Calibrator:
    """Fit isotonic calibration on a labelled reference (``classes`` in column order,
    by default the sorted labels of ``reference_y``).

    >>> cal = fit_calibrator([0.1, 0.4, 0.6, 0.9], [0, 0, 1, 1])
    >>> cal.transform([0.2, 0.8])[:, 1].tolist()
    [0.0, 1.0]
    """
    d = k.prepare(reference_y, proba=reference_proba, classes=classes)
    raw: FloatArray = k.need(d.proba, "probabilities")
    true: IntArray = k.need(d.true, "labels")
    columns = [1] if raw.shape[1] == 2 else range(raw.shape[1])
    maps = tuple(
        IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
            raw[:, c], (true == c).astype(np.float64)
        )
        for c in columns
    )
    return Calibrator(classes=d.classes, maps=maps)


@dataclass(frozen=True)
class EstimatedPerformance:
    """A metric estimated without labels, and its realised value once labels are known."""

    metric: str
    estimated: float
    realised: float | None = None

    @property
    def error(self) -> float | None:
        """Estimated minus realised (None until realised)."""
        return None if self.realised is None else self.estimated - self.realised

    def to_dict(self) -> dict[str, object]:
        return {"metric": self.metric, "estimated": self.estimated, "realised": self.realised}


@dataclass(frozen=True)
class PerformanceEstimate:
    """Estimates for one window of predictions."""

    n: int
    calibrated: bool
    metrics: Mapping[str, EstimatedPerformance]

    def __getitem__(self, name: str) -> EstimatedPerformance:
        return self.metrics[name]

    def to_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "calibrated": self.calibrated,
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
        }


def _expected_auc(raw: FloatArray, soft: FloatArray) -> float:
    ones = np.ones((1, raw.shape[0]))
    if raw.shape[1] == 2:
        return float(k.auc(raw[:, 1], soft[:, 1], ones)[0])
    return float(np.mean([k.auc(raw[:, c], soft[:, c], ones)[0] for c in range(raw.shape[1])]))


def _estimate(name: str, soft: FloatArray, raw: FloatArray, pred: IntArray) -> float:
    if name == "roc_auc":
        return _expected_auc(raw, soft)
    expected = np.asarray(k.onehot(pred, raw.shape[1]).T @ soft, dtype=np.float64).T[None]
    if name == "accuracy":
        return float(np.trace(expected[0]) / raw.shape[0])
    kind, average = _AVERAGED[name]
    return float(k.from_confusion(kind, average, expected, raw.shape[1] - 1)[0])


def _default_metrics(n_classes: int) -> list[str]:
    if n_classes == 2:
        return ["accuracy", "precision", "recall", "f1", "roc_auc"]
    return ["accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc"]


def estimate_performance(
    proba: npt.ArrayLike,
    *,
    classes: npt.ArrayLike | None = None,
    y_pred: npt.ArrayLike | None = None,
    calibrator: Calibrator | None = None,
    metrics: Sequence[str] | None = None,
    y_true: npt.ArrayLike | None = None,
) -> PerformanceEstimate:
    """Estimate classification metrics from probabilities alone (method in the module doc).

    ``proba`` is ``(n,)`` for the greater label or ``(n, classes)``; ``classes`` (column order)
    defaults to the calibrator's, else ``0..k-1``. ``y_pred`` defaults to the most probable class.
    With ``y_true`` (labels that came later) each estimate carries its realised value.

    >>> est = estimate_performance([0.9, 0.8, 0.3, 0.1], y_true=[1, 1, 0, 1])
    >>> round(est["accuracy"].estimated, 3), est["accuracy"].realised
    (0.825, 0.75)
    """
    raw = k.proba_matrix(proba, np.shape(proba)[0])
    cls = np.asarray(
        classes
        if classes is not None
        else calibrator.classes
        if calibrator
        else range(raw.shape[1])
    )
    if cls.size != raw.shape[1]:
        raise InvalidInput(f"{cls.size} classes for {raw.shape[1]} probability columns")
    pred = raw.argmax(axis=1) if y_pred is None else k.encode(np.asarray(y_pred).ravel(), cls)
    soft = raw if calibrator is None else calibrator.transform(raw)
    names = list(metrics) if metrics is not None else _default_metrics(raw.shape[1])
    unknown = sorted(set(names) - set(ESTIMABLE))
    if unknown:
        raise InvalidInput(f"cannot estimate {unknown}; estimable: {list(ESTIMABLE)}")
    realised = _realised(names, y_true, cls, pred, raw)
    return PerformanceEstimate(
        n=raw.shape[0],
        calibrated=calibrator is not None,
        metrics=MappingProxyType(
            {
                name: EstimatedPerformance(
                    name, _estimate(name, soft, raw, pred), realised.get(name)
                )
                for name in names
            }
        ),
    )


def _realised(
    names: list[str],
    y_true: npt.ArrayLike | None,
    cls: npt.NDArray[Any],
    pred: IntArray,
    raw: FloatArray,
) -> dict[str, float]:
    if y_true is None:
        return {}
    d = k.prepare(y_true, y_pred=cls[pred], proba=raw, classes=cls)
    values = {name: float(METRICS[name].kernel(d, d.weight[None, :])[0]) for name in names}
    return {name: v for name, v in values.items() if np.isfinite(v)}


@dataclass(frozen=True)
class Baseline:
    """A metric's realised value on the labelled reference and its chance spread: over ``n``
    reference-like rows the metric's standard deviation is ``unit_sd / sqrt(n)``."""

    metric: str
    value: float
    unit_sd: float
    direction: Direction

    def threshold(self, n: int, *, tolerance: float = 0.0, z: float = BAND_Z) -> float:
        """The worst value a window of ``n`` rows may take before it counts as worse.

        >>> Baseline("accuracy", 0.9, 0.3, "higher").threshold(900)
        0.87
        """
        margin = z * self.unit_sd / math.sqrt(max(n, 1)) + tolerance
        return self.value - margin if self.direction == "higher" else self.value + margin

    def worse(self, value: float, n: int, *, tolerance: float = 0.0, z: float = BAND_Z) -> bool:
        """Whether ``value`` (on ``n`` rows) is beyond :meth:`threshold`."""
        limit = self.threshold(n, tolerance=tolerance, z=z)
        return value < limit if self.direction == "higher" else value > limit

    def to_dict(self) -> dict[str, object]:
        return dict(vars(self))


def reference_baselines(
    d: k.Inputs, names: Sequence[str], *, n_boot: int = 200, seed: int = 0
) -> dict[str, Baseline]:
    """Baselines of ``names`` on prepared reference inputs ``d`` (bootstrap in the module doc);
    metrics undefined on the reference are left out."""
    rows = float(d.weight.size)
    draws: dict[str, list[FloatArray]] = {name: [] for name in names}
    for w in k.resample_weights(d.weight, n_boot, seed):
        for name in names:
            draws[name].append(METRICS[name].kernel(d, w))
    out = {}
    for name in names:
        value = float(METRICS[name].kernel(d, d.weight[None, :])[0])
        boot = np.concatenate(draws[name]) if draws[name] else np.zeros(1)
        boot = boot[np.isfinite(boot)]
        if math.isfinite(value) and boot.size > 1:
            sd = float(np.std(boot, ddof=1)) * math.sqrt(rows)
            out[name] = Baseline(name, value, sd, METRICS[name].direction)
    return out


@dataclass(frozen=True)
class ClassifierReference:
    """What a window's estimate is calibrated with and compared to."""

    calibrator: Calibrator
    baselines: Mapping[str, Baseline]
    n: int


def fit_classifier_reference(
    reference_proba: npt.ArrayLike,
    reference_y: npt.ArrayLike,
    *,
    classes: npt.ArrayLike | None = None,
    metrics: Sequence[str] | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> ClassifierReference:
    """Calibrator and baselines from a labelled reference (the model's probabilities on its
    rows and their labels); predictions are the most probable class, as in the estimate.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.random(2000)
    >>> ref = fit_classifier_reference(p, (rng.random(2000) < p).astype(int))
    >>> round(ref.baselines["accuracy"].value, 2), ref.n
    (0.75, 2000)
    """
    calibrator = fit_calibrator(reference_proba, reference_y, classes=classes)
    raw = k.proba_matrix(reference_proba, np.shape(reference_proba)[0])
    cls = np.asarray(calibrator.classes)
    d = k.prepare(reference_y, y_pred=cls[raw.argmax(axis=1)], proba=raw, classes=cls)
    names = list(metrics) if metrics is not None else _default_metrics(raw.shape[1])
    baselines = reference_baselines(d, names, n_boot=n_boot, seed=seed)
    return ClassifierReference(calibrator, MappingProxyType(baselines), raw.shape[0])
