"""Regression performance before the labels arrive: direct loss estimation (DLE).

A regressor's error cannot be read from its output the way a classifier's confidence can, but
it can be *learned*: on the labelled reference, two gradient-boosted models (scikit-learn's
``HistGradientBoostingRegressor``) learn the absolute error ``|y - y_pred|`` and the squared
error ``(y - y_pred)**2`` from the features and the prediction (as NannyML's DLE does). On a
window without labels, the estimated MAE is the mean of the predicted absolute errors and the
estimated RMSE the square root of the mean predicted squared error. Each model fits the
conditional mean of its loss (squared-error loss; predictions below zero are clipped to zero),
so where the error grows with a feature, a window that moves towards that region has a larger
estimate. Regions the reference never saw get the nearest leaf's error: DLE extrapolates no
better than the trees.

Non-numeric features are encoded as the reference's categories (at most
:data:`MAX_CATEGORIES`, the most frequent; others and unseen ones count as missing, which the
trees handle) and declared categorical to the model. Baselines (the realised MAE and RMSE on
the reference with their chance spread) come from
:func:`watchkeeper.monitoring.estimation.reference_baselines`, so a regression estimate alerts
by the same rule as a classification one, in the lower-is-better direction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring import _metric_kernels as k
from watchkeeper.monitoring._metric_kernels import FloatArray
from watchkeeper.monitoring.estimation import (
    Baseline,
    EstimatedPerformance,
    PerformanceEstimate,
    reference_baselines,
)

__all__ = ["MAX_CATEGORIES", "LossEstimator", "fit_loss_estimator"]

MAX_CATEGORIES = 250  # below the trees' 255 bins for categorical features
_METRICS = ("mae", "rmse")


@dataclass(frozen=True)
class _Encoding:
    """How a frame becomes the loss models' design matrix: column order and categories."""

    columns: tuple[str, ...]
    categories: Mapping[str, tuple[Any, ...]]

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> _Encoding:
        categories = {}
        for name in frame.columns:
            column = frame[name]
            if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
                counts = column.dropna().astype(str).value_counts()
                categories[name] = tuple(counts.index[:MAX_CATEGORIES])
        return cls(tuple(frame.columns), MappingProxyType(categories))

    @property
    def mask(self) -> list[bool]:
        return [name in self.categories for name in self.columns] + [False]

    def design(self, frame: pd.DataFrame, y_pred: FloatArray) -> FloatArray:
        missing = [name for name in self.columns if name not in frame.columns]
        if missing:
            raise InvalidInput(f"features missing for loss estimation: {', '.join(missing)}")
        out = np.empty((len(frame), len(self.columns) + 1))
        for i, name in enumerate(self.columns):
            column = frame[name]
            if name in self.categories:
                lookup = {c: float(code) for code, c in enumerate(self.categories[name])}
                present = column.notna().to_numpy()
                codes = np.full(len(frame), np.nan)
                codes[present] = column[present].astype(str).map(lookup).to_numpy(dtype=float)
                out[:, i] = codes
            else:
                out[:, i] = pd.to_numeric(column, errors="coerce").astype(np.float64)
        out[:, -1] = y_pred
        return out


@dataclass(frozen=True)
class LossEstimator:
    """Models of a regressor's absolute and squared error, with the reference's baselines."""

    encoding: _Encoding
    absolute: Any
    squared: Any
    baselines: Mapping[str, Baseline]
    n: int

    def estimate(
        self,
        features: pd.DataFrame,
        y_pred: npt.ArrayLike,
        *,
        y_true: npt.ArrayLike | None = None,
    ) -> PerformanceEstimate:
        """Estimated MAE and RMSE of a window; with ``y_true``, each beside its realised value."""
        pred = _finite(y_pred, "predictions")
        if pred.size != len(features) or pred.size == 0:
            raise InvalidInput(f"{len(features)} feature rows but {pred.size} predictions")
        x = self.encoding.design(features, pred)
        mae = float(np.mean(np.clip(self.absolute.predict(x), 0.0, None)))
        rmse = float(np.sqrt(np.mean(np.clip(self.squared.predict(x), 0.0, None))))
        realised: dict[str, float] = {}
        if y_true is not None:
            d = k.regression(y_true, pred, None)
            realised = {m: float(getattr(k, m)(d, d.weight[None, :])[0]) for m in _METRICS}
        values = {"mae": mae, "rmse": rmse}
        return PerformanceEstimate(
            n=pred.size,
            calibrated=True,
            metrics=MappingProxyType(
                {m: EstimatedPerformance(m, values[m], realised.get(m)) for m in _METRICS}
            ),
        )


def _finite(values: npt.ArrayLike, what: str) -> FloatArray:
    out = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(out)):
        raise InvalidInput(f"{what} must be finite numbers")
    return out


def fit_loss_estimator(
    features: pd.DataFrame,
    y_pred: npt.ArrayLike,
    y_true: npt.ArrayLike,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> LossEstimator:
    """Learn a regressor's absolute and squared error on a labelled reference (module doc).

    >>> rng = np.random.default_rng(0)
    >>> x = pd.DataFrame({"x": rng.uniform(-1, 1, 4000)})
    >>> y = x["x"].to_numpy() + rng.normal(0, 0.1 + np.abs(x["x"].to_numpy()))  # noisier at |x|=1
    >>> est = fit_loss_estimator(x, x["x"], y)
    >>> edge = pd.DataFrame({"x": rng.choice([-0.95, 0.95], 1000)})
    >>> bool(est.estimate(edge, edge["x"])["mae"].estimated > est.baselines["mae"].value)
    True
    """
    truth, pred = _finite(y_true, "labels"), _finite(y_pred, "predictions")
    if not truth.size == pred.size == len(features):
        raise InvalidInput(
            f"{len(features)} feature rows, {pred.size} predictions, {truth.size} labels"
        )
    if truth.size < 20:
        raise InvalidInput(f"loss estimation needs at least 20 labelled rows, got {truth.size}")
    encoding = _Encoding.fit(features)
    x = encoding.design(features, pred)
    error = pred - truth

    def model() -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            max_iter=50,
            learning_rate=0.2,
            min_samples_leaf=20,
            categorical_features=encoding.mask if any(encoding.mask) else None,
            early_stopping=False,
            random_state=seed,
        )

    absolute = model().fit(x, np.abs(error))
    squared = model().fit(x, error**2)
    d = k.regression(truth, pred, None)
    baselines = reference_baselines(d, _METRICS, n_boot=n_boot, seed=seed)
    return LossEstimator(encoding, absolute, squared, MappingProxyType(baselines), truth.size)
