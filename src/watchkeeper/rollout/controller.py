"""Deployments for people and for the controller: one set of operations, one record.

``Rollouts.start/promote/abort`` are what ``watchkeeper deploy`` and ``/api/v1/deployments``
call; ``Rollouts.tick`` is what the scheduler calls every second or so. Both change a
deployment only by writing a new revision of its record (compare-and-set), which servers follow;
nothing here touches traffic directly.

A canary step ends when it has lasted ``min_step_seconds`` *and* the candidate answered
``min_step_requests`` *and* every guard had the data to judge it (labels excepted: they may
never come); a guard that fails at any look rolls the candidate back to 0% at once,
with the guard values in the record. Passing the last step promotes the candidate; the old
production version stays loaded (``keep_previous_seconds``) so ``models rollback`` is instant.

A candidate that a server replica could not load or warm (shadow, canary, blue-green or A/B
alike) is rolled back at the controller's next look, with the replica's reason: replicas only
report it (``DeploymentStore.report_load_failure``), at the revision they loaded for, so a
report about an earlier deployment, or an earlier revision of this one, changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from watchkeeper.errors import Conflict, InvalidInput, NotFound
from watchkeeper.logbook import Logbook
from watchkeeper.monitoring.profile import CategoricalProfile
from watchkeeper.registry import Registry
from watchkeeper.registry.deployments import Deployment, DeploymentEvent, DeploymentStore
from watchkeeper.registry.leases import Fence, StaleEpoch
from watchkeeper.registry.live import LiveStatsStore
from watchkeeper.rollout.ab_units import ABLooks
from watchkeeper.rollout.guards import (
    MIN_LATENCY_REQUESTS,
    OPTIONAL,
    Check,
    StepTraffic,
    counts_mark,
    mark,
    prediction_checks,
    step_traffic,
    traffic_checks,
)
from watchkeeper.rollout.plan import Plan
from watchkeeper.rollout.stats import ABAnalysis, sample_size

log = logging.getLogger("watchkeeper.rollout")
CONTROLLER = "controller"


@dataclass(frozen=True)
class Status:
    """A deployment with its guard values and what happens next."""

    deployment: Deployment | None
    checks: tuple[Check, ...] = ()
    next_step_in_seconds: float | None = None
    candidate_requests: int = 0
    shadow_dropped: int = 0
    ab: ABAnalysis | None = None
    ab_sample_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = self.deployment
        return {
            "deployment": None if d is None else {
                k: v for k, v in d.to_dict().items() if k != "config"
            } | {"plan": {k: v for k, v in d.config.items() if k != "mark"}},
            "checks": [c.to_dict() for c in self.checks],
            "next_step_in_seconds": self.next_step_in_seconds,
            "candidate_requests": self.candidate_requests,
            "shadow_dropped": self.shadow_dropped,
            "ab": None if self.ab is None else self.ab.to_dict(),
            "ab_sample_size_per_arm": self.ab_sample_size,
        }  # fmt: skip


class Rollouts:
    def __init__(
        self, registry: Registry, *, logbook: Logbook | None = None,
        live: LiveStatsStore | None = None, actor: str | None = None,
        clock: Callable[[], datetime] | None = None, ab: ABLooks | None = None,
    ) -> None:  # fmt: skip
        """``ab``: the incremental A/B state to use; a long-lived owner (the server, the
        dashboard) passes its own so it outlives this object; by default a fresh one."""
        self.registry = registry
        self.clock = clock or (lambda: datetime.now(UTC))
        self.store = DeploymentStore(registry.store, clock=self.clock)
        self.logbook = logbook
        self.live = live or LiveStatsStore(registry.engine)
        self.actor = actor or registry.actor
        self._classify: dict[tuple[str, int], bool] = {}
        self._ab = ab or (ABLooks(logbook) if logbook is not None else None)  # per key

    # --- what people do --------------------------------------------------------------------

    def start(
        self, model: str, mode: str, version: int, *, plan: Plan | None = None, reason: str = ""
    ) -> Deployment:
        """Begin a shadow, canary, blue-green or A/B deployment of ``version``."""
        plan = plan or Plan()
        share, state = {
            "shadow": (plan.shadow_sample, "running"),
            "canary": (plan.steps[0], "running"),
            "bluegreen": (0.0, "ready"),
            "ab": (plan.ab_share, "running"),
        }.get(mode, (0.0, ""))
        if not state:
            raise InvalidInput(f"unknown mode '{mode}': shadow, canary, bluegreen or ab")
        now = self.clock()
        production = self.store.production(model)
        baseline = production.version if production is not None else None
        start = now.replace(second=0, microsecond=0)
        counts = counts_mark(self.live, model, baseline, version, start, now + timedelta(minutes=1))
        config = {**plan.to_dict(), "mark": counts}
        return self.store.start(model, mode, version, share=share, config=config,
                                actor=self.actor, reason=reason or f"{mode} started",
                                state=state)  # fmt: skip

    def promote(self, model: str, *, reason: str = "") -> Deployment:
        """Skip ahead by hand: shadow → canary, canary → next step (or production),
        blue-green → switch, A/B → the candidate becomes production."""
        d = self._active(model)
        plan = _plan(d)
        why = reason or f"promoted by {self.actor}"
        if d.mode == "shadow":
            return self._to_canary(d, plan, why)
        if d.mode == "canary" and d.step + 1 < len(plan.steps):
            return self._next_step(d, plan, why)
        return self._finish(d, plan, why)

    def abort(self, model: str, *, reason: str = "") -> Deployment:
        """Back to production only, at once."""
        d = self._active(model)
        return self.store.update(model, d.revision, actor=self.actor, state="aborted", share=0.0,
                                 reason=reason or f"aborted by {self.actor}")  # fmt: skip

    def get(self, model: str) -> Deployment | None:
        self.registry.store.get_model(model)  # NotFound for an unknown model
        return self.store.get(model)

    def history(self, model: str, *, limit: int | None = None) -> list[DeploymentEvent]:
        self.registry.store.get_model(model)
        return self.store.events(model, limit=limit)

    def status(self, model: str) -> Status:
        d = self.get(model)
        if d is None or not d.active:
            return Status(d)
        plan, now = _plan(d), self.clock()
        if d.mode == "ab":
            return self._ab_status(d, plan)
        traffic = self._traffic(d, now)
        checks = self._checks(d, plan, traffic, now, final=True)
        left = plan.min_step_seconds - (now - d.step_started_at).total_seconds()
        return Status(d, tuple(checks), max(left, 0.0), traffic.candidate_requests,
                      traffic.shadow_dropped)  # fmt: skip

    # --- what the controller does ------------------------------------------------------------

    def tick(
        self, fence: Callable[[], Fence | None] | None = None, *,
        on_error: Callable[[Deployment, Exception], None] | None = None,
    ) -> list[Deployment]:  # fmt: skip
        """One look at every active deployment; returns the ones it changed.

        With ``fence`` (the scheduler's), each look acts only while it gives a fence, and
        writes with it; a stale epoch ends the tick (:class:`StaleEpoch` propagates). One
        deployment failing unexpectedly is handed to ``on_error`` and the others still run.
        """
        changed = []
        for d in self.store.all(active_only=True):
            held = fence() if fence is not None else None
            if fence is not None and held is None:
                raise StaleEpoch("the scheduler lease is no longer held: stopping the look")
            try:
                after = self.advance(d, fence=held)
            except StaleEpoch:
                raise
            except Conflict as exc:  # someone else wrote first: look again next tick
                log.info("deployment of %s moved on: %s", d.model, exc.message)
                continue
            except NotFound as exc:
                log.warning("deployment of %s: %s", d.model, exc.message)
                continue
            except Exception as exc:  # one broken deployment never stops the others
                if on_error is None:
                    raise
                on_error(d, exc)
                continue
            if after is not None:
                changed.append(after)
        return changed

    def advance(self, d: Deployment, *, fence: Fence | None = None) -> Deployment | None:
        """Roll back on a failed load or guard; move on when the step is done; else nothing.
        Writes carry ``fence`` (the controller's lease epoch) when given."""
        unloadable = self.store.load_failures(d.model, d.revision)
        if unloadable:
            return self._unloadable(d, unloadable, fence)
        if d.mode not in ("shadow", "canary"):
            return None  # blue-green and A/B change only by a person's decision
        plan, now = _plan(d), self.clock()
        traffic = self._traffic(d, now)
        elapsed = (now - d.step_started_at).total_seconds()
        done = elapsed >= plan.min_step_seconds and (
            traffic.candidate_requests >= plan.min_step_requests
        )
        checks = self._checks(d, plan, traffic, now, final=False)
        judged = not any(c.status == "waiting" and c.name not in OPTIONAL for c in checks)
        ends = d.mode == "canary" or plan.then == "canary"  # else a person ends the shadow
        if ends and done and judged and not any(c.status == "fail" for c in checks):
            checks = self._checks(d, plan, traffic, now, final=True)  # one final look a step
        failed = [c for c in checks if c.status == "fail"]
        details = {"checks": [c.to_dict() for c in checks], "elapsed_s": round(elapsed, 3),
                   "candidate_requests": traffic.candidate_requests}  # fmt: skip
        if failed:
            why = "guard failed: " + "; ".join(
                f"{c.name}={_fmt(c.value)} (limit {_fmt(c.threshold)}; {c.detail})" for c in failed
            )
            log.warning("%s@%s rolled back: %s", d.model, d.candidate, why)
            return self.store.update(d.model, d.revision, actor=CONTROLLER, reason=why,
                                     details=details, state="rolled_back", share=0.0,
                                     fence=fence)  # fmt: skip
        if not (done and judged):
            return None  # a step ends only once every guard could judge it
        if d.mode == "shadow":
            if plan.then != "canary":
                return None  # a passing shadow waits for a person's promote
            return self._to_canary(d, plan, "shadow guards passed", details, actor=CONTROLLER,
                                   fence=fence)  # fmt: skip
        if d.step + 1 < len(plan.steps):
            why = f"step {d.step + 1} passed ({traffic.candidate_requests} requests)"
            return self._next_step(d, plan, why, details, actor=CONTROLLER, fence=fence)
        return self._finish(d, plan, "every canary step passed", details, actor=CONTROLLER,
                            fence=fence)  # fmt: skip

    # --- internals -----------------------------------------------------------------------

    def _unloadable(
        self, d: Deployment, reports: list[DeploymentEvent], fence: Fence | None
    ) -> Deployment:
        """Roll back a candidate that replicas could not load; the first report is the reason."""
        replicas = {r.actor for r in reports}
        why = reports[0].reason
        if len(replicas) > 1:
            why += f" (and on {len(replicas) - 1} other replica(s))"
        details = {"load_failures": [{"replica": r.actor, "at": r.at.isoformat(),
                                      "reason": r.reason} for r in reports]}  # fmt: skip
        log.warning("%s@%s rolled back: %s", d.model, d.candidate, why)
        return self.store.update(d.model, d.revision, actor=CONTROLLER, reason=why,
                                 details=details, state="rolled_back", share=0.0,
                                 fence=fence)  # fmt: skip

    def _active(self, model: str) -> Deployment:
        d = self.get(model)
        if d is None or not d.active:
            raise Conflict(f"model '{model}' has no deployment in progress")
        return d

    def _to_canary(
        self, d: Deployment, plan: Plan, why: str, details: dict[str, Any] | None = None,
        *, actor: str | None = None, fence: Fence | None = None,
    ) -> Deployment:  # fmt: skip
        config = {**d.config, "mark": mark(self.live, d, self.clock())}
        return self.store.update(d.model, d.revision, actor=actor or self.actor, reason=why,
                                 details=details, mode="canary", step=0, share=plan.steps[0],
                                 config=config, step_started_at=self.clock(),
                                 fence=fence)  # fmt: skip

    def _next_step(
        self, d: Deployment, plan: Plan, why: str, details: dict[str, Any] | None = None,
        *, actor: str | None = None, fence: Fence | None = None,
    ) -> Deployment:  # fmt: skip
        config = {**d.config, "mark": mark(self.live, d, self.clock())}
        step = d.step + 1
        return self.store.update(d.model, d.revision, actor=actor or self.actor, reason=why,
                                 details=details, step=step, share=plan.steps[step],
                                 config=config, fence=fence)  # fmt: skip

    def _finish(
        self, d: Deployment, plan: Plan, why: str, details: dict[str, Any] | None = None,
        *, actor: str | None = None, fence: Fence | None = None,
    ) -> Deployment:  # fmt: skip
        """The candidate becomes production; the old one stays loaded for a while."""
        until = self.clock() + timedelta(seconds=plan.keep_previous_seconds)
        return self.store.update(d.model, d.revision, actor=actor or self.actor, reason=why,
                                 details=details, promote=True, state="promoted", share=1.0,
                                 standby=d.baseline, standby_until=until,
                                 fence=fence)  # fmt: skip

    def _traffic(self, d: Deployment, now: datetime) -> StepTraffic:
        traffic = step_traffic(self.live, d, now)
        if traffic.production[0] < MIN_LATENCY_REQUESTS:  # the last step: production is idle
            whole = mark(self.live, d, now)
            traffic = replace(traffic, production=(whole["production:requests"] + [0] * 4)[:4],
                              production_latency=whole["production:latency_ms"])  # fmt: skip
        return traffic

    def _checks(
        self, d: Deployment, plan: Plan, traffic: StepTraffic, now: datetime, *, final: bool
    ) -> list[Check]:
        checks = traffic_checks(traffic, plan, final=final)
        if self.logbook is not None and d.baseline is not None:
            classify = self._is_classifier(d.model, d.baseline)
            checks += prediction_checks(self.logbook, d, plan, now, classify=classify,
                                        final=final)  # fmt: skip
        return checks

    def _is_classifier(self, model: str, version: int) -> bool:
        key = (model, version)
        if key not in self._classify:
            found = self.registry.get(f"{model}@{version}")
            profile = self.registry.profile_of(found)
            predictions = profile.predictions if profile is not None else None
            self._classify[key] = isinstance(predictions, CategoricalProfile)
        return self._classify[key]

    def _ab_status(self, d: Deployment, plan: Plan) -> Status:
        """Per-arm means of the business metric, the always-valid difference and p-value."""
        if self._ab is None:
            return Status(d)
        analysis = self._ab.look(d, plan.ab_metric, now=self.clock(), alpha=plan.guards.alpha)
        size = None
        if plan.ab_mde is not None and analysis is not None and analysis.control.std > 0:
            size = sample_size(plan.ab_mde, std=analysis.control.std, alpha=plan.guards.alpha)
        return Status(d, ab=analysis, ab_sample_size=size)


def _plan(d: Deployment) -> Plan:
    return Plan.from_dict({k: v for k, v in d.config.items() if k != "mark"})


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
