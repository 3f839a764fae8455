"""Promise: one scheduler acts at a time, and one failing job never stops the others.

Leader election with fencing: the lease is judged by the database's clock, taking it raises its
epoch, and a write carrying a stale epoch changes nothing, on SQLite and PostgreSQL. The
headline test pauses the leading ``watchkeeper scheduler`` process (SIGSTOP) past its lease
during a canary, lets the other take over and act, resumes the first and shows that its writes
are refused, no step is applied twice and the epoch never goes back. Isolation: a job raising
anything is recorded with its reason and alerted, and the next job still runs; a dead webhook
endpoint does not hold up the scheduler's round.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import select, update
from typer.testing import CliRunner

from tests.processes import (
    ROOT,
    SERVE_FAST,
    Load,
    free_port,
    holder_pid,
    training_data,
    wait_for,
    wait_ready,
)
from tests.test_notify import CHANGES
from watchkeeper.cli.main import app
from watchkeeper.config import Settings
from watchkeeper.monitoring.spec import MonitorSpec
from watchkeeper.notify import WebhookSink
from watchkeeper.registry import Registry
from watchkeeper.registry.batch import BatchStore
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.leases import Fence, LeaseKeeper, LeaseStore, StaleEpoch, db_now
from watchkeeper.registry.monitoring import AlertChanges, MonitoringStore
from watchkeeper.registry.schema import BatchScheduleRow, LeaseRow
from watchkeeper.scheduler import LEASE, Scheduler, SchedulerOptions

TTL = 600.0  # store-level tests move expiry by hand, in the database


def _expire(registry: Registry, *, seconds: float = -1.0) -> None:
    """Set the lease's expiry to the database's now + ``seconds``."""
    with session_scope(registry.engine, write=True) as session:
        session.execute(
            update(LeaseRow).where(LeaseRow.name == LEASE).values(expires_at=db_now(seconds))
        )


@pytest.fixture
def registry(two_versions: Registry) -> Registry:
    return two_versions


# --- the lease, on both backends -----------------------------------------------------------------


def test_lease_expiry_is_judged_by_the_database_clock(registry: Registry) -> None:
    leases = LeaseStore(registry.engine)
    assert leases.hold(LEASE, "a", TTL) == 1
    assert leases.hold(LEASE, "b", TTL) is None  # held, unexpired
    assert leases.hold(LEASE, "a", TTL, 1) == 1  # renewed, same epoch
    held = leases.get(LEASE)
    assert held is not None
    # stored as the database's now + ttl (UTC, also in SQLite's naive strings)
    assert abs((held.expires_at - datetime.now(UTC)).total_seconds() - TTL) < 60
    _expire(registry, seconds=30)  # the database says: 30 s left
    assert leases.hold(LEASE, "b", TTL) is None
    _expire(registry)  # the database says: expired a second ago; no host clock is asked
    assert leases.hold(LEASE, "b", TTL) == 2  # taken over: the epoch goes up
    assert leases.hold(LEASE, "a", TTL, 1) is None  # the old holder cannot renew epoch 1
    leases.release(LEASE, "b", 2)  # a clean stop: expired at once, the epoch stays
    assert leases.hold(LEASE, "a", TTL) == 3
    lease = leases.get(LEASE)
    assert lease is not None
    assert (lease.holder, lease.epoch) == ("a", 3)


def test_a_follower_takes_an_expired_lease_at_its_next_look_and_says_so_once(
    registry: Registry,
) -> None:
    """Promise: a follower tries for the lease at every look (not only every TTL/3), so an
    expired lease is taken within one look; taking it wakes the scheduler's loop once (not at
    each renewal), so the new leader's first round follows the takeover at once."""
    leases = LeaseStore(registry.engine)
    assert leases.hold(LEASE, "a", TTL) == 1
    taken: list[int] = []
    follower = LeaseKeeper(leases, LEASE, "b", TTL, follow_every=0.05,
                           on_acquired=lambda: taken.append(1))  # fmt: skip
    assert follower.follow_every == 0.05
    follower.start()
    try:
        _expire(registry)  # the leader went silent: the database says its lease has expired
        wait_for(lambda: follower.fence() is not None, 30, "the follower to take the lease")
        fence = follower.fence()
        assert fence is not None
        assert fence.epoch == 2
        assert follower.renew() == fence  # a renewal: no second wake-up
        assert taken == [1]
    finally:
        follower.stop(release=True)


def test_a_stale_epoch_cannot_change_a_deployment(registry: Registry) -> None:
    leases = LeaseStore(registry.engine)
    store = registry.deployments
    d = store.start("m", "canary", 2, share=0.1, config={"steps": [0.1, 0.5, 1.0]},
                    actor="ann", reason="try v2")  # fmt: skip
    assert leases.hold(LEASE, "a", TTL) == 1
    d = store.update("m", d.revision, actor="controller", reason="step 1 passed", step=1,
                     share=0.5, fence=Fence(LEASE, 1))  # fmt: skip
    _expire(registry)
    with pytest.raises(StaleEpoch, match="epoch 1 is stale"):  # expired, not yet taken
        store.update("m", d.revision, actor="controller", reason="x", step=2, share=1.0,
                     fence=Fence(LEASE, 1))  # fmt: skip
    assert leases.hold(LEASE, "b", TTL) == 2
    with pytest.raises(StaleEpoch, match="epoch 1 is stale"):  # the paused old leader resumes
        store.update("m", d.revision, actor="controller", reason="x", step=2, share=1.0,
                     fence=Fence(LEASE, 1))  # fmt: skip
    assert store.get("m") == d  # nothing changed
    done = store.update("m", d.revision, actor="controller", reason="step 2 passed", step=2,
                        share=1.0, fence=Fence(LEASE, 2))  # fmt: skip
    assert done.revision == d.revision + 1
    events = store.events("m")
    assert [(e.reason, e.epoch) for e in events] == [
        ("step 2 passed", 2), ("step 1 passed", 1), ("try v2", None)
    ]  # fmt: skip


# --- a paused leader, in one process -------------------------------------------------------------


def test_a_leader_paused_mid_look_has_its_write_refused(
    registry: Registry, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The first scheduler decides to roll back (a replica could not load the candidate), then
    stalls past its lease before writing; the second takes over and rolls back itself. The
    first's write, when it comes, is refused: one rollback, by epoch 2."""
    d = registry.deployments.start("m", "canary", 2, share=0.1, config={}, actor="ann",
                                   reason="try v2")  # fmt: skip
    registry.deployments.report_load_failure("m", d.revision, candidate=2, replica="r1",
                                             reason="out of memory")  # fmt: skip
    opts = {"interval": 0.1, "lease_ttl": 1.0, "monitors": False, "batches": False,
            "retraining": False}  # fmt: skip
    first = Scheduler(settings, SchedulerOptions(holder="first", **opts))
    second = Scheduler(settings, SchedulerOptions(holder="second", **opts))
    real_advance = first.rollouts.advance

    def stalled_advance(d: Any, *, fence: Fence | None = None) -> Any:
        # the "SIGSTOP": the other scheduler takes the lease and acts meanwhile
        wait_for(second.run_once, 60, "the second scheduler to take over")
        return real_advance(d, fence=fence)

    monkeypatch.setattr(first.rollouts, "advance", stalled_advance)
    try:
        with caplog.at_level(logging.WARNING):
            assert not first.run_once()  # it lost the lease during its look
        assert "stops acting: write refused: lease 'scheduler' epoch 1 is stale" in caplog.text
        events = registry.deployments.events("m")
        assert [(e.state, e.actor, e.epoch) for e in events] == [
            ("rolled_back", "controller", 2), ("load_failed", "replica r1", None),
            ("running", "ann", None),
        ]  # fmt: skip
        assert not first.run_once()  # and it stays a follower
        assert second.run_once()
    finally:
        first.close()
        second.close()


# --- isolation ----------------------------------------------------------------------------------


def test_a_job_raising_is_recorded_and_the_next_job_still_runs(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor = {"window": "1h", "every": "1m", "checks": ["drift"]}
    settings = Settings(home=settings.home, database_url=settings.database_url, user="tester",
                        monitors={"broken": monitor, "fine": monitor})  # fmt: skip
    ran: list[str] = []

    def run_monitor(spec: MonitorSpec, **_: Any) -> Any:
        if spec.model == "broken":
            raise KeyError("column 'age' vanished")
        ran.append(spec.model)
        return SimpleNamespace(alerts=AlertChanges((), (), ()))

    def run_batch(*_: Any, **__: Any) -> Any:
        raise ValueError("disk on fire")

    monkeypatch.setattr("watchkeeper.scheduler.run_monitor", run_monitor)
    monkeypatch.setattr("watchkeeper.scheduler.run_batch", run_batch)
    scheduler = Scheduler(settings, SchedulerOptions(holder="a", lease_ttl=30,
                                                     jobs_in_thread=False))  # fmt: skip
    try:
        batches = BatchStore(scheduler.registry.engine)
        schedule = batches.add_schedule(
            model="fine", cron="0 * * * *", input="in.parquet", output="out.parquet",
            options={}, next_run_at=datetime.now(UTC) - timedelta(minutes=1), actor="ann",
        )  # fmt: skip
        assert scheduler.run_once()
        assert ran == ["fine"]  # the broken monitor did not stop the next one
        (after,) = batches.schedules()
        assert after.id == schedule.id
        assert after.last_status == "failed"  # not stuck "running"
        assert after.attempts == 1
        with session_scope(scheduler.registry.engine) as session:
            error = session.scalar(select(BatchScheduleRow.last_error))
        assert error == "ValueError: disk on fire"
        alerts = MonitoringStore(scheduler.registry.engine).alerts("broken")
        assert [(a.check, a.feature, a.status) for a in alerts] == [
            ("scheduler", "monitor:broken", "open")
        ]  # fmt: skip
        assert scheduler.failures == {"monitor": 1, "batch": 1}
    finally:
        scheduler.close()


def test_one_deployment_failing_does_not_stop_the_others(
    registry: Registry, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    X = pd.DataFrame(np.random.default_rng(1).normal(size=(200, 2)), columns=["a", "b"])
    model = LogisticRegression().fit(X, X["a"] > 0)
    registry.register("n", model, input_example=X, stage="production")
    registry.register("n", model, input_example=X)
    for name in ("m", "n"):
        registry.deployments.start(name, "canary", 2, share=0.1, config={}, actor="ann",
                                   reason="try v2")  # fmt: skip
    scheduler = Scheduler(settings, SchedulerOptions(holder="a", lease_ttl=30, monitors=False,
                                                     batches=False, retraining=False))  # fmt: skip
    looked: list[str] = []

    def advance(d: Any, *, fence: Fence | None = None) -> None:
        if d.model == "m":
            raise RuntimeError("a bug in a guard")
        looked.append(d.model)

    monkeypatch.setattr(scheduler.rollouts, "advance", advance)
    try:
        assert scheduler.run_once()
        assert looked == ["n"]
        alerts = MonitoringStore(scheduler.registry.engine).alerts("m")
        assert [(a.check, a.feature) for a in alerts] == [("scheduler", "deployment:m")]
        assert scheduler.failures == {"deployment": 1}
    finally:
        scheduler.close()


def test_a_dead_webhook_endpoint_does_not_delay_the_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    monitor = {"window": "1h", "every": "1m", "checks": ["drift"], "webhooks": [dead]}
    settings = Settings(home=tmp_path, monitors={"m": monitor})
    monkeypatch.setattr("watchkeeper.scheduler.run_monitor",
                        lambda spec, **_: SimpleNamespace(alerts=CHANGES))  # fmt: skip
    waiting, go_on = threading.Event(), threading.Event()

    def sleep(_: float) -> None:  # the retry's backoff: held until the round has finished
        waiting.set()
        go_on.wait(60)

    sinks: list[WebhookSink] = []

    def sink(url: str) -> WebhookSink:
        sinks.append(WebhookSink(url, sleep=sleep))
        return sinks[-1]

    monkeypatch.setattr("watchkeeper.scheduler.WebhookSink", sink)
    scheduler = Scheduler(settings, SchedulerOptions(holder="a", lease_ttl=30))
    try:
        assert scheduler.run_once()  # returns while the delivery waits to retry
        assert waiting.wait(60)  # the first attempt was refused; the retry is pending
        assert not go_on.is_set()
        go_on.set()
        wait_for(lambda: sinks[0].failures == 1, 60, "the webhook to be given up")
    finally:
        go_on.set()
        scheduler.close()


# --- the headline: real processes, a real pause ---------------------------------------------

SCHEDULER = ["scheduler", "--interval", "0.5", "--lease-ttl", "3", "--no-monitors",
             "--log-level", "info"]  # fmt: skip
# The promise is fencing, not latency: a loaded machine must not roll the canary back.
STEP = ["--step-time", "1s", "--step-requests", "100", "--max-latency-ratio", "1000"]


def _spawn(home: Path, env: dict[str, str], name: str, *args: str) -> subprocess.Popen[bytes]:
    """A ``watchkeeper`` process in a process group of its own; output in ``home/<name>.log``."""
    with open(home / f"{name}.log", "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "watchkeeper", *args], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        for sig in (signal.SIGCONT, signal.SIGKILL):  # a stopped process must not stay stopped
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
    proc.wait(timeout=30)


@pytest.mark.slow
def test_a_leader_paused_past_its_lease_is_fenced_off_and_no_step_is_applied_twice(
    tmp_path: Path,
) -> None:
    home = tmp_path
    settings = Settings(home=home, user="tester")
    env = {**os.environ, "WATCHKEEPER_HOME": str(home), "WATCHKEEPER_USER": "tester",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    env.pop("WATCHKEEPER_DATABASE_URL", None)
    X, y = training_data()
    procs: list[subprocess.Popen[bytes]] = []
    epochs: list[int] = []  # every lease epoch the test saw, in order
    with Registry(settings) as registry:
        registry.register("lead", LogisticRegression().fit(X, y), input_example=X,
                          reference_data=X, stage="production")  # fmt: skip
        registry.register("lead", LogisticRegression(C=0.05).fit(X, y), input_example=X,
                          reference_data=X)  # fmt: skip
        leases = LeaseStore(registry.engine)

        def lease() -> Any:
            found = leases.get(LEASE)
            if found is not None:
                epochs.append(found.epoch)
            return found

        def events() -> list[Any]:
            return list(reversed(registry.deployments.events("lead")))

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        try:
            procs.append(_spawn(home, env, f"serve-{port}", "serve", "--port", str(port),
                                "--without-scheduler", "--log-level", "warning",
                                *SERVE_FAST))  # fmt: skip
            wait_ready(url, procs[0], home / f"serve-{port}.log", 1)
            schedulers = {name: _spawn(home, env, f"scheduler-{name}", *SCHEDULER)
                          for name in ("a", "b")}  # fmt: skip
            procs.extend(schedulers.values())
            first = wait_for(lease, 60, "a scheduler to take the lease")
            (leader,) = [n for n, p in schedulers.items() if p.pid == holder_pid(first.holder)]
            (other,) = set(schedulers) - {leader}
            rows = X.sample(500, random_state=1).to_dict("records")
            with Load([url], rows, "lead"):
                result = CliRunner().invoke(app, ["deploy", "canary", "lead", "2", "--steps",
                                                  "10,50,100", *STEP], env=env)  # fmt: skip
                assert result.exit_code == 0, result.output
                wait_for(lambda: registry.deployments.get("lead").step >= 1, 120,  # type: ignore[union-attr]
                         "the leader to pass the first step")  # fmt: skip
                os.killpg(schedulers[leader].pid, signal.SIGSTOP)  # paused, lease and all
                taken = wait_for(lambda: (found := lease()).holder != first.holder and found,
                                 60, "the other scheduler to take the lease")  # fmt: skip
                assert holder_pid(taken.holder) == schedulers[other].pid
                wait_for(lambda: any(e.epoch == taken.epoch for e in events()), 120,
                         "the new leader to act")  # fmt: skip
                os.killpg(schedulers[leader].pid, signal.SIGCONT)
                stale = f"epoch {first.epoch} is stale"
                log = home / f"scheduler-{leader}.log"
                wait_for(lambda: stale in log.read_text(), 60, "the resumed one to be refused")
                done = wait_for(lambda: (d := registry.deployments.get("lead")) is not None
                                and d.state != "running" and d,
                                120, "the canary to end")  # fmt: skip
            after = lease()
            assert schedulers[leader].poll() is None  # the resumed one lives on, as a follower
        finally:
            for proc in procs:
                _kill_group(proc)
        history = events()
    assert done.state == "promoted", history[-1].reason
    assert after.holder == taken.holder
    assert epochs == sorted(epochs)  # the epoch never goes back
    assert taken.epoch > first.epoch
    controller = [(e.state, e.step, e.share, e.epoch) for e in history if e.actor == "controller"]
    steps = [(state, step, share) for state, step, share, _ in controller]
    assert len(set(steps)) == len(steps), controller  # no step applied twice
    assert steps == [("running", 1, 0.5), ("running", 2, 1.0), ("promoted", 2, 1.0)], controller
    fenced_epochs = [epoch for *_, epoch in controller]
    assert fenced_epochs == sorted(fenced_epochs)  # nothing by the old leader after the takeover
    assert taken.epoch in fenced_epochs
    assert all(epoch in (first.epoch, taken.epoch) for epoch in fenced_epochs)
    refused = [line for line in log.read_text().splitlines() if stale in line]
    assert refused, "the resumed leader's refusal is logged"
