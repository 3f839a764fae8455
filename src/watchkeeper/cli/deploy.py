"""``watchkeeper deploy``: shadow, canary, blue-green and A/B deployments, and their state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from watchkeeper.cli._common import new_app, open_registry, print_json, settings, table
from watchkeeper.config import parse_duration
from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import Logbook
from watchkeeper.registry.deployments import Deployment
from watchkeeper.rollout.controller import Rollouts, Status
from watchkeeper.rollout.plan import Guards, Plan

app = new_app("Deploy a candidate beside production: shadow, canary, blue-green, A/B.")

Name = Annotated[str, typer.Argument(help="Model name.")]
Version = Annotated[int, typer.Argument(help="The candidate version.")]
Reason = Annotated[str, typer.Option(help="Why (kept in the audit log).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
StepTime = Annotated[str, typer.Option(help="Minimum time per step: 30s, 5m, 1h.")]
StepRequests = Annotated[int, typer.Option(help="Minimum candidate requests per step.")]
ErrorMargin = Annotated[
    float, typer.Option(help="Guard: candidate 5xx rate may exceed production's by this.")
]
LatencyRatio = Annotated[float, typer.Option(help="Guard: candidate p99 / production p99 limit.")]
Distance = Annotated[
    float, typer.Option(help="Guard: Jensen-Shannon distance limit between the predictions.")
]


@contextmanager
def _rollouts(ctx: typer.Context) -> Iterator[Rollouts]:
    with open_registry(ctx) as registry:
        logbook = Logbook(settings(ctx).resolved_logbook_url)
        yield Rollouts(registry, logbook=logbook)


def _guards(error_margin: float, latency_ratio: float, distance: float,
            min_agreement: float | None = None) -> Guards:  # fmt: skip
    return Guards(max_error_rate_increase=error_margin, max_latency_ratio=latency_ratio,
                  max_prediction_distance=distance, min_agreement=min_agreement)  # fmt: skip


def _seconds(text: str) -> float:
    return parse_duration(text).total_seconds()


def _steps(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) / 100 for p in text.split(","))
    except ValueError as exc:
        raise InvalidInput(f"--steps '{text}' must be percentages like 1,5,25,50,100") from exc


def _start(ctx: typer.Context, name: str, mode: str, version: int, plan: Plan, reason: str,
           as_json: bool) -> None:  # fmt: skip
    with _rollouts(ctx) as rollouts:
        d = rollouts.start(name, mode, version, plan=plan, reason=reason)
    _show(d, as_json)


@app.command()
def shadow(
    ctx: typer.Context, name: Name, version: Version,
    sample: Annotated[float, typer.Option(help="Share of requests copied (0-1].")] = 1.0,
    then: Annotated[str, typer.Option(help="After passing: 'canary' or 'none' (wait).")] = "none",
    steps: Annotated[
        str, typer.Option(help="The canary's shares in percent (with --then canary).")
    ] = "1,5,25,50,100",
    step_time: StepTime = "5m", step_requests: StepRequests = 100,
    max_error_rate_increase: ErrorMargin = 0.01, max_latency_ratio: LatencyRatio = 1.5,
    max_prediction_distance: Distance = 0.1,
    min_agreement: Annotated[
        float | None, typer.Option(help="Guard: least share of identical predictions.")
    ] = None,
    keep: Annotated[str, typer.Option(help="Keep the old version loaded this long.")] = "30m",
    reason: Reason = "", as_json: Json = False,
) -> None:  # fmt: skip
    """Copy live requests to VERSION off the response path; its answers are logged only."""
    plan = Plan(shadow_sample=sample, then=then,  # type: ignore[arg-type]
                steps=_steps(steps), keep_previous_seconds=_seconds(keep),
                min_step_seconds=_seconds(step_time), min_step_requests=step_requests,
                guards=_guards(max_error_rate_increase, max_latency_ratio,
                               max_prediction_distance, min_agreement))  # fmt: skip
    _start(ctx, name, "shadow", version, plan, reason, as_json)


@app.command()
def canary(
    ctx: typer.Context, name: Name, version: Version,
    steps: Annotated[str, typer.Option(help="Candidate shares in percent.")] = "1,5,25,50,100",
    step_time: StepTime = "5m", step_requests: StepRequests = 100,
    max_error_rate_increase: ErrorMargin = 0.01, max_latency_ratio: LatencyRatio = 1.5,
    max_prediction_distance: Distance = 0.1,
    keep: Annotated[str, typer.Option(help="Keep the old version loaded this long.")] = "30m",
    reason: Reason = "", as_json: Json = False,
) -> None:  # fmt: skip
    """Give VERSION a widening share of traffic while its guards hold; promote at the end."""
    plan = Plan(steps=_steps(steps), min_step_seconds=_seconds(step_time),
                min_step_requests=step_requests, keep_previous_seconds=_seconds(keep),
                guards=_guards(max_error_rate_increase, max_latency_ratio,
                               max_prediction_distance))  # fmt: skip
    _start(ctx, name, "canary", version, plan, reason, as_json)


@app.command()
def bluegreen(
    ctx: typer.Context, name: Name, version: Version,
    keep: Annotated[str, typer.Option(help="Keep the old version loaded this long.")] = "30m",
    reason: Reason = "", as_json: Json = False,
) -> None:  # fmt: skip
    """Load and warm VERSION beside production; `deploy promote` switches all traffic at once."""
    _start(ctx, name, "bluegreen", version, Plan(keep_previous_seconds=_seconds(keep)), reason,
           as_json)  # fmt: skip


@app.command()
def ab(
    ctx: typer.Context, name: Name, version: Version,
    share: Annotated[float, typer.Option(help="Candidate's share in percent.")] = 50.0,
    metric: Annotated[str, typer.Option(help="Feedback outcome compared.")] = "conversion",
    mde: Annotated[
        float | None, typer.Option(help="Minimum detectable effect, for the sample size.")
    ] = None,
    routing_field: Annotated[
        str | None, typer.Option(help="Request field keying users (else X-Routing-Key).")
    ] = None,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    reason: Reason = "", as_json: Json = False,
) -> None:  # fmt: skip
    """Split traffic between production and VERSION (sticky per routing key) and compare a
    business metric with an always-valid sequential test."""
    plan = Plan(ab_share=share / 100, ab_metric=metric, ab_mde=mde, routing_field=routing_field,
                guards=Guards(alpha=alpha))  # fmt: skip
    _start(ctx, name, "ab", version, plan, reason, as_json)


@app.command()
def status(ctx: typer.Context, name: Name, as_json: Json = False) -> None:
    """Mode, step, share, guard values against their thresholds, time to the next step."""
    with _rollouts(ctx) as rollouts:
        found = rollouts.status(name)
    if as_json:
        print_json(found.to_dict())
        return
    _print_status(found)


@app.command()
def promote(ctx: typer.Context, name: Name, reason: Reason = "", as_json: Json = False) -> None:
    """Skip ahead by hand: shadow → canary, the next canary step, the blue-green switch, or the
    A/B candidate to production."""
    with _rollouts(ctx) as rollouts:
        _show(rollouts.promote(name, reason=reason), as_json)


@app.command()
def abort(ctx: typer.Context, name: Name, reason: Reason = "", as_json: Json = False) -> None:
    """Stop the deployment: production answers everything again, at once."""
    with _rollouts(ctx) as rollouts:
        _show(rollouts.abort(name, reason=reason), as_json)


@app.command()
def history(
    ctx: typer.Context, name: Name,
    limit: Annotated[int, typer.Option(help="Newest N changes.")] = 50, as_json: Json = False,
) -> None:  # fmt: skip
    """Every change of NAME's deployments, newest first, with who and why."""
    with _rollouts(ctx) as rollouts:
        events = rollouts.history(name, limit=limit)
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    table(f"{name} deployments", ["at", "actor", "mode", "state", "candidate", "share", "reason"],
          [(f"{e.at:%F %T}", e.actor, e.mode, e.state, e.candidate, f"{e.share:.0%}", e.reason)
           for e in events])  # fmt: skip


def _show(d: Deployment, as_json: bool) -> None:
    if as_json:
        print_json({k: v for k, v in d.to_dict().items() if k != "config"})
        return
    typer.echo(f"{d.model}: {d.mode} of version {d.candidate} {d.state}, "
               f"{_share_text(d)} (step {d.step}) — {d.reason}")  # fmt: skip


def _share_text(d: Deployment) -> str:
    if d.mode == "shadow":
        return f"{d.share:.0%} of requests copied"
    return f"{d.share:.0%} of traffic"


def _print_status(found: Status) -> None:
    d = found.deployment
    if d is None:
        typer.echo("no deployment: production answers everything")
        return
    typer.echo(f"{d.model}: {d.mode} of version {d.candidate} beside {d.baseline}, {d.state}, "
               f"{_share_text(d)}, step {d.step}")  # fmt: skip
    typer.echo(f"last change: {d.reason} ({d.updated_by}, {d.updated_at:%F %T} UTC)")
    if found.next_step_in_seconds is not None:
        dropped = (f" (+{found.shadow_dropped} copies dropped: the replicas were busy)"
                   if found.shadow_dropped else "")  # fmt: skip
        typer.echo(f"candidate requests this step: {found.candidate_requests}{dropped}; "
                   f"minimum time left: {found.next_step_in_seconds:.0f} s")  # fmt: skip
    if found.checks:
        table("guards", ["guard", "value", "threshold", "status", "detail"],
              [(c.name, _num(c.value), _num(c.threshold), c.status, c.detail)
               for c in found.checks])  # fmt: skip
    if found.ab is not None:
        a = found.ab
        table("A/B", ["arm", "n", "mean"],
              [("control (production)", a.control.n, f"{a.control.mean:.4g}"),
               ("treatment (candidate)", a.treatment.n, f"{a.treatment.mean:.4g}")])  # fmt: skip
        interval = f"[{a.ci_lower:.4g}, {a.ci_upper:.4g}]"
        typer.echo(f"difference {a.difference:+.4g}, always-valid {1 - a.alpha:.0%} interval "
                   f"{interval}, p = {a.p_value:.3g}: {a.decision}")  # fmt: skip
    if found.ab_sample_size is not None:
        typer.echo(f"sample size per arm for the minimum effect: {found.ab_sample_size}")


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"
