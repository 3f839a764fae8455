"""The one loop: rollout controllers, declared monitors, batch schedules and retraining
triggers, on one process at a time.

Every ``interval`` seconds the scheduler renews its lease (``leases`` row ``scheduler``); only the
holder acts. A holder that dies stops renewing, and another scheduler takes over once the lease
has expired (``lease_ttl``); deployments resume where their records say they are, since every
step lives in the database. Runs as ``watchkeeper scheduler`` or inside ``watchkeeper serve
--with-scheduler``.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from watchkeeper.batch.job import run_batch
from watchkeeper.batch.schedule import after_failure, next_time, spec_for
from watchkeeper.config import Settings
from watchkeeper.errors import WatchkeeperError
from watchkeeper.logbook import Logbook
from watchkeeper.monitoring.checks import Window
from watchkeeper.monitoring.results import Status
from watchkeeper.monitoring.runner import run_monitor
from watchkeeper.monitoring.spec import MonitorSpec, declared_monitors
from watchkeeper.notify import AlertSink, LogSink, WebhookSink, deliver_all
from watchkeeper.registry import Registry
from watchkeeper.registry.batch import BatchSchedule, BatchStore
from watchkeeper.registry.leases import LeaseStore
from watchkeeper.registry.live import LiveStatsStore
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.registry.retraining import RetrainStore
from watchkeeper.retraining.runner import retrain
from watchkeeper.retraining.spec import RetrainSpec, declared_retraining
from watchkeeper.retraining.triggers import due_trigger
from watchkeeper.rollout.controller import Rollouts

log = logging.getLogger("watchkeeper.scheduler")
LEASE = "scheduler"


@dataclass(frozen=True, kw_only=True)
class SchedulerOptions:
    interval: float = 1.0  # seconds between looks
    lease_ttl: float = 10.0  # a silent holder loses the lease after this long
    monitors: bool = True  # run the monitors declared in watchkeeper.toml
    batches: bool = True  # run due batch schedules
    retraining: bool = True  # start the retraining runs whose triggers fire
    jobs_in_thread: bool = True  # False: due batch and retraining jobs run inside run_once
    holder: str = field(
        default_factory=lambda: f"{socket.gethostname()[:60]}-{os.getpid()}-{secrets.token_hex(3)}"
    )


class Scheduler:
    def __init__(
        self, settings: Settings, options: SchedulerOptions | None = None, *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.options = options or SchedulerOptions()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.registry = Registry(settings)
        self.logbook = Logbook(settings.resolved_logbook_url)
        self.live = LiveStatsStore(self.registry.engine)
        self.leases = LeaseStore(self.registry.engine, clock=self.clock)
        self.rollouts = Rollouts(self.registry, logbook=self.logbook, live=self.live,
                                 actor="controller", clock=self.clock)  # fmt: skip
        self.monitors: dict[str, MonitorSpec] = (
            declared_monitors(settings) if self.options.monitors else {}
        )
        self._last_run: dict[str, datetime] = {}
        self.batch_store = BatchStore(self.registry.engine, clock=self.clock)
        self._batch_threads: dict[int, threading.Thread] = {}
        self.retraining: dict[str, RetrainSpec] = (
            declared_retraining(settings) if self.options.retraining else {}
        )
        self._retrain_threads: dict[str, threading.Thread] = {}
        self._watching_since = self.clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # the loop, when start_thread() ran it
        self.leading = False

    def run_once(self) -> bool:
        """Renew (or try to take) the lease; if held, do one round of work. True if held."""
        ttl = timedelta(seconds=self.options.lease_ttl)
        held = self.leases.acquire(LEASE, self.options.holder, ttl)
        if held != self.leading:
            log.info("scheduler %s %s the lease", self.options.holder,
                     "took" if held else "lost")  # fmt: skip
            self.leading = held
        if not held:
            return False
        for changed in self.rollouts.tick():
            log.info("deployment of %s: %s (%s)", changed.model, changed.state, changed.reason)
        self._run_due_monitors()
        if self.options.batches:
            self._run_due_batches()
        self._run_due_retraining()
        return True

    def _run_due_monitors(self) -> None:
        now = self.clock()
        for name, spec in self.monitors.items():
            last = self._last_run.get(name)
            if last is not None and now - last < spec.interval:
                continue
            self._last_run[name] = now
            try:
                outcome = run_monitor(spec, registry=self.registry, logbook=self.logbook,
                                      store=MonitoringStore(self.registry.engine), end=now,
                                      live=self.live)  # fmt: skip
            except WatchkeeperError as exc:
                log.warning("monitor %s: %s", name, exc.message)
                continue
            sinks: list[AlertSink] = [LogSink(), *(WebhookSink(u) for u in spec.webhooks)]
            deliver_all(sinks, outcome.alerts)

    def _run_due_batches(self) -> None:
        now = self.clock()
        for schedule in self.batch_store.due(now):
            running = self._batch_threads.get(schedule.id)
            if running is not None and running.is_alive():
                continue
            # claim the run first: a new leader after a failover will not start it again
            self.batch_store.record_attempt(schedule.id, status="running",
                                            next_run_at=next_time(schedule.cron, now),
                                            attempts=schedule.attempts)  # fmt: skip
            if not self.options.jobs_in_thread:
                self._run_batch(schedule)
                continue
            thread = threading.Thread(target=self._run_batch, args=(schedule,),
                                      name=f"wk-batch-{schedule.id}", daemon=True)  # fmt: skip
            self._batch_threads[schedule.id] = thread
            thread.start()

    def _run_batch(self, schedule: BatchSchedule) -> None:
        """One scheduled run with the production version of now; retries and alerts."""
        started = self.clock()
        try:
            outcome = run_batch(self.settings, spec_for(schedule), schedule_id=schedule.id)
        except (WatchkeeperError, OSError, RuntimeError) as exc:
            message = exc.message if isinstance(exc, WatchkeeperError) else str(exc)
            when, attempts, exhausted = after_failure(schedule, started)
            log.warning("batch schedule %s (%s) failed, attempt %d: %s", schedule.id,
                        schedule.model, schedule.attempts + 1, message)  # fmt: skip
            self.batch_store.record_attempt(schedule.id, status="failed", next_run_at=when,
                                            attempts=attempts)  # fmt: skip
            if exhausted:
                self._batch_alert(schedule, "fail", float(schedule.max_attempts))
            return
        log.info("batch schedule %s: %s@%s scored %d rows", schedule.id, schedule.model,
                 outcome.run.version, outcome.run.rows_in)  # fmt: skip
        self.batch_store.record_attempt(schedule.id, status="succeeded",
                                        next_run_at=next_time(schedule.cron, started),
                                        attempts=0)  # fmt: skip
        self._batch_alert(schedule, "ok", 0.0)

    def _batch_alert(self, schedule: BatchSchedule, status: Status, value: float) -> None:
        now = self.clock()
        result = Window(schedule.model, None, now, now).result(
            "batch", f"schedule-{schedule.id}", "failed_attempts", value,
            float(schedule.max_attempts), status,
        )  # fmt: skip
        store = MonitoringStore(self.registry.engine)
        store.record([result])
        deliver_all([LogSink()], store.apply_alerts([result]))

    def _run_due_retraining(self) -> None:
        now = self.clock()
        runs = RetrainStore(self.registry.engine)
        monitoring = MonitoringStore(self.registry.engine)
        for name, spec in self.retraining.items():
            running = self._retrain_threads.get(name)
            if running is not None and running.is_alive():
                continue
            trigger = due_trigger(spec, runs=runs, monitoring=monitoring, now=now,
                                  watching_since=self._watching_since)  # fmt: skip
            if trigger is None:
                continue
            log.info("retraining %s: %s", name, trigger.name)
            if not self.options.jobs_in_thread:
                self._retrain(spec, trigger.name)
                continue
            thread = threading.Thread(target=self._retrain, args=(spec, trigger.name),
                                      name=f"wk-retrain-{name}", daemon=True)  # fmt: skip
            self._retrain_threads[name] = thread
            thread.start()

    def _retrain(self, spec: RetrainSpec, trigger: str) -> None:
        try:
            run = retrain(self.settings, spec, trigger=trigger, clock=self.clock)
        except WatchkeeperError as exc:  # e.g. a run already going elsewhere
            log.warning("retraining %s not started: %s", spec.model, exc.message)
            return
        log.info("retraining %s ended %s: %s", spec.model, run.status,
                 run.outcome or run.error)  # fmt: skip

    def join_jobs(self, timeout: float | None = None) -> None:
        """Wait for the batch and retraining jobs this scheduler started."""
        for thread in [*self._batch_threads.values(), *self._retrain_threads.values()]:
            thread.join(timeout)

    def run_forever(self) -> None:
        """Until :meth:`stop`; a failing round is logged and the next one tried."""
        while not self._stop.is_set():
            try:
                self.run_once()
            except WatchkeeperError as exc:  # the database is away: keep trying
                log.warning("scheduler round failed: %s", exc.message)
            except Exception:
                log.exception("scheduler round failed")
            self._stop.wait(self.options.interval)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="wk-scheduler", daemon=True)
        thread.start()
        self._thread = thread
        return thread

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop, let the round in progress finish (a monitor check may be inside pyarrow or
        scikit-learn: leaving it running while the interpreter exits aborts the process), give
        running jobs ``timeout`` seconds, then close."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self.join_jobs(timeout)
        self.close()

    def stop(self) -> None:
        """End the loop and hand the lease over at once."""
        self._stop.set()
        if self.leading:
            try:
                self.leases.release(LEASE, self.options.holder)
            except WatchkeeperError as exc:
                log.warning("could not release the scheduler lease: %s", exc.message)

    def close(self) -> None:
        self.registry.close()
