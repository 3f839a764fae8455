"""The evaluation gate: the same judgement for every candidate, however it was made.

Candidate and production score the same held-out rows. The candidate passes when (a) every
declared minimum holds, (b) the paired bootstrap interval of its gain over production on the
gate metric does not reach below ``-tolerance`` (so it is not shown worse), and (c) its own
training data passes the data-quality checks against the production version's signature and
reference profile (except the out-of-range rate: newer data is expected to leave the old
range). A candidate whose whole interval lies within the tolerance of zero is *equal*, and
``on_equal`` decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from watchkeeper.errors import WatchkeeperError
from watchkeeper.models import LoadedModel
from watchkeeper.models.signature import Signature
from watchkeeper.monitoring.performance import evaluate
from watchkeeper.monitoring.profile import DatasetProfile
from watchkeeper.monitoring.quality import check_quality
from watchkeeper.retraining.data import LABEL
from watchkeeper.retraining.spec import LOWER_IS_BETTER, GatePolicy

PAIRED = ("accuracy", "mae", "rmse")  # metrics with a per-row paired bootstrap
MOVES_WITH_DRIFT = ("out_of_range",)


@dataclass(frozen=True)
class GateReport:
    verdict: str  # pass | fail
    comparison: str  # better | equal | worse | inconclusive
    reasons: tuple[str, ...]
    details: dict[str, Any]

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "comparison": self.comparison,
                "reasons": list(self.reasons), **self.details}  # fmt: skip


def run_gate(
    candidate: LoadedModel, production: LoadedModel, evaluation: pd.DataFrame,
    training: pd.DataFrame, *, features: list[str], policy: GatePolicy,
    signature: Signature | None, profile: DatasetProfile | None, seed: int = 0,
) -> GateReport:  # fmt: skip
    classify = production.classes is not None
    task: Literal["classification", "regression"] = "classification" if classify else "regression"
    metric = policy.metric or ("accuracy" if classify else "rmse")
    X, y = evaluation[features], evaluation[LABEL].to_numpy()
    try:
        cand_pred = np.asarray(candidate.predict(X))
    except Exception as exc:  # the user's model, on rows production answers
        raise WatchkeeperError(f"the candidate failed on the evaluation rows: "
                               f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
    prod_pred = np.asarray(production.predict(X))
    if classify:
        y = y.astype(cand_pred.dtype) if cand_pred.dtype.kind in "biuf" else y.astype(str)
    cand_report = evaluate(task, y, cand_pred, n_boot=0)
    prod_report = evaluate(task, y, prod_pred, n_boot=0)
    candidate_metrics = {k: v.value for k, v in cand_report.metrics.items()}
    production_metrics = {k: v.value for k, v in prod_report.metrics.items()}
    reasons: list[str] = []
    minimums = {}
    for name, limit in policy.minimums.items():
        value = candidate_metrics.get(name)
        lower = name in LOWER_IS_BETTER
        ok = value is not None and (value <= limit if lower else value >= limit)
        minimums[name] = {"value": value, "limit": limit, "ok": ok}
        if not ok:
            reasons.append(f"{name} = {value} {'above' if lower else 'below'} the limit {limit}")
    gain, low, high = _paired_gain(metric, y, cand_pred, prod_pred, policy, seed,
                                   candidate_metrics, production_metrics)  # fmt: skip
    comparison = _compare(low, high, policy.tolerance)
    if comparison == "worse":
        interval = f"[{low:+.4g}, {high:+.4g}]"
        reasons.append(f"{metric}: the gain over production {gain:+.4g} (interval {interval}) "
                       f"reaches below -{policy.tolerance:g}")  # fmt: skip
    if comparison == "equal" and policy.on_equal == "archive":
        reasons.append(f"{metric}: no better than production within {policy.tolerance:g} "
                       "(on_equal = archive)")  # fmt: skip
    failures = _quality_failures(training, features, signature, profile)
    if len(failures) > policy.max_quality_failures:
        reasons.append("training data fails data-quality checks: " + "; ".join(failures[:5]))
    details = {
        "metric": metric, "task": task, "n_evaluation": int(len(evaluation)),
        "n_training": int(len(training)), "candidate": candidate_metrics,
        "production": production_metrics, "gain": gain, "interval": [low, high],
        "tolerance": policy.tolerance, "minimums": minimums, "quality_failures": failures,
    }  # fmt: skip
    return GateReport("fail" if reasons else "pass", comparison, tuple(reasons), details)


def _paired_gain(
    metric: str, y: np.ndarray[Any, Any], cand: np.ndarray[Any, Any],
    prod: np.ndarray[Any, Any], policy: GatePolicy, seed: int,
    cand_metrics: dict[str, float], prod_metrics: dict[str, float],
) -> tuple[float, float, float]:  # fmt: skip
    """Candidate minus production, signed so that positive is better, with its interval."""
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    if metric not in PAIRED:  # no per-row form: the point difference, no interval
        point = sign * (cand_metrics[metric] - prod_metrics[metric])
        return point, point, point
    if metric == "accuracy":
        a, b = (cand == y).astype(float), (prod == y).astype(float)
    else:
        yf = y.astype(float)
        power = 1 if metric == "mae" else 2
        a = np.abs(cand.astype(float) - yf) ** power
        b = np.abs(prod.astype(float) - yf) ** power
    rng = np.random.default_rng(seed)
    n = len(a)
    draws = rng.integers(0, n, size=(policy.bootstrap, n))
    ma, mb = a[draws].mean(axis=1), b[draws].mean(axis=1)
    point_a, point_b = a.mean(), b.mean()
    if metric == "rmse":
        ma, mb, point_a, point_b = np.sqrt(ma), np.sqrt(mb), np.sqrt(point_a), np.sqrt(point_b)
    diffs = sign * (ma - mb)
    tail = (1 - policy.confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return float(sign * (point_a - point_b)), float(low), float(high)


def _compare(low: float, high: float, tolerance: float) -> str:
    if low < -tolerance:
        return "worse"
    if low > 0:
        return "better"
    if high <= tolerance:
        return "equal"
    return "inconclusive"  # not shown worse, not shown better, the interval is wide


def _quality_failures(training: pd.DataFrame, features: list[str], signature: Signature | None,
                      profile: DatasetProfile | None) -> list[str]:  # fmt: skip
    if signature is None:
        return []
    report = check_quality(training[features], signature, profile)
    # values beyond the old training range are what retraining on newer data is for: judged
    # are the data's soundness (nulls, types, unseen categories, dead columns), not its drift
    return [f"{f.column or 'rows'}: {f.check}" for f in report.findings
            if f.status == "fail" and f.check not in MOVES_WITH_DRIFT]  # fmt: skip
