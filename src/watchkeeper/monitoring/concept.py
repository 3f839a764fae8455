"""Telling concept drift (the input-to-label relation changed) from data drift (inputs moved).

Three views, each simple on purpose:

* :func:`performance_decay`: the trend of one metric over labelled windows (least-squares slope
  per window) and whether the latest window is worse than the first beyond its interval.
* :func:`relation_change`: per numeric feature, the positive-label rate in each bin (edges at
  reference quantiles), reference against current. Marginal rates alone confuse a covariate
  shift with a concept change: when any feature the label depends on moves, the base rate moves
  and every other feature's bins follow. So by default (``adjust=True``) the current rate in a
  bin is compared with the rate the *reference relation* predicts for the current rows there (a
  small model fitted on the reference, as in :func:`reference_model_gap`). The z-test is on the
  bin's sum of residuals ``y - p``, centred on the window's mean residual (a change of the
  overall positive rate at fixed inputs is label shift, no one feature's doing); its variance
  is the larger of the squared residuals' sum and ``sum p(1 - p)``, plus the model's own error
  taken as if the bin's rate had been learnt from its reference rows (conservative). Under a
  pure covariate shift the prediction follows the inputs and nothing is flagged.
  ``adjust=False`` compares the raw rates with a two-proportion z-test (the 2x2 chi-square
  without continuity correction). Either way p-values are Bonferroni-corrected over every tested
  bin of every feature, and a feature is flagged when any corrected p-value is below ``alpha``.
  The adjusted test is only as good as the small model: a relation it cannot represent shows up
  as a change.
* :func:`reference_model_gap`: a small model trained on part of the labelled reference is
  scored (accuracy) on the held-out reference and on the current labelled window. A large gap
  while input drift is small means the same inputs now lead to other labels: concept drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring._metric_kernels import FloatArray
from watchkeeper.monitoring._performance_report import _is_worse
from watchkeeper.monitoring.performance import PerformanceReport, accuracy_score

__all__ = [
    "DecayTrend",
    "FeatureRelation",
    "ModelGap",
    "RelationChange",
    "performance_decay",
    "reference_model_gap",
    "relation_change",
]

Feature: TypeAlias = str | int
ModelName: TypeAlias = Literal["logistic", "gradient_boosting"]
Verdict: TypeAlias = Literal["stable", "data_drift", "concept_drift", "performance_drop"]


@dataclass(frozen=True)
class DecayTrend:
    """Slope of a metric per window (oldest first) and whether the latest is worse than the
    first: the latest interval's best end is still worse than the first window's value."""

    metric: str
    n_windows: int
    slope: float
    first: float
    latest: float
    worse: bool

    def to_dict(self) -> dict[str, object]:
        return dict(vars(self))


def performance_decay(windows: Sequence[PerformanceReport], metric: str) -> DecayTrend:
    """Trend of ``metric`` over consecutive windows, oldest first.

    >>> from watchkeeper.monitoring.performance import evaluate
    >>> good = evaluate("classification", [0, 1] * 50, [0, 1] * 50, n_boot=50)
    >>> bad = evaluate("classification", [0, 1] * 50, [0, 1] * 25 + [1, 0] * 25, n_boot=50)
    >>> trend = performance_decay([good, bad], "accuracy")
    >>> trend.slope, trend.worse
    (-0.5, True)
    """
    if len(windows) < 2:
        raise InvalidInput("performance_decay needs at least two windows")
    missing = [i for i, w in enumerate(windows) if metric not in w.metrics]
    if missing:
        raise InvalidInput(f"metric {metric!r} missing from windows {missing}")
    values = np.array([w[metric].value for w in windows], dtype=np.float64)
    x = np.arange(values.size) - (values.size - 1) / 2
    slope = float(x @ (values - values.mean()) / (x @ x))
    first, latest = windows[0][metric], windows[-1][metric]
    return DecayTrend(
        metric, len(windows), slope, first.value, latest.value, _is_worse(latest, first.value, 0.0)
    )


@dataclass(frozen=True)
class FeatureRelation:
    """Positive-label rate per reference-quantile bin, before and after (None: empty bin)."""

    feature: str
    edges: tuple[float, ...]
    reference_rates: tuple[float | None, ...]
    current_rates: tuple[float | None, ...]
    expected_rates: tuple[float | None, ...] | None
    p_value: float
    changed: bool

    def to_dict(self) -> dict[str, object]:
        return dict(vars(self))


@dataclass(frozen=True)
class RelationChange:
    """:func:`relation_change` for every feature; ``changed`` names the flagged ones."""

    alpha: float
    adjusted: bool
    features: tuple[FeatureRelation, ...]

    @property
    def changed(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.features if f.changed)

    def to_dict(self) -> dict[str, object]:
        return {
            "alpha": self.alpha,
            "adjusted": self.adjusted,
            "features": [f.to_dict() for f in self.features],
        }


def _column(table: Any, feature: Feature) -> FloatArray:
    if not isinstance(table, np.ndarray):
        return np.asarray(table[feature], dtype=np.float64)
    if not isinstance(feature, int):
        raise InvalidInput(f"features of a 2-D array are column indices, got {feature!r}")
    return np.asarray(table[:, feature], dtype=np.float64)


def _bin_sums(x: FloatArray, edges: FloatArray, *values: FloatArray) -> list[FloatArray]:
    """Rows, then the sum of each of ``values``, per bin (NaN feature values left out)."""
    if any(v.size != x.size for v in values):
        raise InvalidInput(f"{x.size} feature values but {values[0].size} labels")
    keep = np.isfinite(x)
    ids = np.searchsorted(edges[1:-1], x[keep], side="right")
    size = max(edges.size - 1, 1)
    sums = [np.bincount(ids, minlength=size)] + [
        np.bincount(ids, weights=v[keep], minlength=size) for v in values
    ]
    return [np.asarray(a, dtype=np.float64) for a in sums]


def _two_sided(diff: FloatArray, se: FloatArray) -> FloatArray:
    z = np.divide(np.abs(diff), se, out=np.zeros_like(se), where=se > 0)
    return np.asarray(2 * stats.norm.sf(z), dtype=np.float64)


def _rates(n: FloatArray, k: FloatArray) -> tuple[float | None, ...]:
    return tuple(float(a / b) if b > 0 else None for a, b in zip(k, n, strict=True))


def _edges(ref_x: FloatArray, bins: int) -> FloatArray:
    finite = ref_x[np.isfinite(ref_x)]
    if finite.size == 0 or bins < 1:
        raise InvalidInput("each feature needs finite reference values and bins >= 1")
    return np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)))


@dataclass(frozen=True)
class _Sides:
    """Labels (0/1) on both sides and, when adjusting, the reference relation's predictions."""

    ref_hit: FloatArray
    cur_hit: FloatArray
    expected: FloatArray | None


def _feature_test(
    ref_x: FloatArray, cur_x: FloatArray, sides: _Sides, bins: int, min_count: int
) -> tuple[
    FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray | None
]:
    """Edges, reference rows/positives, current rows/positives, raw p-values, expected rates."""
    edges = _edges(ref_x, bins)
    n1, k1 = _bin_sums(ref_x, edges, sides.ref_hit)
    if sides.expected is None:
        n2, k2 = _bin_sums(cur_x, edges, sides.cur_hit)
        pooled = (k1 + k2) / np.maximum(n1 + n2, 1)
        se = np.sqrt(pooled * (1 - pooled) * (1 / np.maximum(n1, 1) + 1 / np.maximum(n2, 1)))
        p = _two_sided(k1 / np.maximum(n1, 1) - k2 / np.maximum(n2, 1), se)
        expected = None
    else:
        e = sides.expected
        residual = sides.cur_hit - e
        shift = residual.mean()  # label shift at fixed inputs is no one feature's doing
        n2, k2, e2, v2, m2 = _bin_sums(
            cur_x, edges, sides.cur_hit, e, (residual - shift) ** 2, e * (1 - e)
        )
        rate = e2 / np.maximum(n2, 1)  # the model's own error, as if learnt from n1 rows:
        model_var = n2**2 * rate * (1 - rate) / np.maximum(n1, 1)
        p = _two_sided(k2 - e2 - shift * n2, np.sqrt(np.maximum(v2, m2) + model_var))
        expected = e2
    p = np.where((n1 >= min_count) & (n2 >= min_count), p, np.inf)
    return edges, n1, k1, n2, k2, p, expected


def _expected(
    reference_X: Any,
    ref_hit: FloatArray,
    current_X: Any,
    features: Sequence[Feature],
    model: ModelName,
    seed: int,
) -> FloatArray:
    ref, cur = _matrix(reference_X, features), _matrix(current_X, features)
    if model == "logistic" and not (np.all(np.isfinite(ref)) and np.all(np.isfinite(cur))):
        raise InvalidInput("the logistic adjustment needs finite values; use gradient_boosting")
    fitted = _make_model(model, seed).fit(ref, ref_hit)
    proba = fitted.predict_proba(cur)
    return np.asarray(proba[:, 1], dtype=np.float64)


def relation_change(
    reference_X: Any,
    reference_y: npt.ArrayLike,
    current_X: Any,
    current_y: npt.ArrayLike,
    *,
    features: Sequence[Feature],
    bins: int = 5,
    alpha: float = 0.05,
    min_count: int = 20,
    positive: Any = None,
    adjust: bool = True,
    model: ModelName = "logistic",
    seed: int = 0,
) -> RelationChange:
    """Which features' input-to-label relation changed (binary labels; method in module doc).

    ``X`` is a 2-D array (features are column indices) or anything indexable by feature name
    (DataFrame, dict of columns). ``positive`` defaults to the greater label. Bins with fewer
    than ``min_count`` rows on either side are not tested; NaN values are left out of the
    binning (the logistic adjustment model needs finite values; gradient boosting takes NaN).

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 2))
    >>> now = relation_change(X, X[:, 0] > 0, X, X[:, 1] > 0, features=[0, 1], adjust=False)
    >>> now.changed
    ('0', '1')
    """
    ref_y, cur_y = np.asarray(reference_y).ravel(), np.asarray(current_y).ravel()
    pos = positive if positive is not None else np.unique(np.concatenate([ref_y, cur_y]))[-1]
    ref_hit, cur_hit = (ref_y == pos).astype(np.float64), (cur_y == pos).astype(np.float64)
    for table, hit in ((reference_X, ref_hit), (current_X, cur_hit)):
        if features and _column(table, features[0]).size != hit.size:
            raise InvalidInput(f"{_column(table, features[0]).size} rows but {hit.size} labels")
    expected = None
    if adjust:
        if ref_hit.min() == ref_hit.max():
            raise InvalidInput("adjusting needs both labels in the reference")
        expected = _expected(reference_X, ref_hit, current_X, features, model, seed)
    sides = _Sides(ref_hit, cur_hit, expected)
    tests = [
        _feature_test(_column(reference_X, f), _column(current_X, f), sides, bins, min_count)
        for f in features
    ]
    m = max(sum(int(np.isfinite(t[5]).sum()) for t in tests), 1)
    results = []
    for f, (edges, n1, k1, n2, k2, p, e2) in zip(features, tests, strict=True):
        best = float(min(p.min() * m, 1.0)) if p.size else 1.0
        results.append(
            FeatureRelation(
                str(f),
                tuple(edges.tolist()),
                _rates(n1, k1),
                _rates(n2, k2),
                None if e2 is None else _rates(n2, e2),
                best,
                best < alpha,
            )
        )
    return RelationChange(alpha, adjust, tuple(results))


@dataclass(frozen=True)
class ModelGap:
    """Accuracy of a reference-trained model on held-out reference and on the current window.

    ``gap`` is reference minus current (positive: worse now). ``verdict``: ``stable`` (no gap,
    inputs steady), ``data_drift`` (inputs moved beyond ``drift_tolerance``, with or without a
    gap), ``concept_drift`` (gap with steady inputs), ``performance_drop`` (gap, no drift given).
    """

    model: str
    reference: float
    current: float
    gap: float
    input_drift: float | None
    verdict: Verdict

    def to_dict(self) -> dict[str, object]:
        return dict(vars(self))


def _matrix(table: Any, features: Sequence[Feature] | None) -> FloatArray:
    if features is None:
        return np.asarray(table, dtype=np.float64)
    return np.column_stack([_column(table, f) for f in features])


def _make_model(model: ModelName, seed: int) -> Any:
    if model == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    if model == "gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    raise InvalidInput(f"model must be 'logistic' or 'gradient_boosting', got {model!r}")


def _verdict(gap: float, drift: float | None, gap_tol: float, drift_tol: float) -> Verdict:
    if drift is not None and drift > drift_tol:
        return "data_drift"
    if gap <= gap_tol:
        return "stable"
    return "performance_drop" if drift is None else "concept_drift"


def reference_model_gap(
    reference_X: Any,
    reference_y: npt.ArrayLike,
    current_X: Any,
    current_y: npt.ArrayLike,
    *,
    features: Sequence[Feature] | None = None,
    model: ModelName = "logistic",
    holdout: float = 0.3,
    input_drift: float | None = None,
    gap_tolerance: float = 0.05,
    drift_tolerance: float = 0.2,
    seed: int = 0,
) -> ModelGap:
    """Train on the reference, compare held-out reference accuracy with current accuracy.

    ``input_drift`` is any input-drift summary in [0, 1] from the drift monitor (for instance
    the share of drifted features); without it a gap cannot be attributed.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 2))
    >>> gap = reference_model_gap(X, X[:, 0] > 0, X, X[:, 0] < 0, input_drift=0.0)
    >>> gap.verdict, gap.gap > 0.5
    ('concept_drift', True)
    """
    ref, cur = _matrix(reference_X, features), _matrix(current_X, features)
    ref_y, cur_y = np.asarray(reference_y).ravel(), np.asarray(current_y).ravel()
    if np.unique(ref_y).size < 2 or not 0 < holdout < 1:
        raise InvalidInput("need two reference classes and 0 < holdout < 1")
    order = np.random.default_rng(seed).permutation(ref_y.size)
    cut = int(round(ref_y.size * (1 - holdout)))
    train, test = order[:cut], order[cut:]
    fitted = _make_model(model, seed).fit(ref[train], ref_y[train])
    reference = accuracy_score(ref_y[test], fitted.predict(ref[test]))
    current = accuracy_score(cur_y, fitted.predict(cur))
    gap = reference - current
    verdict = _verdict(gap, input_drift, gap_tolerance, drift_tolerance)
    return ModelGap(model, reference, current, gap, input_drift, verdict)
