"""Model performance once labels arrive: metrics, bootstrap intervals and comparisons.

Metric names follow scikit-learn: ``*_score`` is higher-is-better, ``*_error`` and ``*_loss``
lower-is-better; every function takes ``(y_true, y_pred, *, sample_weight=None)`` (the second
argument is the scores or probabilities for ranking and probabilistic metrics) and agrees with
its scikit-learn namesake, except for these deliberate choices:

* **Zero division** (precision with no predicted positive, ...) gives ``0.0`` without a warning.
* **Positive class**: binary precision/recall/F1 use ``pos_label``, by default the greater label
  (scikit-learn's ``1`` for 0/1 labels); a 1-D score is the greater label's score.
* **Log loss** clips probabilities to ``[eps, 1 - eps]``, ``eps`` the float64 machine epsilon
  (scikit-learn's rule), and does not renormalise rows.
* **MAPE** leaves out rows whose target is exactly zero (scikit-learn divides by machine epsilon
  there, so one zero target gives ~1e15); with only zero targets it is undefined.
* **Expected calibration error** uses equal-width bins on ``[0, 1]`` by default
  (``strategy="quantile"``: equal-frequency bins of the observed confidences); bin ``i`` holds
  ``e[i] < p <= e[i+1]`` as in ``sklearn.calibration.calibration_curve``. Binary: the positive
  class probability against the positive rate; multiclass: top-label confidence against accuracy.

:func:`evaluate` gives every metric with a percentile-bootstrap interval over rows (the same
estimator for every metric, sample weights included; no Wilson shortcut for accuracy). Rows are
resampled once per bootstrap as an index matrix and every metric is computed on all resamples
with matrix products (see ``_metric_kernels``). In a multiclass evaluation the class set is
fixed to the full window's, so a class missing from one resample still counts in macro averages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from types import MappingProxyType
from typing import Any, Literal, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring import _metric_kernels as k
from watchkeeper.monitoring._metric_kernels import Average, Batch, Strategy
from watchkeeper.monitoring._performance_report import (
    Direction,
    LabelLag,
    MetricComparison,
    MetricValue,
    PerformanceReport,
    ReliabilityBin,
    Task,
    label_coverage,
    label_lag_summary,
)

__all__ = [
    "METRICS",
    "ClassScore",
    "LabelLag",
    "MetricComparison",
    "MetricSpec",
    "MetricValue",
    "PerformanceReport",
    "ReliabilityBin",
    "accuracy_score",
    "brier_score_loss",
    "evaluate",
    "expected_calibration_error",
    "f1_score",
    "label_coverage",
    "label_lag_summary",
    "log_loss",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "precision_score",
    "r2_score",
    "recall_score",
    "reliability_table",
    "roc_auc_score",
    "root_mean_squared_error",
]

Weights: TypeAlias = npt.ArrayLike | None


def _one(kernel: Batch, d: k.Inputs) -> float:
    value = float(kernel(d, d.weight[None, :])[0])
    if math.isnan(value):
        raise InvalidInput("metric undefined on these rows (e.g. only one class present)")
    return value


def accuracy_score(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, sample_weight: Weights = None
) -> float:
    """Share of rows predicted right.

    >>> accuracy_score([0, 1, 1, 0], [0, 1, 0, 0])
    0.75
    """
    return _one(k.accuracy, k.prepare(y_true, y_pred=y_pred, sample_weight=sample_weight))


class ClassScore(Protocol):
    """A per-class score averaged over classes: :func:`precision_score`, :func:`recall_score`
    and :func:`f1_score`, which take scikit-learn's arguments."""

    def __call__(self, y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, average: Average = ...,
                 pos_label: Any = ..., labels: npt.ArrayLike | None = ...,
                 sample_weight: Weights = ...) -> float: ...  # fmt: skip


def _class_score(kind: Literal["precision", "recall", "f1"], doc: str) -> ClassScore:
    """The public metric ``{kind}_score``: one signature for the three, documented by ``doc``."""

    def score(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, average: Average = "binary",
              pos_label: Any = None, labels: npt.ArrayLike | None = None,
              sample_weight: Weights = None) -> float:  # fmt: skip
        d = k.prepare(y_true, y_pred=y_pred, classes=labels, pos_label=pos_label,
                      sample_weight=sample_weight)  # fmt: skip
        return _one(partial(k.prf, kind, average), d)

    score.__name__ = score.__qualname__ = f"{kind}_score"
    score.__doc__ = doc
    return score


precision_score = _class_score(
    "precision",
    """Precision: share of predicted positives that are positive, averaged as scikit-learn does.

    >>> precision_score([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    >>> precision_score(["a", "b", "c", "c"], ["a", "b", "b", "c"], average="macro")
    0.8333333333333334
    """,
)
recall_score = _class_score(
    "recall",
    """Recall: share of positives predicted positive; arguments as for :func:`precision_score`.

    >>> recall_score([0, 1, 1, 0], [1, 1, 0, 0])
    0.5
    """,
)
f1_score = _class_score(
    "f1",
    """F1 (harmonic mean of precision and recall); arguments as for :func:`precision_score`.

    >>> f1_score([0, 1, 1, 1], [1, 1, 1, 0])
    0.6666666666666666
    """,
)


def _proba_inputs(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    labels: npt.ArrayLike | None,
    sample_weight: Weights,
) -> k.Inputs:
    return k.prepare(y_true, proba=proba, classes=labels, sample_weight=sample_weight)


def roc_auc_score(
    y_true: npt.ArrayLike,
    y_score: npt.ArrayLike,
    *,
    labels: npt.ArrayLike | None = None,
    sample_weight: Weights = None,
) -> float:
    """Area under the ROC curve: binary from the greater label's scores (1-D), multiclass
    one-vs-rest macro average from an ``(n, classes)`` probability matrix.

    >>> roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    return _one(k.roc_auc, _proba_inputs(y_true, y_score, labels, sample_weight))


def log_loss(
    y_true: npt.ArrayLike,
    y_proba: npt.ArrayLike,
    *,
    labels: npt.ArrayLike | None = None,
    sample_weight: Weights = None,
) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped to ``[eps, 1-eps]``).

    >>> round(log_loss([0, 1], [0.2, 0.9]), 6)
    0.164252
    """
    return _one(k.log_loss, _proba_inputs(y_true, y_proba, labels, sample_weight))


def brier_score_loss(
    y_true: npt.ArrayLike,
    y_proba: npt.ArrayLike,
    *,
    labels: npt.ArrayLike | None = None,
    sample_weight: Weights = None,
) -> float:
    """Mean squared distance between probabilities and the one-hot truth, summed over classes
    (halved for binary, so binary is ``mean((y - p)**2)`` as in scikit-learn).

    >>> round(brier_score_loss([0, 1], [0.2, 0.9]), 6)
    0.025
    """
    return _one(k.brier, _proba_inputs(y_true, y_proba, labels, sample_weight))


def expected_calibration_error(
    y_true: npt.ArrayLike,
    y_proba: npt.ArrayLike,
    *,
    bins: int = 10,
    strategy: Strategy = "uniform",
    labels: npt.ArrayLike | None = None,
    sample_weight: Weights = None,
) -> float:
    """Weighted mean over bins of ``|observed rate - mean confidence|`` (rules in module doc).

    >>> round(expected_calibration_error([0, 1, 1, 1], [0.2, 0.9, 0.8, 0.7], bins=2), 6)
    0.2
    """
    d = _proba_inputs(y_true, y_proba, labels, sample_weight)
    return _one(partial(k.ece, bins, strategy), d)


def reliability_table(
    y_true: npt.ArrayLike,
    y_proba: npt.ArrayLike,
    *,
    bins: int = 10,
    strategy: Strategy = "uniform",
    labels: npt.ArrayLike | None = None,
    sample_weight: Weights = None,
) -> tuple[ReliabilityBin, ...]:
    """Per-bin mean confidence and observed rate, the bins of :func:`expected_calibration_error`.

    >>> [b.observed_rate for b in reliability_table([0, 1, 1, 1], [0.2, 0.9, 0.8, 0.7], bins=2)]
    [0.0, 1.0]
    """
    d = _proba_inputs(y_true, y_proba, labels, sample_weight)
    edges, weight, conf, outcome = k.calibration_sums(d, d.weight[None, :], bins, strategy)
    return tuple(
        ReliabilityBin(
            lower=float(edges[i]),
            upper=float(edges[i + 1]),
            weight=float(weight[0, i]),
            mean_confidence=float(conf[0, i] / weight[0, i]) if weight[0, i] > 0 else None,
            observed_rate=float(outcome[0, i] / weight[0, i]) if weight[0, i] > 0 else None,
        )
        for i in range(bins)
    )


def mean_absolute_error(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, sample_weight: Weights = None
) -> float:
    """Mean of ``|y_pred - y_true|``.

    >>> mean_absolute_error([1.0, 2.0, 4.0], [1.5, 2.0, 3.0])
    0.5
    """
    return _one(k.mae, k.regression(y_true, y_pred, sample_weight))


def root_mean_squared_error(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, sample_weight: Weights = None
) -> float:
    """Square root of the mean squared error.

    >>> root_mean_squared_error([0.0, 0.0], [3.0, 4.0])
    3.5355339059327378
    """
    return _one(k.rmse, k.regression(y_true, y_pred, sample_weight))


def mean_absolute_percentage_error(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, sample_weight: Weights = None
) -> float:
    """Mean of ``|y_pred - y_true| / |y_true|`` as a fraction, rows with ``y_true == 0`` left out.

    >>> mean_absolute_percentage_error([0.0, 2.0, 4.0], [9.0, 1.0, 5.0])
    0.375
    """
    return _one(k.mape, k.regression(y_true, y_pred, sample_weight))


def r2_score(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, sample_weight: Weights = None
) -> float:
    """Coefficient of determination; a constant target gives 1.0 if predicted exactly, else 0.0.

    >>> r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    0.5
    """
    return _one(k.r2, k.regression(y_true, y_pred, sample_weight))


@dataclass(frozen=True)
class MetricSpec:
    """A metric for generic code: its direction, what it reads and how to compute it.

    ``needs`` is ``"labels"`` (predicted labels), ``"proba"`` (scores or probabilities) or
    ``"values"`` (regression); ``function`` is the public metric, ``kernel`` its batch form.
    """

    name: str
    direction: Direction
    needs: Literal["labels", "proba", "values"]
    function: Callable[..., float]
    kernel: Batch
    binary_only: bool = False

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"


def _spec_prf(kind: str, average: Average, fn: Callable[..., float]) -> MetricSpec:
    name = kind if average == "binary" else f"{kind}_{average}"
    return MetricSpec(
        name,
        "higher",
        "labels",
        partial(fn, average=average),
        partial(k.prf, kind, average),
        binary_only=average == "binary",
    )


def _registry() -> dict[str, MetricSpec]:
    specs = [MetricSpec("accuracy", "higher", "labels", accuracy_score, k.accuracy)]
    for average in ("binary", "macro", "weighted"):
        fns = {"precision": precision_score, "recall": recall_score, "f1": f1_score}
        specs += [_spec_prf(kind, average, fn) for kind, fn in fns.items()]
    specs += [
        MetricSpec("roc_auc", "higher", "proba", roc_auc_score, k.roc_auc),
        MetricSpec("log_loss", "lower", "proba", log_loss, k.log_loss),
        MetricSpec("brier", "lower", "proba", brier_score_loss, k.brier),
        MetricSpec(
            "ece", "lower", "proba", expected_calibration_error, partial(k.ece, 10, "uniform")
        ),
        MetricSpec("mae", "lower", "values", mean_absolute_error, k.mae),
        MetricSpec("rmse", "lower", "values", root_mean_squared_error, k.rmse),
        MetricSpec("mape", "lower", "values", mean_absolute_percentage_error, k.mape),
        MetricSpec("r2", "higher", "values", r2_score, k.r2),
    ]
    return {spec.name: spec for spec in specs}


METRICS: Mapping[str, MetricSpec] = MappingProxyType(_registry())
"""Every metric by name; ``precision``/``recall``/``f1`` are binary (positive class)."""


def _inputs(
    task: Task,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike | None,
    proba: npt.ArrayLike | None,
    classes: npt.ArrayLike | None,
    sample_weight: Weights,
) -> k.Inputs:
    if task == "regression":
        return k.regression(y_true, k.need(y_pred, "y_pred"), sample_weight)
    if task != "classification":
        raise InvalidInput(f"task must be 'classification' or 'regression', got {task!r}")
    d = k.prepare(y_true, y_pred=y_pred, proba=proba, classes=classes, sample_weight=sample_weight)
    if d.pred is None:  # labels from the probabilities: the most probable class
        prob = k.need(d.proba, "y_pred or proba")
        return replace(d, pred=np.asarray(prob.argmax(axis=1), dtype=np.intp), cache={})
    return d


def _default_metrics(task: Task, d: k.Inputs) -> list[str]:
    if task == "regression":
        return ["mae", "rmse", "mape", "r2"]
    binary = len(d.classes) <= 2
    names = ["accuracy"] + (
        ["precision", "recall", "f1"]
        if binary
        else [f"{m}_{a}" for a in ("macro", "weighted") for m in ("precision", "recall", "f1")]
    )
    return names + ([] if d.proba is None else ["roc_auc", "log_loss", "brier", "ece"])


def evaluate(
    task: Task,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike | None = None,
    *,
    proba: npt.ArrayLike | None = None,
    classes: npt.ArrayLike | None = None,
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
    sample_weight: Weights = None,
) -> PerformanceReport:
    """Every metric of a labelled window with a percentile-bootstrap interval.

    Classification takes predicted labels, probabilities (``(n,)`` for the greater label or
    ``(n, classes)`` with ``classes`` in column order), or both; without ``y_pred`` the most
    probable class is the prediction. Default metrics skip any that are undefined on the window.

    >>> report = evaluate("regression", [1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.2, 3.9], n_boot=50)
    >>> round(report["mae"].value, 3), report["mae"].lower <= 0.125 <= report["mae"].upper
    (0.125, True)
    """
    if not 0 < confidence < 1 or n_boot < 0:
        raise InvalidInput("confidence must be in (0, 1) and n_boot non-negative")
    d = _inputs(task, y_true, y_pred, proba, classes, sample_weight)
    names = list(metrics) if metrics is not None else _default_metrics(task, d)
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise InvalidInput(f"unknown metrics {unknown}; known: {sorted(METRICS)}")
    point = {name: float(METRICS[name].kernel(d, d.weight[None, :])[0]) for name in names}
    if metrics is None:
        names = [name for name in names if math.isfinite(point[name])]
    boots: dict[str, list[npt.NDArray[np.float64]]] = {name: [] for name in names}
    for w in k.resample_weights(d.weight, n_boot, seed):
        for name in names:
            boots[name].append(METRICS[name].kernel(d, w))
    alpha = (1 - confidence) / 2
    return PerformanceReport(
        task,
        int(d.weight.size),
        confidence,
        n_boot,
        {
            name: MetricValue(
                name, point[name], *_interval(boots[name], alpha), METRICS[name].direction
            )
            for name in names
        },
    )


def _interval(draws: list[npt.NDArray[np.float64]], alpha: float) -> tuple[float, float]:
    values = np.concatenate(draws) if draws else np.empty(0)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    lower, upper = np.quantile(values, [alpha, 1 - alpha])
    return float(lower), float(upper)
