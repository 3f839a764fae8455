"""The model page's data: versions table, deployment panel, and charts over time."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.registry.entities import ModelVersion
from watchkeeper.rollout.controller import Status
from watchkeeper.rollout.plan import Plan
from watchkeeper.ui import charts
from watchkeeper.ui.charts import PALETTE, Figure
from watchkeeper.ui.overview import LABEL_STATISTICS
from watchkeeper.ui.series import by_statistic, failures, points, stamp, traffic
from watchkeeper.ui.sources import Sources
from watchkeeper.ui.status import COLOURS, of_result
from watchkeeper.ui.timerange import TimeRange


@dataclass(frozen=True)
class Link:
    label: str
    text: str
    href: str | None = None


@dataclass(frozen=True)
class VersionRow:
    version: int
    stage: str
    aliases: tuple[str, ...]
    metrics: tuple[tuple[str, str], ...]
    created: str
    created_by: str
    lineage: tuple[Link, ...]
    gate: str | None
    gate_title: str
    production: bool
    validated: bool = True  # False: registered without a signature, requests go unchecked


def version_rows(versions: Sequence[ModelVersion]) -> list[VersionRow]:
    """Newest first; lineage is the training run, data and parent version, when recorded."""
    out = []
    for v in sorted(versions, key=lambda v: -v.version):
        lineage = []
        if v.run_id or v.run_url:
            web = v.run_url is not None and v.run_url.startswith(("http://", "https://"))
            lineage.append(Link("run", v.run_id or v.run_url or "", v.run_url if web else None))
        if v.data_uri:
            lineage.append(Link("data", v.data_uri))
        if "parent_version" in v.tags:
            lineage.append(Link("parent", f"v{v.tags['parent_version']}",
                                f"#version-{v.tags['parent_version']}"))  # fmt: skip
        gate = v.tags.get("gate")
        out.append(VersionRow(
            version=v.version, stage=v.stage, aliases=v.aliases,
            metrics=tuple((k, f"{m:.4g}") for k, m in sorted(v.metrics.items())),
            created=f"{v.created_at:%Y-%m-%d %H:%M}", created_by=v.created_by,
            lineage=tuple(lineage), gate=gate, gate_title=_gate_title(v.tags),
            production=v.stage == "production", validated=bool(v.signature),
        ))  # fmt: skip
    return out


def _gate_title(tags: dict[str, str]) -> str:
    if "gate" not in tags:
        return ""
    parts = [f"gate {tags['gate']}"]
    if tags.get("gate_comparison"):
        parts.append(tags["gate_comparison"])
    try:
        report = json.loads(tags.get("gate_report", ""))
    except ValueError:
        report = None
    if isinstance(report, dict) and report.get("reasons"):
        parts += [str(r) for r in report["reasons"]][:5]
    return "; ".join(parts)


@dataclass(frozen=True)
class Step:
    share: float
    state: str  # done, current, pending


@dataclass(frozen=True)
class Guard:
    name: str
    value: str
    threshold: str
    state: str
    detail: str


@dataclass(frozen=True)
class Panel:
    mode: str
    state: str
    active: bool
    candidate: int | None
    baseline: int | None
    share: float
    steps: tuple[Step, ...]
    guards: tuple[Guard, ...]
    reason: str
    updated: str
    updated_by: str
    next_step: str | None
    candidate_requests: int
    shadow_dropped: int = 0
    ab: tuple[tuple[str, str], ...] = field(default_factory=tuple)


_GUARD_STATE = {"ok": "ok", "fail": "fail", "waiting": "none"}


def deployment_panel(status: Status) -> Panel | None:
    """The deployment's progress and its guards against their thresholds."""
    d = status.deployment
    if d is None:
        return None
    try:
        plan = Plan.from_dict({k: v for k, v in d.config.items() if k != "mark"})
    except InvalidInput:
        plan = Plan()
    steps: tuple[Step, ...] = ()
    if d.mode == "canary":
        steps = tuple(Step(s, "done" if i < d.step else "current" if i == d.step and d.active
                           else "pending" if d.active else "done" if d.state == "promoted"
                           else "pending")
                      for i, s in enumerate(plan.steps))  # fmt: skip
    guards = tuple(Guard(c.name, _num(c.value), _num(c.threshold),
                         _GUARD_STATE.get(c.status, "none"), c.detail)
                   for c in status.checks)  # fmt: skip
    ab: tuple[tuple[str, str], ...] = ()
    if status.ab is not None:
        ab = tuple((k, _num(v) if isinstance(v, float) else str(v))
                   for k, v in status.ab.to_dict().items()
                   if not isinstance(v, (dict, list)))  # fmt: skip
    wait = status.next_step_in_seconds
    return Panel(
        mode=d.mode, state=d.state, active=d.active, candidate=d.candidate, baseline=d.baseline,
        share=d.share, steps=steps, guards=guards, reason=d.reason,
        updated=f"{d.updated_at:%Y-%m-%d %H:%M:%S}", updated_by=d.updated_by,
        next_step=None if wait is None else f"{wait:.0f} s", ab=ab,
        candidate_requests=status.candidate_requests, shadow_dropped=status.shadow_dropped,
    )  # fmt: skip


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


@dataclass(frozen=True)
class FeatureRow:
    name: str
    statistic: str
    value: str
    threshold: str
    state: str


def feature_rows(names: Sequence[str], latest: Sequence[CheckResult]) -> list[FeatureRow]:
    """Every input feature with its newest drift result; drifted ones first."""
    newest: dict[str, CheckResult] = {}
    for result in latest:
        if result.check == "drift" and result.feature:
            known = newest.get(result.feature)
            if known is None or result.window_end >= known.window_end:
                newest[result.feature] = result
    rows = []
    for name in dict.fromkeys([*names, *newest]):
        r = newest.get(name)
        if r is None:
            rows.append(FeatureRow(name, "", "–", "–", "none"))
        else:
            rows.append(FeatureRow(name, r.statistic, _num(r.value), _num(r.threshold),
                                   of_result(r.status)))  # fmt: skip
    rank = {"fail": 0, "warn": 1, "ok": 2, "none": 3}
    return sorted(rows, key=lambda f: rank[f.state])


def model_charts(sources: Sources, name: str, tr: TimeRange) -> dict[str, Figure]:
    """Every chart of the model page, each at most a few hundred points."""
    requests = sources.live.sums(tr.start, tr.end, kind="requests", width=4, model=name,
                                 bucket_seconds=tr.bucket_seconds)  # fmt: skip
    latency = sources.live.latency_sums(tr.start, tr.end, model=name,
                                        bucket_seconds=tr.bucket_seconds)  # fmt: skip
    t = traffic(tr, requests, latency)
    per = f"per bucket of {_duration(tr.bucket_seconds)}"
    out: dict[str, Figure] = {
        "chart-traffic": charts.figure(f"requests/s and errors/s ({per})", [
            charts.line("requests/s", t.times, t.requests_per_s, colour=PALETTE[0]),
            charts.line("5xx/s", t.times, t.errors_per_s, colour=COLOURS["fail"]),
            charts.line("4xx/s", t.times, t.rejected_per_s, colour=COLOURS["warn"]),
        ], yaxis={"rangemode": "tozero"}),
        "chart-latency": charts.figure("latency (ms)", [
            charts.line("p50", t.times, t.p50_ms, colour=PALETTE[0]),
            charts.line("p99", t.times, t.p99_ms, colour=PALETTE[1]),
        ], yaxis={"rangemode": "tozero"}),
        "chart-shares": charts.figure("traffic share per version", [
            charts.line(f"v{v}", t.times, s, colour=PALETTE[i % len(PALETTE)], group="one")
            for i, (v, s) in enumerate(t.shares.items())
        ], yaxis={"tickformat": ".0%", "range": [0, 1]}),
    }  # fmt: skip
    if not t.shares:
        out["chart-shares"] = charts.empty("traffic share per version", "no live traffic")
    monitoring = sources.monitoring
    drift = monitoring.series(name, check="drift", feature="", statistic="drift_share",
                              since=tr.start, until=tr.end)  # fmt: skip
    out["chart-drift"] = (
        charts.figure("drift share (drifted features / features)",
                      charts.with_threshold("drift share", points(drift, tr, how="max")),
                      yaxis={"tickformat": ".0%", "rangemode": "tozero"})
        if drift else charts.empty("drift share", "no drift results in this range")
    )  # fmt: skip
    quality = monitoring.series(name, check="quality", since=tr.start, until=tr.end)
    if quality:
        failed = failures(quality, tr)
        out["chart-quality"] = charts.figure("data-quality checks failed per window", [
            charts.bars("failed checks", failed.times, failed.values, colour=COLOURS["fail"],
                        categories=False)
        ], yaxis={"rangemode": "tozero"})  # fmt: skip
    else:
        out["chart-quality"] = charts.empty("data quality", "no data-quality results")
    realised = monitoring.series(name, check="performance", since=tr.start, until=tr.end)
    estimated = monitoring.series(name, check="estimated", since=tr.start, until=tr.end)
    out["chart-performance"] = performance_chart(realised, estimated, tr)
    return charts.over(out, stamp(tr.start), stamp(tr.end))


def performance_chart(
    realised: Sequence[CheckResult], estimated: Sequence[CheckResult], tr: TimeRange
) -> Figure:
    """Realised metrics (with the registered value dashed), estimates dotted, and the median
    label lag in hours on the right axis."""
    traces: list[Figure] = []
    groups = by_statistic(realised)
    colour = 0
    for stat, items in groups.items():
        if stat in LABEL_STATISTICS:
            continue
        p = points(items, tr)
        traces.append(charts.line(stat, p.times, p.values, colour=PALETTE[colour]))
        if any(v is not None for v in p.thresholds):
            traces.append(charts.line(f"{stat} (registered)", p.times, p.thresholds,
                                      dash="dash", colour=PALETTE[colour]))  # fmt: skip
        colour = (colour + 1) % len(PALETTE)
    for stat, items in by_statistic(estimated).items():
        p = points(items, tr)
        traces.append(charts.line(f"{stat} (estimated)", p.times, p.values, dash="dot",
                                  colour=PALETTE[colour]))  # fmt: skip
        colour = (colour + 1) % len(PALETTE)
    if not traces:
        return charts.empty("performance", "no labelled or estimated windows")
    lag = groups.get("label_lag_p50_s")
    if lag:
        p = points(lag, tr)
        hours = [None if v is None else round(v / 3600, 3) for v in p.values]
        traces.append(charts.line("median label lag (h)", p.times, hours, dash="dashdot",
                                  colour="#757575", axis="y2"))  # fmt: skip
    below = {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.18, "yanchor": "top"}
    return charts.figure("performance: realised and estimated", traces, legend=below,
                         height=300, margin={"l": 50, "r": 45, "t": 36, "b": 80},
                         yaxis2={"overlaying": "y", "side": "right", "title": {"text": "h"},
                                 "rangemode": "tozero", "showgrid": False})  # fmt: skip


def label_note(coverage: CheckResult | None, lag: CheckResult | None) -> str:
    """The newest label coverage and lag, in words.

    >>> label_note(None, None)
    'No labels have come back yet.'
    """
    parts = []
    if coverage is not None and coverage.value is not None:
        parts.append(f"label coverage {coverage.value:.1%}")
    if lag is not None and lag.value is not None:
        parts.append(f"median label lag {lag.value / 3600:.3g} h")
    if not parts:
        return "No labels have come back yet."
    return "Newest labelled window: " + ", ".join(parts) + "."


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"
