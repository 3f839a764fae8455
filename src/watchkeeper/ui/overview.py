"""The overview: one row per model, each figure with a status colour so a decaying model stands
out. Built from a handful of queries whatever the number of models: one for the models, one for
deployments, one for open alerts, one for the live counts of every model, and two small indexed
look-ups per model for the newest drift share and performance."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from watchkeeper.monitoring.results import CheckResult
from watchkeeper.registry.deployments import Deployment
from watchkeeper.registry.entities import RegisteredModel
from watchkeeper.registry.monitoring import Alert
from watchkeeper.ui.sources import Sources
from watchkeeper.ui.status import ERROR_RATE_FAIL, ERROR_RATE_WARN, grade, of_result, worst
from watchkeeper.ui.timerange import OVERVIEW_RANGE, TimeRange

LABEL_STATISTICS = frozenset({"labelled_rows", "label_coverage", "label_lag_p50_s"})


@dataclass(frozen=True)
class Cell:
    text: str
    state: str  # fail, warn, ok, none (see watchkeeper.ui.status)
    title: str = ""


@dataclass(frozen=True)
class Row:
    model: str
    production: int | None
    deployment: Cell
    traffic: Cell
    errors: Cell
    alerts: Cell
    drift: Cell
    performance: Cell

    @property
    def state(self) -> str:
        return worst(c.state for c in (self.errors, self.alerts, self.drift, self.performance))


def deployment_cell(d: Deployment | None) -> Cell:
    if d is None or d.candidate is None:
        return Cell("production only", "none")
    steps = d.config.get("steps") or []
    if d.state == "rolled_back":
        return Cell(f"v{d.candidate} rolled back", "warn", d.reason)
    if not d.active:
        return Cell(f"{d.mode} v{d.candidate} {d.state.replace('_', ' ')}", "none", d.reason)
    text = {
        "canary": f"canary v{d.candidate} · step {d.step + 1}/{len(steps) or '?'} · "
                  f"{d.share:.0%}",
        "shadow": f"shadow v{d.candidate} · {d.share:.0%} copied",
        "bluegreen": f"blue-green v{d.candidate} · {d.share:.0%}",
        "ab": f"A/B v{d.candidate} · {d.share:.0%}",
    }.get(d.mode, f"{d.mode} v{d.candidate}")  # fmt: skip
    return Cell(text, "ok", d.reason)


def traffic_cells(requests: Sequence[int], seconds: float, label: str) -> tuple[Cell, Cell]:
    """Requests per second and the 5xx share over a range of ``seconds`` (``label`` says which).

    >>> [c.text for c in traffic_cells([600, 570, 0, 30], 600, "10 min")]
    ['1 req/s', '5.0% errors']
    """
    answered = requests[0] if requests else 0
    if not answered:
        return Cell("no traffic", "none"), Cell("–", "none")
    rate = requests[3] / answered
    rps = answered / seconds
    title = f"{answered} requests in the last {label}, {requests[3]} server errors"
    state = grade(rate, ERROR_RATE_WARN, ERROR_RATE_FAIL)
    return Cell(f"{rps:.3g} req/s", "ok", title), Cell(f"{rate:.1%} errors", state, title)


def alerts_cell(alerts: Sequence[Alert]) -> Cell:
    if not alerts:
        return Cell("none open", "ok")
    waiting = [a for a in alerts if a.acknowledged_by is None]
    title = "; ".join(a.message for a in alerts[:5])
    text = f"{len(alerts)} open" + (f", {len(waiting)} new" if waiting else ", acknowledged")
    return Cell(text, "fail" if waiting else "warn", title)


def drift_cell(result: CheckResult | None) -> Cell:
    if result is None or result.value is None:
        return Cell("no result", "none")
    limit = "" if result.threshold is None else f" (limit {result.threshold:.0%})"
    title = f"share of drifted features in the window ending {result.window_end:%Y-%m-%d %H:%M}"
    return Cell(f"{result.value:.0%} drifted{limit}", of_result(result.status), title)


def performance_cell(realised: Sequence[CheckResult], estimated: Sequence[CheckResult]) -> Cell:
    """The newest window's main metric (one with a registered value first); an estimate when
    no labels came back yet."""
    metrics = [r for r in _newest_window(realised) if r.statistic not in LABEL_STATISTICS]
    metrics.sort(key=lambda r: r.threshold is None)
    if metrics and metrics[0].value is not None:
        r = metrics[0]
        limit = "" if r.threshold is None else f" (registered {r.threshold:.3g})"
        return Cell(f"{r.statistic} {r.value:.3g}", of_result(r.status),
                    f"window ending {r.window_end:%Y-%m-%d %H:%M}{limit}")  # fmt: skip
    guesses = [r for r in _newest_window(estimated) if r.value is not None]
    if guesses:
        r = guesses[0]
        return Cell(f"{r.statistic} ≈{r.value:.3g}", "none", "estimated: no labels yet")
    return Cell("no labels", "none")


def _newest_window(results: Sequence[CheckResult]) -> list[CheckResult]:
    if not results:
        return []
    end = max(r.window_end for r in results)
    return [r for r in results if r.window_end == end]


def row(
    model: RegisteredModel, deployment: Deployment | None, requests: Sequence[int],
    alerts: Sequence[Alert], drift: CheckResult | None, realised: Sequence[CheckResult],
    estimated: Sequence[CheckResult], tr: TimeRange,
) -> Row:  # fmt: skip
    seconds = (tr.end - tr.start).total_seconds()
    traffic, errors = traffic_cells(requests, seconds, tr.label)
    return Row(model.name, model.production_version, deployment_cell(deployment), traffic,
               errors, alerts_cell(alerts), drift_cell(drift),
               performance_cell(realised, estimated))  # fmt: skip


def load(sources: Sources, tr: TimeRange | None = None, *, now: datetime | None = None
         ) -> list[Row]:  # fmt: skip
    """Every model's row; traffic and errors over ``tr`` (default: the last 15 minutes), drift
    and performance from the newest monitor window, whatever its age."""
    tr = tr or TimeRange.parse(OVERVIEW_RANGE, now=now)
    registry, monitoring = sources.registry, sources.monitoring
    sums = sources.live.sums(tr.start, tr.end, kind="requests", width=4)
    requests: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (name, _version, _bucket), counts in sums.items():
        requests[name] = [a + b for a, b in zip(requests[name], counts, strict=True)]
    deployments = {d.model: d for d in registry.deployments.all()}
    alerts: dict[str, list[Alert]] = defaultdict(list)
    for alert in monitoring.alerts():
        alerts[alert.model].append(alert)
    rows = []
    for model in registry.list_models():
        drift = monitoring.series(model.name, check="drift", feature="",
                                  statistic="drift_share", newest=1)  # fmt: skip
        realised = monitoring.series(model.name, check="performance", newest=12)
        estimated = [] if realised else monitoring.series(model.name, check="estimated",
                                                          newest=6)  # fmt: skip
        rows.append(row(model, deployments.get(model.name), requests[model.name],
                        alerts[model.name], drift[-1] if drift else None, realised,
                        estimated, tr))  # fmt: skip
    return rows
