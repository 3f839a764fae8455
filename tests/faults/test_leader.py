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
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import select, update

from tests.processes import (
    free_port,
    wait_for,
)
from tests.test_notify import CHANGES
from watchkeeper.config import Settings
from watchkeeper.monitoring.spec import MonitorSpec
from watchkeeper.notify import WebhookSink
from watchkeeper.registry import Registry
from watchkeeper.registry.batch import BatchStore
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.leases import Fence, LeaseStore, StaleEpoch, db_now
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
def registry(settings: Settings) -> Iterator[Registry]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "b"])
    model = LogisticRegression().fit(X, X["a"] > 0)
    with Registry(settings) as registry:
        registry.register("m", model, input_example=X, stage="production")
        registry.register("m", model, input_example=X)
        yield registry


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
