"""Multivariate drift by a domain classifier: can a model tell the current window from the
reference?

Reference rows are labelled 0 and current rows 1, and a gradient-boosted classifier
(scikit-learn's ``HistGradientBoostingClassifier``, which takes NaN natively) is scored by
stratified K-fold cross-validated ROC AUC. An AUC near 0.5 means the two samples cannot be
told apart; a higher AUC means they differ *somewhere in their joint distribution*, including
changes no per-feature test sees (a correlation flipping sign while both marginals stay put).

The threshold, 0.55 by default, is an effect size: an AUC of 0.55 is what a mean shift of
about 0.18 standard deviations in one normal feature gives (AUC = Φ(d/√2)), a "small" effect.
With many rows chance cannot reach it (at 10,000 rows a side a fold's AUC has a null standard
deviation of about 0.004), but with a few hundred rows it can, so drift also needs the AUC to be
significant: each fold's AUC is a Mann–Whitney statistic on rows its model never saw, whose
null variance is known (ties included). The folds are not independent (their models share
training rows), so the folds' mean z-score gets Nadeau and Bengio's corrected variance
``1/K + 1/(K-1)`` rather than ``1/K``; the one-sided ``p_value`` that follows is conservative
(on simulated identical samples of 200 rows the naive combined z had a standard deviation of
1.11, the corrected one about 0.74), and drift needs ``p_value < alpha`` as well.

The classifier is deliberately small (100 rounds of depth-3 trees, learning rate 0.05, leaves
of at least ``n/50`` rows up to 100, L2 penalty 1): on a few thousand rows scikit-learn's
defaults overfit noise and pull the held-out AUC of a real shift towards 0.5, while depth 3
still models the interactions a joint shift needs. No early stopping, so results depend only
on ``seed``.

Which features separate the samples is measured by permutation importance on the held-out
folds: the drop in a fold's AUC when one feature's column is shuffled, averaged over the folds.
It credits features the model actually uses to tell the samples apart, in the units of the
verdict (AUC). Features that moved together share the credit; a feature whose information
another one duplicates may be under-credited, as with any permutation importance.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import ndtr

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.drift.result import json_float

__all__ = ["MultivariateDrift", "domain_classifier_drift"]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
Table: TypeAlias = pd.DataFrame | Mapping[str, npt.ArrayLike]

DEFAULT_THRESHOLD = 0.55
"""AUC above which the samples differ by more than a small effect (see the module doc)."""
DEFAULT_ALPHA = 0.05
MAX_CATEGORIES = 255
"""Categorical features with more categories are given to the model as ordinal codes."""
_MAX_ITER = 100


@dataclass(frozen=True, kw_only=True)
class MultivariateDrift:
    """The verdict of a domain classifier.

    ``auc`` is the mean held-out ROC AUC over the folds, ``auc_std`` its spread across them;
    ``p_value`` the one-sided chance of an AUC this high without drift. ``drifted`` is
    ``auc > threshold and p_value < alpha``. ``n_reference``/``n_current`` count the rows used
    (after subsampling). ``top_features`` holds every feature with its importance (the mean
    drop in held-out AUC when it is shuffled), largest first.
    """

    auc: float
    auc_std: float
    p_value: float
    threshold: float
    alpha: float
    drifted: bool
    n_reference: int
    n_current: int
    folds: int
    top_features: tuple[tuple[str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "domain_classifier",
            "auc": json_float(self.auc),
            "auc_std": json_float(self.auc_std),
            "p_value": json_float(self.p_value),
            "threshold": json_float(self.threshold),
            "alpha": json_float(self.alpha),
            "drifted": self.drifted,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "folds": self.folds,
            "top_features": [
                {"name": name, "importance": json_float(value)} for name, value in self.top_features
            ],
        }


def domain_classifier_drift(
    reference: Table,
    current: Table,
    *,
    features: Sequence[str] | None = None,
    max_rows: int = 50_000,
    folds: int = 5,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    categorical: Collection[str] | None = None,
) -> MultivariateDrift:
    """Whether ``current`` differs from ``reference`` jointly, and in which features.

    ``reference`` and ``current`` are DataFrames or mappings of column name to values.
    ``features`` defaults to the columns both have (in the reference's order). Both sides are
    randomly subsampled to the same size, ``min(len(reference), len(current), max_rows)``, so
    the cost is bounded and the classes are balanced; the smaller side limits the AUC's
    precision anyway, so the rows dropped from the larger one cost little power. Columns named in
    ``categorical``, and every non-numeric column, are categorical: coded over the union of
    both sides' categories, nulls coded -1 (missing to the model). Numeric nulls stay NaN.

    >>> rng = np.random.default_rng(0)
    >>> reference = {"a": rng.normal(size=400), "b": rng.normal(size=400)}
    >>> current = {"a": rng.normal(1.0, size=400), "b": rng.normal(size=400)}
    >>> result = domain_classifier_drift(reference, current)
    >>> result.drifted, result.top_features[0][0]
    (True, 'a')
    """
    _check_settings(max_rows, folds, threshold, alpha)
    ref, cur = _as_frame(reference, "reference"), _as_frame(current, "current")
    names = _choose_features(ref, cur, features)
    ref, cur = _balanced(ref[names], cur[names], max_rows, folds, seed)
    x, native = _encode(ref, cur, set(categorical or ()))
    y = np.repeat(np.array([0, 1], dtype=np.int64), [len(ref), len(cur)])
    aucs, zs, importances = _cross_validate(x, y, native, folds, seed)
    auc = float(np.mean(aucs))
    p_value = _combined_p_value(zs)
    ranked = sorted(zip(names, importances.tolist(), strict=True), key=lambda p: -p[1])
    return MultivariateDrift(
        auc=auc,
        auc_std=float(np.std(aucs)),
        p_value=p_value,
        threshold=threshold,
        alpha=alpha,
        drifted=bool(auc > threshold and p_value < alpha),
        n_reference=len(ref),
        n_current=len(cur),
        folds=folds,
        top_features=tuple(ranked),
    )


def _check_settings(max_rows: int, folds: int, threshold: float, alpha: float) -> None:
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise InvalidInput(f"folds must be an integer >= 2, got {folds!r}")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 2 * folds:
        raise InvalidInput(f"max_rows must be an integer >= 2 * folds, got {max_rows!r}")
    if not (isinstance(threshold, int | float) and 0.5 <= threshold < 1):
        raise InvalidInput(f"threshold must be an AUC in [0.5, 1), got {threshold!r}")
    if not (isinstance(alpha, int | float) and 0 < alpha <= 1):
        raise InvalidInput(f"alpha must be in (0, 1], got {alpha!r}")


def _as_frame(table: Table, what: str) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        frame = table
    elif isinstance(table, Mapping):
        try:
            frame = pd.DataFrame({str(k): np.asarray(v) for k, v in table.items()})
        except ValueError as exc:
            raise InvalidInput(f"the {what} columns must be 1-D and of equal length") from exc
    else:
        raise InvalidInput(f"the {what} sample must be a DataFrame or a mapping of columns")
    frame = frame.copy(deep=False)
    frame.columns = pd.Index([str(c) for c in frame.columns])
    if frame.columns.has_duplicates:
        raise InvalidInput(f"the {what} sample has duplicate column names")
    return frame


def _choose_features(
    ref: pd.DataFrame, cur: pd.DataFrame, features: Sequence[str] | None
) -> list[str]:
    if features is None:
        in_current = set(cur.columns)
        names = [str(c) for c in ref.columns if c in in_current]
        if not names:
            raise InvalidInput("the reference and current samples have no common features")
        return names
    names = [str(f) for f in features]
    if not names:
        raise InvalidInput("features must name at least one column")
    for what, frame in (("reference", ref), ("current", cur)):
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise InvalidInput(f"features missing from the {what} sample: {missing}")
    return names


def _balanced(
    ref: pd.DataFrame, cur: pd.DataFrame, max_rows: int, folds: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both sides cut to the same number of rows, at most ``max_rows``, chosen at random."""
    for what, frame in (("reference", ref), ("current", cur)):
        if len(frame) < 2 * folds:
            raise InvalidInput(
                f"the {what} sample has {len(frame)} rows; {folds} folds need at least {2 * folds}"
            )
    size = min(len(ref), len(cur), max_rows)
    rng = np.random.default_rng(seed)
    return _sample(ref, size, rng), _sample(cur, size, rng)


def _sample(frame: pd.DataFrame, size: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) == size:
        return frame.reset_index(drop=True)
    rows = np.sort(rng.choice(len(frame), size=size, replace=False))
    return frame.iloc[rows].reset_index(drop=True)


def _encode(
    ref: pd.DataFrame, cur: pd.DataFrame, categorical: set[str]
) -> tuple[FloatArray, BoolArray]:
    """The model's matrix (reference rows first) and which columns are native categoricals."""
    columns: list[FloatArray] = []
    native: list[bool] = []
    for name in ref.columns:
        a, b = ref[name], cur[name]
        if name in categorical or not (_is_numeric(a) and _is_numeric(b)):
            codes, n_categories = _category_codes(a, b)
            columns.append(codes)
            native.append(n_categories <= MAX_CATEGORIES)
        else:
            columns.append(np.concatenate([_numbers(a), _numbers(b)]))
            native.append(False)
    return np.column_stack(columns), np.array(native, dtype=np.bool_)


def _is_numeric(column: pd.Series[Any]) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column.dtype))


def _numbers(column: pd.Series[Any]) -> FloatArray:
    values: FloatArray = column.to_numpy(dtype=np.float64, na_value=np.nan)
    big = np.finfo(np.float64).max  # the model refuses infinities; keep them extreme
    return np.clip(values, -big, big)


def _category_codes(a: pd.Series[Any], b: pd.Series[Any]) -> tuple[FloatArray, int]:
    """Codes over the union of both sides' categories (sorted when comparable); null -> -1."""
    both = pd.concat([a.astype(object), b.astype(object)], ignore_index=True)
    categories = list(pd.unique(both.dropna()))
    try:
        categories = sorted(categories)
    except TypeError:
        pass  # mixed types: keep the order of appearance
    codes = pd.Categorical(both, categories=categories).codes
    return codes.astype(np.float64), len(categories)


def _combined_p_value(zs: FloatArray) -> float:
    """One-sided p-value of the folds' mean z-score, with Nadeau and Bengio's correction for
    cross-validation: its variance is ``1/K + n_test/n_train = 1/K + 1/(K-1)``, not ``1/K``."""
    k = zs.size
    return float(ndtr(-float(np.mean(zs)) / math.sqrt(1 / k + 1 / (k - 1))))  # norm.sf


def _cross_validate(
    x: FloatArray, y: IntArray, native: BoolArray, folds: int, seed: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per fold: held-out AUC and its Mann–Whitney z-score; the mean permutation importance."""
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    aucs, zs, importances = [], [], []
    for k, (train, test) in enumerate(splitter.split(x, y)):
        model = _fit(x[train], y[train], native, seed)
        auc, z, importance = _score_fold(model, x[test], y[test], seed + k)
        aucs.append(auc)
        zs.append(z)
        importances.append(importance)
    return np.array(aucs), np.array(zs), np.mean(importances, axis=0)


def _fit(x: FloatArray, y: IntArray, native: BoolArray, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=_MAX_ITER,
        learning_rate=0.05,
        max_depth=3,
        min_samples_leaf=max(5, min(100, len(y) // 50)),
        l2_regularization=1.0,
        early_stopping=False,
        categorical_features=native if native.any() else None,
        random_state=seed,
    )
    return model.fit(x, y)


def _score_fold(
    model: Any, x: FloatArray, y: IntArray, seed: int
) -> tuple[float, float, FloatArray]:
    auc, z = _auc_z(y, _scores(model, x))
    rng = np.random.default_rng(seed)
    shuffled = x.copy()
    drops = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        shuffled[:, j] = rng.permutation(x[:, j])
        drops[j] = auc - _auc_z(y, _scores(model, shuffled))[0]
        shuffled[:, j] = x[:, j]
    return auc, z, drops


def _scores(model: Any, x: FloatArray) -> FloatArray:
    return np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)


def _auc_z(y: IntArray, scores: FloatArray) -> tuple[float, float]:
    """ROC AUC as a Mann–Whitney U, and U's z-score under no difference (tie-corrected)."""
    from scipy.stats import rankdata  # here: scipy.stats costs ~0.8 s to import

    ranks = rankdata(scores)
    n1 = int(y.sum())
    n0 = y.size - n1
    u = float(ranks[y == 1].sum()) - n1 * (n1 + 1) / 2
    _, ties = np.unique(scores, return_counts=True)
    n = y.size
    tie_term = float(np.sum(ties.astype(np.float64) ** 3 - ties)) / (n * (n - 1))
    variance = n0 * n1 / 12 * ((n + 1) - tie_term)
    z = 0.0 if variance <= 0 else (u - n0 * n1 / 2) / math.sqrt(variance)
    return u / (n0 * n1), z
