"""The rollout controller's state machine on real stores, with a clock it is handed.

Traffic is what server replicas publish (``LiveStats`` → ``live_stats``) and what they log
(``Logbook``); the controller only reads those and writes deployment revisions.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from watchkeeper.config import Settings
from watchkeeper.errors import Conflict
from watchkeeper.logbook import FeedbackItem, Logbook, PredictionBatch
from watchkeeper.registry import Registry
from watchkeeper.registry.live import LiveStatsStore
from watchkeeper.rollout.controller import Rollouts
from watchkeeper.rollout.plan import Guards, Plan
from watchkeeper.serving.live import LiveStats, Publisher

T0 = datetime(2026, 11, 26, 12, 0, 5, tzinfo=UTC)
_replicas = itertools.count()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def world(tmp_path: Path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(2000, 2)), columns=["a", "b"])
    y = (X["a"] > 0).astype(int)
    good = LogisticRegression().fit(X, y)
    settings = Settings(home=tmp_path)
    with Registry(settings) as registry:
        registry.register("m", good, input_example=X, reference_data=X, stage="production")
        registry.register("m", LogisticRegression(C=0.5).fit(X, y), input_example=X,
                          reference_data=X)  # v2: as good  # fmt: skip
        registry.register("m", DummyClassifier(strategy="constant", constant=1).fit(X, y),
                          input_example=X, reference_data=X)  # v3: answers 1 always  # fmt: skip
        clock = Clock()
        logbook = Logbook(settings.resolved_logbook_url)
        rollouts = Rollouts(registry, logbook=logbook, clock=clock, actor="ann")
        yield registry, rollouts, clock, logbook, X, {1: good, 2: None, 3: None}
        logbook.close()


def serve(registry: Registry, clock: Clock, version: int, n: int, *, errors: int = 0,
          latency: float = 0.003) -> None:  # fmt: skip
    """``n`` requests answered by ``version`` on a replica of their own, published."""
    live = LiveStats(replica=f"r{next(_replicas)}", clock=clock)
    for i in range(n):
        live.observe_request("m", version, latency, 500 if i < errors else 200)
    Publisher(live, LiveStatsStore(registry.engine).write).publish()


def log(registry: Registry, logbook: Logbook, clock: Clock, X: pd.DataFrame, version: int,
        role: str, request: str, *, labels: np.ndarray | None = None) -> None:  # fmt: skip
    model = registry.load(f"m@{version}")
    logbook.log_predictions(PredictionBatch(
        request_id=request, model="m", version=version, role=role, timestamp=clock(),
        features=X.to_numpy(), feature_names=["a", "b"],
        predictions=np.asarray(model.predict(X), dtype=float), probabilities=None,
        classes=None, latency_s=0.001,
    ))  # fmt: skip
    if labels is not None:
        items = [FeedbackItem(request_id=request, row=i, label=int(v), timestamp=clock())
                 for i, v in enumerate(labels)]  # fmt: skip
        logbook.log_feedback(items)
    logbook.flush()


FAST = Plan(steps=(0.1, 0.5, 1.0), min_step_seconds=10, min_step_requests=50)


def test_a_good_canary_walks_every_step_to_production(world) -> None:
    registry, rollouts, clock, logbook, X, _ = world
    d = rollouts.start("m", "canary", 2, plan=FAST)
    assert (d.share, d.step) == (0.1, 0)
    clock.advance(1)
    assert rollouts.tick() == []  # no traffic yet: nothing to judge, nothing to do
    serve(registry, clock, 1, 900)
    serve(registry, clock, 2, 100)
    log(registry, logbook, clock, X.iloc[:900], 1, "primary", "p0")
    log(registry, logbook, clock, X.iloc[900:1000], 2, "primary", "c0")
    assert rollouts.tick() == []  # enough requests, but the step has not lasted 10 s
    clock.advance(10)
    (d,) = rollouts.tick()
    assert (d.step, d.share) == (1, 0.5)
    assert "step 1 passed" in d.reason
    serve(registry, clock, 1, 30)
    serve(registry, clock, 2, 30)  # below min_step_requests
    clock.advance(11)
    assert rollouts.tick() == []
    serve(registry, clock, 2, 40)
    log(registry, logbook, clock, X.iloc[:30], 1, "primary", "p1")
    log(registry, logbook, clock, X.iloc[1000:1070], 2, "primary", "c1")
    assert rollouts.tick() == []  # 70 answers logged: too few to compare with production's
    log(registry, logbook, clock, X.iloc[1070:1100], 2, "primary", "c1b")
    clock.advance(1)
    (d,) = rollouts.tick()
    assert (d.step, d.share) == (2, 1.0)
    serve(registry, clock, 2, 100)  # the last step: production answers nothing
    log(registry, logbook, clock, X.iloc[1100:1200], 2, "primary", "c2")
    clock.advance(11)
    (d,) = rollouts.tick()
    assert d.state == "promoted"
    assert registry.get("m@production").version == 2
    assert d.standby == 1  # kept loaded for an instant rollback
    assert d.standby_until is not None
    assert d.standby_until > clock()
    events = [(e.actor, e.step, e.state) for e in reversed(rollouts.history("m"))]
    assert events[0][0] == "ann"
    assert events[-1] == ("controller", 2, "promoted")
    # every step was judged by every guard, the last one against production's earlier answers
    for event in rollouts.history("m")[:3]:
        status = {c["name"]: c["status"] for c in event.details["checks"]}
        status.pop("performance")  # no labels came back
        assert status == {"error_rate": "ok", "rejected_rate": "ok", "latency_p99_ratio": "ok",
                          "prediction_distance": "ok"}, event.details  # fmt: skip


def test_a_step_waits_until_every_guard_can_judge_it(world) -> None:
    """Regression: a step ended on time and requests alone, so a candidate whose answers
    differ passed the first step whenever its logged rows lagged behind its request count
    (seen end to end: "prediction_distance waiting: 80 candidate / 787 production rows")."""
    registry, rollouts, clock, logbook, X, _ = world
    rollouts.start("m", "canary", 3, plan=FAST)
    serve(registry, clock, 1, 900)
    serve(registry, clock, 3, 100)
    log(registry, logbook, clock, X.iloc[:900], 1, "primary", "p")
    log(registry, logbook, clock, X.iloc[900:980], 3, "primary", "c")  # not yet 100 rows
    clock.advance(11)
    assert rollouts.tick() == []
    checks = {c.name: c for c in rollouts.status("m").checks}
    assert checks["prediction_distance"].status == "waiting"
    log(registry, logbook, clock, X.iloc[980:1010], 3, "primary", "c2")
    clock.advance(1)
    (d,) = rollouts.tick()
    assert (d.state, d.step) == ("rolled_back", 0)
    assert "prediction_distance" in d.reason


def test_a_sample_that_happens_to_lean_one_way_is_not_a_different_model(world) -> None:
    """Regression: the canary's prediction distance was a raw threshold on two samples of
    different requests, so 100 answers of a model as good as production (even production's
    own answers) crossed 0.1 by chance a few times in a hundred looks (seen in the benchmark:
    a good candidate rolled back during a full canary)."""
    registry, rollouts, clock, logbook, X, _ = world
    rollouts.start("m", "canary", 2, plan=FAST)
    serve(registry, clock, 1, 900)
    serve(registry, clock, 2, 100)
    rest = X.iloc[900:]
    leaning = pd.concat([rest[rest["a"] > 0].head(63), rest[rest["a"] <= 0].head(37)])
    log(registry, logbook, clock, X.iloc[:900], 1, "primary", "p")
    log(registry, logbook, clock, leaning, 2, "primary", "c")
    clock.advance(2)
    assert rollouts.tick() == []  # a look before the step's end: not shown different
    (check,) = [c for c in rollouts.status("m").checks if c.name == "prediction_distance"]
    assert check.value is not None
    assert check.value > 0.1  # the raw distance alone would have failed it
    assert "lower bound" in check.detail
    clock.advance(9)
    (d,) = rollouts.tick()  # the look that ends the step, at alpha: not shown different either
    assert (d.state, d.step) == ("running", 1)


def test_the_last_step_is_judged_against_production_before_it(world) -> None:
    registry, rollouts, clock, logbook, X, _ = world
    plan = Plan(steps=(0.5, 1.0), min_step_seconds=10, min_step_requests=50)
    rollouts.start("m", "canary", 2, plan=plan)
    serve(registry, clock, 1, 500)
    serve(registry, clock, 2, 500)
    log(registry, logbook, clock, X.iloc[:500], 1, "primary", "p")
    log(registry, logbook, clock, X.iloc[500:1000], 2, "primary", "c")
    clock.advance(11)
    (d,) = rollouts.tick()
    assert d.share == 1.0
    serve(registry, clock, 1, 3)  # requests in flight at the switch
    serve(registry, clock, 2, 100, latency=0.3)  # slow once it takes everything
    log(registry, logbook, clock, X.iloc[1000:1100], 2, "primary", "c2")
    clock.advance(2)
    (d,) = rollouts.tick()
    assert d.state == "rolled_back"
    assert "latency_p99_ratio" in d.reason
    assert registry.get("m@production").version == 1


@pytest.mark.parametrize(
    ("errors", "latency", "guard"),
    [(10, 0.003, "error_rate"), (0, 0.3, "latency_p99_ratio")],
)
def test_a_failing_guard_rolls_back_at_the_first_step(world, errors, latency, guard) -> None:
    registry, rollouts, clock, _logbook, _X, _ = world
    rollouts.start("m", "canary", 2, plan=FAST)
    serve(registry, clock, 1, 900)
    serve(registry, clock, 2, 100, errors=errors, latency=latency)
    clock.advance(2)  # well before the step's end: a clear failure does not wait
    (d,) = rollouts.tick()
    assert d.state == "rolled_back"
    assert d.share == 0.0
    assert not d.active
    assert d.reason.startswith(f"guard failed: {guard}=")
    assert registry.get("m@production").version == 1
    (event, *_) = rollouts.history("m")
    assert {c["name"]: c["status"] for c in event.details["checks"]}[guard] == "fail"


def test_a_candidate_whose_answers_differ_is_rolled_back(world) -> None:
    registry, rollouts, clock, logbook, X, _ = world
    rollouts.start("m", "canary", 3, plan=FAST)
    serve(registry, clock, 1, 900)
    serve(registry, clock, 3, 100)
    log(registry, logbook, clock, X.iloc[:900], 1, "primary", "p")
    log(registry, logbook, clock, X.iloc[900:1100], 3, "primary", "c")
    clock.advance(11)
    (d,) = rollouts.tick()
    assert d.state == "rolled_back"
    assert "prediction_distance" in d.reason


def test_shadow_compares_the_same_requests_then_hands_over_to_canary(world) -> None:
    registry, rollouts, clock, logbook, X, _ = world
    plan = Plan(steps=(0.1, 1.0), min_step_seconds=10, min_step_requests=50, then="canary",
                guards=Guards(min_agreement=0.9))  # fmt: skip
    d = rollouts.start("m", "shadow", 2, plan=plan)
    assert (d.mode, d.share) == ("shadow", 1.0)
    serve(registry, clock, 1, 300)
    serve(registry, clock, 2, 300)  # every request copied
    labels = (X["a"].iloc[:300] > 0).astype(int).to_numpy()
    log(registry, logbook, clock, X.iloc[:300], 1, "primary", "q", labels=labels)
    log(registry, logbook, clock, X.iloc[:300], 2, "shadow", "q")
    clock.advance(11)
    (d,) = rollouts.tick()
    assert (d.mode, d.step, d.share, d.state) == ("canary", 0, 0.1, "running")
    checks = {c["name"]: c for c in rollouts.history("m")[0].details["checks"]}
    assert checks["agreement"]["value"] > 0.9
    assert checks["agreement"]["status"] == "ok"
    assert checks["performance"]["status"] == "ok"  # 300 labelled rows, paired test


def test_a_shadow_that_disagrees_is_stopped(world) -> None:
    registry, rollouts, clock, logbook, X, _ = world
    plan = Plan(min_step_seconds=10, min_step_requests=50, guards=Guards(min_agreement=0.9))
    rollouts.start("m", "shadow", 3, plan=plan)
    serve(registry, clock, 1, 300)
    serve(registry, clock, 3, 300)
    log(registry, logbook, clock, X.iloc[:300], 1, "primary", "q")
    log(registry, logbook, clock, X.iloc[:300], 3, "shadow", "q")
    clock.advance(3)
    (d,) = rollouts.tick()
    assert d.state == "rolled_back"
    assert "agreement" in d.reason


def test_people_promote_abort_and_lose_races(world) -> None:
    registry, rollouts, clock, _logbook, _X, _ = world
    d = rollouts.start("m", "bluegreen", 2)
    assert (d.state, d.share, d.active) == ("ready", 0.0, True)
    assert rollouts.tick() == []  # blue-green waits for a person
    d = rollouts.promote("m", reason="switch")
    assert (d.state, d.standby) == ("promoted", 1)
    assert registry.get("m@production").version == 2
    assert registry.rollback("m").version == 1  # switch back: one command
    d = rollouts.start("m", "canary", 3, plan=FAST)
    stale = d
    d = rollouts.promote("m")  # by hand: the next step
    assert (d.step, d.share) == (1, 0.5)
    with pytest.raises(Conflict):
        registry.deployments.update("m", stale.revision, actor="x", reason="", share=0.2)
    d = rollouts.abort("m", reason="not today")
    assert (d.state, d.share, d.active) == ("aborted", 0.0, False)
    with pytest.raises(Conflict, match="no deployment in progress"):
        rollouts.abort("m")
    assert registry.get("m@production").version == 1


@pytest.mark.parametrize("mode", ["shadow", "canary", "bluegreen", "ab"])
def test_a_candidate_a_replica_cannot_load_is_rolled_back_with_the_replicas_reason(
    world, mode: str
) -> None:
    """A replica's report that it cannot load the candidate, made at the deployment's current
    revision, rolls the deployment back at the next look, whatever its mode, with the
    replica's reason; the report stays in the history."""
    registry, rollouts, clock, *_ = world
    d = rollouts.start("m", mode, 2, plan=FAST)
    assert rollouts.tick() == []
    why = f"{mode} candidate v2 failed to load on r1: package failed verification"
    assert rollouts.store.report_load_failure("m", d.revision, candidate=2, replica="r1",
                                              reason=why)  # fmt: skip
    assert rollouts.store.report_load_failure("m", d.revision, candidate=2, replica="r2",
                                              reason=why.replace("r1", "r2"))  # fmt: skip
    clock.advance(1)
    (done,) = rollouts.tick()
    assert (done.state, done.share, done.updated_by) == ("rolled_back", 0.0, "controller")
    assert done.reason == f"{why} (and on 1 other replica(s))"
    assert registry.get("m@production").version == 1
    history = rollouts.history("m")
    assert [e.state for e in history] == ["rolled_back", "load_failed", "load_failed", d.state]
    assert [e["replica"] for e in history[0].details["load_failures"]] == ["replica r1",
                                                                          "replica r2"]  # fmt: skip


def test_a_report_about_an_older_revision_or_deployment_changes_nothing(world) -> None:
    """A load failure reported for an earlier deployment, an earlier revision of this one or
    another version is never acted on: only a report about the deployment as it is now
    rolls it back."""
    _registry, rollouts, clock, *_ = world
    store = rollouts.store
    old = rollouts.start("m", "canary", 3, plan=FAST)
    assert store.report_load_failure("m", old.revision, candidate=3, replica="r1", reason="old")
    rollouts.abort("m")
    assert not store.report_load_failure("m", old.revision, candidate=3, replica="r2",
                                         reason="late")  # the deployment ended  # fmt: skip
    d = rollouts.start("m", "canary", 2, plan=FAST)
    assert not store.report_load_failure("m", d.revision, candidate=3, replica="r1",
                                         reason="another version")  # fmt: skip
    assert not store.report_load_failure("m", old.revision, candidate=2, replica="r1",
                                         reason="an old revision")  # fmt: skip
    clock.advance(1)
    assert rollouts.tick() == []
    assert store.report_load_failure("m", d.revision, candidate=2, replica="r1", reason="v2")
    d = rollouts.promote("m")  # a person moves it on before the controller looks
    clock.advance(1)
    assert rollouts.tick() == []  # the report was about the revision before
    assert rollouts.get("m").state == "running"
    assert store.report_load_failure("m", d.revision, candidate=2, replica="r1", reason="v2 again")
    (done,) = rollouts.tick()
    assert (done.state, done.reason) == ("rolled_back", "v2 again")
