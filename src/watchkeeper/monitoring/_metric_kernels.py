"""Metric kernels: every metric as a function of a weight matrix ``(resamples, rows)``.

Private to :mod:`watchkeeper.monitoring.performance` (which documents the metrics' rules) and
:mod:`watchkeeper.monitoring.estimation`. A kernel takes validated :class:`Inputs` and weights
``w`` and returns one value per row of ``w``: the public metric functions pass one row (the
sample weights); bootstrap intervals pass resample counts times the weights, so an interval
costs a few matrix products rather than a Python loop over resamples. Undefined values
(ROC AUC with one class in a resample, MAPE with only zero targets) are NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import sparse

from watchkeeper.errors import InvalidInput

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.intp]
Average: TypeAlias = Literal["binary", "micro", "macro", "weighted"]
Strategy: TypeAlias = Literal["uniform", "quantile"]
Batch: TypeAlias = Callable[["Inputs", FloatArray], FloatArray]
EPS = float(np.finfo(np.float64).eps)
_CHUNK_CELLS = 4_000_000  # bootstrap weight cells held at once (32 MB of float64)


@dataclass(frozen=True)
class Inputs:
    """Validated, encoded inputs shared by every metric of one evaluation."""

    weight: FloatArray
    classes: tuple[Any, ...] = ()
    pos: int = -1
    true: IntArray | None = None
    pred: IntArray | None = None
    proba: FloatArray | None = None
    y: FloatArray | None = None
    yhat: FloatArray | None = None
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def need(value: Any, what: str) -> Any:
    if value is None:
        raise InvalidInput(f"this metric needs {what}")
    return value


def weights(sample_weight: npt.ArrayLike | None, n: int) -> FloatArray:
    if n == 0:
        raise InvalidInput("no rows to evaluate")
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise InvalidInput("sample_weight must be n finite non-negative numbers, not all zero")
    return w


def encode(values: npt.NDArray[Any], classes: npt.NDArray[Any]) -> IntArray:
    sorter = np.argsort(classes, kind="stable")
    pos = np.clip(np.searchsorted(classes, values, sorter=sorter), 0, classes.size - 1)
    codes = sorter[pos]
    if not np.array_equal(classes[codes], values):
        raise InvalidInput("labels found that are not among the classes")
    return np.asarray(codes, dtype=np.intp)


def prepare(
    y_true: npt.ArrayLike,
    *,
    y_pred: npt.ArrayLike | None = None,
    proba: npt.ArrayLike | None = None,
    classes: npt.ArrayLike | None = None,
    pos_label: Any = None,
    sample_weight: npt.ArrayLike | None = None,
) -> Inputs:
    t = np.asarray(y_true).ravel()
    p = None if y_pred is None else np.asarray(y_pred).ravel()
    if p is not None and p.shape != t.shape:
        raise InvalidInput(f"y_true has {t.size} rows but y_pred has {p.size}")
    prob = None if proba is None else proba_matrix(proba, t.size)
    if classes is not None:
        cls = np.asarray(classes).ravel()
    elif prob is not None:
        cls = np.unique(t)
        if cls.size != prob.shape[1]:
            raise InvalidInput(
                f"{prob.shape[1]} probability columns but y_true has {cls.size}"
                " classes; pass classes= in column order"
            )
    else:
        extra = [] if pos_label is None else [pos_label]
        cls = np.unique(np.concatenate([t, p if p is not None else t, np.asarray(extra, t.dtype)]))
    pos = cls.size - 1 if pos_label is None else int(encode(np.asarray([pos_label]), cls)[0])
    return Inputs(
        weight=weights(sample_weight, t.size),
        classes=tuple(cls.tolist()),
        pos=pos,
        true=encode(t, cls),
        pred=None if p is None else encode(p, cls),
        proba=prob,
    )


def proba_matrix(proba: npt.ArrayLike, n: int) -> FloatArray:
    prob = np.asarray(proba, dtype=np.float64)
    if prob.ndim == 1:
        prob = np.column_stack([1.0 - prob, prob])
    if prob.ndim != 2 or prob.shape[0] != n or prob.shape[1] < 2:
        raise InvalidInput(f"probabilities must be (n,) or (n, classes) with n={n}")
    if not np.all(np.isfinite(prob)) or prob.min() < 0 or prob.max() > 1:
        raise InvalidInput("probabilities must be finite and within [0, 1]")
    return prob


def regression(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, sample_weight: npt.ArrayLike | None
) -> Inputs:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    yhat = np.asarray(y_pred, dtype=np.float64).ravel()
    if y.shape != yhat.shape:
        raise InvalidInput(f"y_true has {y.size} rows but y_pred has {yhat.size}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(yhat))):
        raise InvalidInput("regression targets and predictions must be finite")
    return Inputs(weight=weights(sample_weight, y.size), y=y, yhat=yhat)


def _div(num: FloatArray, den: FloatArray) -> FloatArray:
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def onehot(codes: IntArray, width: int) -> Any:
    n = codes.size
    return sparse.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, width))


def _bin_sums(m: Any, w: FloatArray) -> FloatArray:
    """``w @ m`` for a sparse indicator ``m``: per-resample totals of each group."""
    return np.asarray((m.T @ w.T).T, dtype=np.float64)


def confusion(d: Inputs, w: FloatArray) -> FloatArray:
    """Weighted confusion matrices ``(resamples, true, predicted)``."""
    k = len(d.classes)
    if "pairs" not in d.cache:
        true, pred = need(d.true, "y_true"), need(d.pred, "predicted labels")
        d.cache["pairs"] = onehot(true * k + pred, k * k)
    return _bin_sums(d.cache["pairs"], w).reshape(-1, k, k)


def _total(w: FloatArray) -> FloatArray:
    return np.asarray(w.sum(axis=1), dtype=np.float64)


def accuracy(d: Inputs, w: FloatArray) -> FloatArray:
    c = confusion(d, w)
    return _div(np.trace(c, axis1=1, axis2=2), _total(w))


def prf(kind: str, average: Average, d: Inputs, w: FloatArray) -> FloatArray:
    return from_confusion(kind, average, confusion(d, w), d.pos)


def from_confusion(kind: str, average: Average, c: FloatArray, pos: int) -> FloatArray:
    """Precision, recall or F1 from confusion matrices ``(resamples, true, predicted)``."""
    tp = np.diagonal(c, axis1=1, axis2=2)
    actual, predicted = c.sum(axis=2), c.sum(axis=1)
    den = {"precision": predicted, "recall": actual, "f1": (actual + predicted) / 2}[kind]
    if average == "micro":
        return _div(tp.sum(axis=1), den.sum(axis=1))
    per_class = _div(tp, den)
    if average == "binary":
        if c.shape[1] > 2:
            raise InvalidInput(f"average='binary' needs at most 2 classes, got {c.shape[1]}")
        return per_class[:, pos]
    if average == "macro":
        return np.asarray(per_class.mean(axis=1), dtype=np.float64)
    return _div((per_class * actual).sum(axis=1), actual.sum(axis=1))


def ranking(score: FloatArray) -> tuple[IntArray, IntArray]:
    """Rows by decreasing score, and the last position of each run of tied scores."""
    order = np.asarray(np.argsort(-score, kind="mergesort"), dtype=np.intp)
    ranked = score[order]
    return order, np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]


def auc(
    score: FloatArray, pos: FloatArray, w: FloatArray, rank: tuple[IntArray, IntArray] | None = None
) -> FloatArray:
    """Area under the ROC curve per resample; ``pos`` may be soft (expected) labels."""
    order, ends = ranking(score) if rank is None else rank
    wo = np.take(w, order, axis=1)
    zero = np.zeros((w.shape[0], 1))
    tps = np.hstack([zero, np.cumsum(wo * pos[order], axis=1)[:, ends]])
    fps = np.hstack([zero, np.cumsum(wo * (1.0 - pos[order]), axis=1)[:, ends]])
    area = np.sum(np.diff(fps, axis=1) * (tps[:, 1:] + tps[:, :-1]) / 2, axis=1)
    den = tps[:, -1] * fps[:, -1]
    return np.where(den > 0, area / np.where(den > 0, den, 1.0), np.nan)


def _class_auc(d: Inputs, k: int, w: FloatArray) -> FloatArray:
    prob: FloatArray = need(d.proba, "scores or probabilities")
    true: IntArray = need(d.true, "y_true")
    if f"rank{k}" not in d.cache:
        d.cache[f"rank{k}"] = ranking(prob[:, k])
    return auc(prob[:, k], (true == k).astype(np.float64), w, d.cache[f"rank{k}"])


def roc_auc(d: Inputs, w: FloatArray) -> FloatArray:
    width = need(d.proba, "scores or probabilities").shape[1]
    if width == 2:
        return _class_auc(d, 1, w)
    per_class = [_class_auc(d, k, w) for k in range(width)]
    return np.asarray(np.mean(per_class, axis=0), dtype=np.float64)


def row_mean(rows: FloatArray, w: FloatArray, mask: FloatArray | None = None) -> FloatArray:
    den = _total(w) if mask is None else w @ mask
    return np.where(den > 0, (w @ rows) / np.where(den > 0, den, 1.0), np.nan)


def log_loss(d: Inputs, w: FloatArray) -> FloatArray:
    prob: FloatArray = need(d.proba, "probabilities")
    true: IntArray = need(d.true, "y_true")
    picked = np.clip(prob[np.arange(true.size), true], EPS, 1 - EPS)
    return row_mean(-np.log(picked), w)


def brier(d: Inputs, w: FloatArray) -> FloatArray:
    prob: FloatArray = need(d.proba, "probabilities")
    true: IntArray = need(d.true, "y_true")
    truth = np.eye(prob.shape[1])[true]
    rows = np.sum((truth - prob) ** 2, axis=1) * (0.5 if prob.shape[1] == 2 else 1.0)
    return row_mean(rows, w)


def confidence(d: Inputs) -> tuple[FloatArray, FloatArray]:
    """(confidence, outcome): positive-class for binary, top-label for multiclass."""
    prob: FloatArray = need(d.proba, "probabilities")
    true: IntArray = need(d.true, "y_true")
    if prob.shape[1] == 2:
        return prob[:, 1], (true == 1).astype(np.float64)
    return prob.max(axis=1), (prob.argmax(axis=1) == true).astype(np.float64)


def bin_edges(conf: FloatArray, bins: int, strategy: Strategy) -> FloatArray:
    if bins < 1:
        raise InvalidInput(f"bins must be at least 1, got {bins}")
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, bins + 1)
    if strategy == "quantile":
        return np.asarray(np.percentile(conf, np.linspace(0, 100, bins + 1)), dtype=np.float64)
    raise InvalidInput(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")


def calibration_sums(
    d: Inputs, w: FloatArray, bins: int, strategy: Strategy
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Bin edges, then per resample and bin: weight, confidence sum and outcome sum."""
    key = f"calibration{bins}{strategy}"
    if key not in d.cache:
        conf, outcome = confidence(d)
        edges = bin_edges(conf, bins, strategy)
        ids = np.asarray(np.searchsorted(edges[1:-1], conf), dtype=np.intp)
        rows = np.tile(np.arange(conf.size), 3)
        cols = np.r_[ids, ids + bins, ids + 2 * bins]
        data = np.r_[np.ones(conf.size), conf, outcome]
        d.cache[key] = edges, sparse.csr_matrix((data, (rows, cols)), shape=(conf.size, 3 * bins))
    edges, m = d.cache[key]
    sums = _bin_sums(m, w)
    return edges, sums[:, :bins], sums[:, bins : 2 * bins], sums[:, 2 * bins :]


def ece(bins: int, strategy: Strategy, d: Inputs, w: FloatArray) -> FloatArray:
    _, _, conf_sum, outcome_sum = calibration_sums(d, w, bins, strategy)
    return np.asarray(np.abs(outcome_sum - conf_sum).sum(axis=1) / _total(w), dtype=np.float64)


def _errors(d: Inputs) -> tuple[FloatArray, FloatArray]:
    y: FloatArray = need(d.y, "regression targets")
    yhat: FloatArray = need(d.yhat, "regression predictions")
    return y, yhat - y


def mae(d: Inputs, w: FloatArray) -> FloatArray:
    return row_mean(np.abs(_errors(d)[1]), w)


def rmse(d: Inputs, w: FloatArray) -> FloatArray:
    return np.sqrt(row_mean(_errors(d)[1] ** 2, w))


def mape(d: Inputs, w: FloatArray) -> FloatArray:
    y, err = _errors(d)
    nonzero = (y != 0).astype(np.float64)
    return row_mean(np.abs(err) / np.where(y != 0, np.abs(y), 1.0) * nonzero, w, nonzero)


def r2(d: Inputs, w: FloatArray) -> FloatArray:
    y, err = _errors(d)
    centred = y - np.average(y, weights=d.weight)
    total = _total(w)
    raw = w @ centred**2
    ss_tot = raw - (w @ centred) ** 2 / total
    ss_res = w @ err**2
    flat = ss_tot <= 1e-12 * raw
    return np.where(flat, np.where(ss_res == 0, 1.0, 0.0), 1 - ss_res / np.where(flat, 1, ss_tot))


def resample_weights(weight: FloatArray, n_boot: int, seed: int) -> Iterator[FloatArray]:
    """Bootstrap weight matrices, in chunks: resample counts of each row times its weight.

    The resampled indices are drawn as one ``(resamples, rows)`` matrix per chunk and turned
    into counts with a single ``bincount``.
    """
    n = weight.size
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_CELLS // n)
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        idx = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
        yield counts * weight
