"""The scheduler: one holder of the lease acts; declared monitors run on their interval."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from tests.processes import wait_for
from watchkeeper.config import Settings
from watchkeeper.registry import Registry
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.scheduler import Scheduler, SchedulerOptions

T0 = datetime(2026, 11, 26, 12, tzinfo=UTC)


def test_one_scheduler_acts_and_runs_monitors_on_their_interval(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(500, 2)), columns=["a", "b"])
    settings = Settings(home=tmp_path, monitors={"m": {"window": "1h", "every": "10m",
                                                       "checks": ["drift"]}})  # fmt: skip
    with Registry(settings) as registry:
        registry.register("m", LogisticRegression().fit(X, X["a"] > 0), input_example=X,
                          reference_data=X, stage="production")  # fmt: skip
    now = [T0]
    options = SchedulerOptions(interval=1.0, lease_ttl=5.0)
    first = Scheduler(settings, SchedulerOptions(interval=1, lease_ttl=5, holder="a"),
                      clock=lambda: now[0])  # fmt: skip
    second = Scheduler(settings, SchedulerOptions(interval=1, lease_ttl=5, holder="b"),
                       clock=lambda: now[0])  # fmt: skip
    try:
        assert first.run_once()
        assert not second.run_once()  # the lease is held: the second one waits
        store = MonitoringStore(first.registry.engine)
        windows = lambda: {r.window_end for r in store.series("m", check="quality")}  # noqa: E731
        assert windows() == {T0}  # the monitor ran once (an empty window: row count skipped)
        now[0] += timedelta(minutes=5)
        assert first.run_once()
        assert windows() == {T0}  # not due yet
        now[0] += timedelta(minutes=5)
        assert first.run_once()
        assert windows() == {T0, T0 + timedelta(minutes=10)}
        first.stop()  # a clean stop hands the lease over at once
        assert second.run_once()
        assert options.holder != "a"  # each process gets its own holder id by default
    finally:
        first.close()
        second.close()


def test_shutdown_lets_the_round_in_progress_finish(tmp_path: Path, monkeypatch) -> None:
    """``watchkeeper scheduler`` (and the demo) end with ``shutdown``: a round still inside a
    monitor check must end before the interpreter does (a daemon thread left in native code
    aborts the process)."""
    scheduler = Scheduler(Settings(home=tmp_path), SchedulerOptions(interval=0.01, lease_ttl=5))
    entered, finished = threading.Event(), threading.Event()

    def slow_round() -> bool:
        entered.set()
        time.sleep(0.5)
        finished.set()
        return True

    monkeypatch.setattr(scheduler, "run_once", slow_round)
    thread = scheduler.start_thread()
    assert entered.wait(5)
    scheduler.shutdown(timeout=5)
    assert finished.is_set()
    assert not thread.is_alive()


def test_the_lease_is_renewed_while_a_round_runs_longer_than_its_ttl(
    tmp_path: Path, monkeypatch
) -> None:
    """Renewal has a thread of its own: a round stuck far past the lease's time to live (a dead
    endpoint, a huge monitor window) does not let a second scheduler in."""
    settings = Settings(home=tmp_path)
    options = {"interval": 0.05, "lease_ttl": 1.0, "monitors": False}
    first = Scheduler(settings, SchedulerOptions(holder="a", **options))
    second = Scheduler(settings, SchedulerOptions(holder="b", **options))
    in_round, release = threading.Event(), threading.Event()

    def long_round() -> None:
        in_round.set()
        release.wait(120)

    monkeypatch.setattr(first, "_run_due_retraining", long_round)
    leases = first.lease.store
    try:
        first.start_thread()
        assert in_round.wait(60)
        began = leases.get("scheduler")
        assert began is not None
        # the expiry the lease had when the round began has passed, by the database's clock
        wait_for(lambda: (lease := leases.get("scheduler")) is not None
                 and lease.expires_at > began.expires_at + timedelta(seconds=2), 60,
                 "two more TTLs of renewals")  # fmt: skip
        assert not second.run_once()
        lease = leases.get("scheduler")
        assert lease is not None
        assert (lease.holder, lease.epoch) == ("a", began.epoch)
        assert first.leading
    finally:
        release.set()
        first.shutdown(timeout=10)
        second.close()
