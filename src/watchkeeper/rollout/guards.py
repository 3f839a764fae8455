"""Guard checks: is the candidate holding up against production on the current step?

Counts come from the live aggregates every replica publishes (requests, 4xx, 5xx, latency
sketches), taken as the difference from a *mark* stored when the step began, so a step
sees exactly its own traffic whatever the minute boundaries. Predictions and labels come
from the logbook: a shadow's answers are paired with production's on the same request ids.
Every decision that can be a test is one (``watchkeeper.rollout.stats``): a guard fails when
the candidate is shown worse, not when a raw figure happens to be higher.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from watchkeeper.logbook import Logbook
from watchkeeper.logbook.records import merged_values
from watchkeeper.monitoring.drift import jensenshannon, ks
from watchkeeper.monitoring.labels import match_labels, numeric_labels
from watchkeeper.monitoring.sketch import LogSketch
from watchkeeper.registry.deployments import Deployment
from watchkeeper.registry.live import LiveStatsStore, latency_sketch, read_latency
from watchkeeper.rollout.plan import Plan
from watchkeeper.rollout.stats import (
    compare_predictions,
    distance_lower_bound,
    error_rate_guard,
    latency_guard,
    loss_guard,
)

Status = Literal["ok", "fail", "waiting"]
KINDS = ("requests", "shadow_dropped")  # plain counts; latency is a sketch (``latency_ms``)
MIN_LATENCY_REQUESTS = 50
MIN_PREDICTIONS = 100
OPTIONAL = frozenset({"performance"})  # labels may never come: a step does not wait for them


@dataclass(frozen=True)
class Check:
    """One guard's value against its threshold; ``waiting`` until there is enough data."""

    name: str
    value: float | None
    threshold: float | None
    status: Status
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StepTraffic:
    """Requests of each side in the current step: [answered, ok, 4xx, 5xx] and latency
    sketches (ms; a stored sketch's dict or an old histogram list is read as one)."""

    production: list[int]
    candidate: list[int]
    production_latency: LogSketch = field(default_factory=latency_sketch)
    candidate_latency: LogSketch = field(default_factory=latency_sketch)
    shadow_dropped: int = 0  # copies a busy replica did not make for a shadow

    def __post_init__(self) -> None:
        for name in ("production_latency", "candidate_latency"):
            value: object = getattr(self, name)
            if not isinstance(value, LogSketch):
                object.__setattr__(self, name, read_latency(value))

    @property
    def candidate_requests(self) -> int:
        return self.candidate[0]


_LABELS = ("label", "label_text")  # the logbook's label columns: numbers/booleans, and text


def span(deployment: Deployment, now: datetime) -> tuple[datetime, datetime]:
    """The live-stats range that covers the whole deployment (whole minutes)."""
    start = deployment.started_at.replace(second=0, microsecond=0)
    return start, now + timedelta(minutes=1)


def mark(live: LiveStatsStore, deployment: Deployment, now: datetime) -> dict[str, Any]:
    """Cumulative counts of both sides now (latency as a sketch's JSON form): stored when a
    step begins."""
    start, end = span(deployment, now)
    return counts_mark(live, deployment.model, deployment.baseline, deployment.candidate,
                       start, end)  # fmt: skip


def counts_mark(
    live: LiveStatsStore, model: str, baseline: int | None, candidate: int | None,
    start: datetime, end: datetime,
) -> dict[str, Any]:  # fmt: skip
    counts = live.merged(model, start, end, kinds=KINDS)
    sketches = live.latency_sums(start, end, model=model)  # summed by the database
    out: dict[str, Any] = {}
    for side, version in (("production", baseline), ("candidate", candidate)):
        for kind in KINDS:
            out[f"{side}:{kind}"] = list(counts.get((version or 0, kind), []))
        latency = sketches.get((model, version or 0, None)) or latency_sketch()
        out[f"{side}:latency_ms"] = latency.to_dict()
    return out


def step_traffic(live: LiveStatsStore, deployment: Deployment, now: datetime) -> StepTraffic:
    """This step's counts: now minus the mark taken when it began."""
    current = mark(live, deployment, now)
    before: Mapping[str, Any] = deployment.config.get("mark") or {}

    def delta(key: str, size: int) -> list[int]:
        now_counts = _pad(current.get(key, []), size)
        then = _pad(list(before.get(key, [])), size)
        return [max(a - b, 0) for a, b in zip(now_counts, then, strict=True)]

    def latency(key: str) -> LogSketch:
        # a mark taken before the sketch holds the old histogram: read as the old rows are
        return read_latency(current.get(key)).since(read_latency(before.get(key)))

    return StepTraffic(
        delta("production:requests", 4), delta("candidate:requests", 4),
        latency("production:latency_ms"), latency("candidate:latency_ms"),
        delta("candidate:shadow_dropped", 1)[0],
    )  # fmt: skip


def _pad(values: list[int], size: int) -> list[int]:
    return (values + [0] * size)[:size]


def traffic_checks(traffic: StepTraffic, plan: Plan, *, final: bool = True) -> list[Check]:
    """Error rate, rejected-request rate and p99 latency, candidate against production.

    The controller looks many times per step: before the step's end (``final=False``) a test
    fails only at a tenth of ``alpha``, so repeated looks do not roll back good candidates;
    the look that ends a step uses ``alpha`` itself."""
    guards = plan.guards
    alpha = guards.alpha if final else guards.alpha / 10
    prod, cand = traffic.production, traffic.candidate
    out: list[Check] = []
    if prod[0] == 0 or cand[0] == 0:
        waiting = f"{cand[0]} candidate / {prod[0]} production requests"
        return [Check("error_rate", None, guards.max_error_rate_increase, "waiting", waiting)]
    for name, index, margin in (("error_rate", 3, guards.max_error_rate_increase),
                                ("rejected_rate", 2, guards.max_quality_increase)):  # fmt: skip
        test = error_rate_guard(prod[index], prod[0], cand[index], cand[0], margin=margin,
                                alpha=alpha, method="z")  # fmt: skip
        detail = (f"candidate {cand[index]}/{cand[0]}, production {prod[index]}/{prod[0]}, "
                  f"p(worse)={test.p_harm:.3g}")  # fmt: skip
        status: Status = "fail" if test.verdict == "worse" else "ok"
        out.append(Check(name, test.difference, margin, status, detail))
    if min(prod[0], cand[0]) < MIN_LATENCY_REQUESTS:
        out.append(Check("latency_p99_ratio", None, guards.max_latency_ratio, "waiting",
                         f"fewer than {MIN_LATENCY_REQUESTS} requests a side"))  # fmt: skip
    else:
        p_side, c_side = traffic.production_latency, traffic.candidate_latency
        if min(p_side.count, c_side.count) == 0:  # requests counted, latency not (yet)
            out.append(Check("latency_p99_ratio", None, guards.max_latency_ratio, "waiting",
                             "no latency recorded for a side"))  # fmt: skip
            return out
        test = latency_guard(p_side, c_side, max_ratio=guards.max_latency_ratio, alpha=alpha)
        p99_prod, p99_cand = p_side.quantile(0.99), c_side.quantile(0.99)
        limit = guards.max_latency_ratio * p99_prod
        detail = (f"p99 candidate {p99_cand:.3g} ms, production {p99_prod:.3g} ms; "
                  f"{max(test.difference + 0.01, 0.0):.1%} of {cand[0]} candidate requests above "
                  f"{limit:.3g} ms, p(worse)={test.p_harm:.3g}")  # fmt: skip
        status = "fail" if test.verdict == "worse" else "ok"
        out.append(Check("latency_p99_ratio", test.statistic, guards.max_latency_ratio, status,
                         detail))  # fmt: skip
    return out


def prediction_checks(
    logbook: Logbook, deployment: Deployment, plan: Plan, now: datetime, *, classify: bool,
    final: bool = True,
) -> list[Check]:  # fmt: skip
    """How differently the candidate answers: agreement and distance (shadow: the same
    requests, paired; canary: the two answered streams), and loss on labelled rows.

    A canary compares the step's answers of both sides; when production answered too little
    in the step (the last one, at 100%), its answers over the whole deployment stand in.
    Tests use a tenth of ``alpha`` before a step's end, as in :func:`traffic_checks`."""
    if deployment.candidate is None or deployment.baseline is None:
        return []
    alpha = plan.guards.alpha if final else plan.guards.alpha / 10
    start = deployment.step_started_at
    shadow = deployment.mode == "shadow"
    columns = ["prediction", "prediction_label", *_LABELS]
    prod = _read(logbook, deployment, deployment.baseline, "primary", start, now, columns)
    if not shadow and prod.num_rows < MIN_PREDICTIONS:  # the last step: production is idle
        prod = _read(logbook, deployment, deployment.baseline, "primary",
                     deployment.started_at, now, columns)  # fmt: skip
    cand = _read(logbook, deployment, deployment.candidate, "shadow" if shadow else "primary",
                 start, now, columns)  # fmt: skip
    guards = plan.guards
    if min(prod.num_rows, cand.num_rows) < MIN_PREDICTIONS:
        logged = f"{cand.num_rows} candidate / {prod.num_rows} production rows logged"
        return [Check("prediction_distance", None, guards.max_prediction_distance, "waiting",
                      logged)]  # fmt: skip
    if shadow:
        paired = prod.join(cand, keys=["request_id", "row"], right_suffix="_c", join_type="inner")
        if paired.num_rows < MIN_PREDICTIONS:
            return [Check("prediction_distance", None, guards.max_prediction_distance,
                          "waiting", f"{paired.num_rows} paired rows")]  # fmt: skip
        p_pred, c_pred = _answers(paired, "", classify), _answers(paired, "_c", classify)
        out = _distance_checks(p_pred, c_pred, plan, classify, paired=True, alpha=alpha)
        out += _loss_checks(paired, paired, "", "_c", plan, classify, paired=True)
        return out
    out = _distance_checks(_answers(prod, "", classify), _answers(cand, "", classify), plan,
                           classify, paired=False, alpha=alpha)  # fmt: skip
    out += _loss_checks(prod, cand, "", "", plan, classify, paired=False)
    return out


def _read(
    logbook: Logbook, deployment: Deployment, version: int, role: str, start: datetime,
    end: datetime, columns: list[str],
) -> pa.Table:  # fmt: skip
    table = logbook.join_feedback(deployment.model, start, end, version=version, role=role,
                                  columns=[c for c in columns if c not in _LABELS])  # fmt: skip
    keep = [c for c in ("request_id", "row", *columns) if c in table.column_names]
    return table.select(keep)


def _answers(table: pa.Table, suffix: str, classify: bool) -> np.ndarray[Any, Any]:
    label = f"prediction_label{suffix}"
    if classify and label in table.column_names and table.column(label).null_count == 0:
        return np.asarray(table.column(label).to_pylist(), dtype=object)
    return np.asarray(table.column(f"prediction{suffix}").to_numpy(zero_copy_only=False))


def _distance_checks(
    prod: np.ndarray[Any, Any], cand: np.ndarray[Any, Any], plan: Plan, classify: bool,
    *, paired: bool, alpha: float,
) -> list[Check]:  # fmt: skip
    """The distance between the two prediction distributions. Two answered streams (canary)
    are different requests: a class distance fails when its lower confidence bound (at the
    look's ``alpha``) is above the limit, else 100 rows of two identical models would fail by
    chance a few times in a hundred looks."""
    limit = plan.guards.max_prediction_distance
    out: list[Check] = []
    if paired:
        found = compare_predictions(prod, cand, task="classification" if classify else "regression",
                                    threshold=limit if classify else None)  # fmt: skip
        distance, agreement = found.distance, found.agreement
        if agreement is not None and plan.guards.min_agreement is not None:
            bad = agreement < plan.guards.min_agreement
            out.append(Check("agreement", agreement, plan.guards.min_agreement,
                             "fail" if bad else "ok", f"{found.n} paired rows"))  # fmt: skip
    elif classify:  # two streams of different requests: the distance has sampling noise
        distance = jensenshannon(prod, cand, threshold=limit)
        bound = distance_lower_bound(*_label_counts(prod, cand), alpha=alpha)
        status: Status = "fail" if bound > limit else "ok"
        out.append(Check("prediction_distance", distance.statistic, distance.threshold, status,
                         f"{distance.method} over {len(prod)} / {len(cand)} rows, "
                         f"{1 - alpha:.1%} lower bound {bound:.3g}"))  # fmt: skip
        return out
    else:
        distance = ks(prod, cand)
    status = "fail" if distance.drifted else "ok"
    out.append(Check("prediction_distance", distance.statistic, distance.threshold, status,
                     f"{distance.method} over {len(prod)} / {len(cand)} rows"))  # fmt: skip
    return out


def _label_counts(
    a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Counts of each label in ``a`` and in ``b``, over the labels of both."""
    labels, index = np.unique(np.concatenate([a, b]).astype(str), return_inverse=True)
    return (np.bincount(index[: len(a)], minlength=len(labels)),
            np.bincount(index[len(a) :], minlength=len(labels)))  # fmt: skip


def _loss_checks(
    prod: pa.Table, cand: pa.Table, p_suffix: str, c_suffix: str, plan: Plan, classify: bool,
    *, paired: bool,
) -> list[Check]:  # fmt: skip
    """Per-row loss on labelled rows: 1 - correct for classes, squared error for values."""
    guards = plan.guards
    if not set(_LABELS) & set(prod.column_names):
        return []
    p_loss, c_loss = _losses(prod, p_suffix, classify), _losses(cand, c_suffix, classify)
    if paired:
        both = np.isfinite(p_loss) & np.isfinite(c_loss)
        p_loss, c_loss = p_loss[both], c_loss[both]
    else:
        p_loss, c_loss = p_loss[np.isfinite(p_loss)], c_loss[np.isfinite(c_loss)]
    if min(p_loss.size, c_loss.size) < guards.min_labels:
        return [Check("performance", None, guards.performance_margin, "waiting",
                      f"{c_loss.size} / {p_loss.size} labelled rows")]  # fmt: skip
    test = loss_guard(p_loss, c_loss, margin=guards.performance_margin, alpha=guards.alpha,
                      paired=paired)  # fmt: skip
    detail = f"{test.method}, p(worse)={test.p_harm:.3g} on {c_loss.size} labelled rows"
    status: Status = "fail" if test.verdict == "worse" else "ok"
    return [Check("performance", test.difference, guards.performance_margin, status, detail)]


def _losses(table: pa.Table, suffix: str, classify: bool) -> np.ndarray[Any, Any]:
    """Per-row loss, NaN where the row has no label. A classifier's labels of any type (numbers,
    booleans, text) are matched to its answers by :func:`~watchkeeper.monitoring.labels.
    match_labels`; a label of a type no answer can be is left out, like a missing one."""

    def column(name: str) -> str:  # a label is the request's, unsuffixed once paired
        return name if name in table.column_names else f"{name}{suffix}"

    labels = merged_values(table, column("label"), column("label_text"))
    if classify:
        answers = merged_values(table, f"prediction{suffix}", f"prediction_label{suffix}")
        found = match_labels(labels, answers)
        loss = np.full(table.num_rows, np.nan)
        loss[found.kept] = (found.y_true != found.y_pred).astype(float)
        return loss
    numbers = numeric_labels(labels)[0]
    predicted = table.column(f"prediction{suffix}").to_numpy(zero_copy_only=False).astype(float)
    return np.asarray((predicted - numbers) ** 2)
