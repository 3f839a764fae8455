"""The one loop: rollout controllers, declared monitors, batch schedules and retraining
triggers, on one process at a time.

Only the holder of the ``scheduler`` lease acts. A :class:`~watchkeeper.registry.leases.
LeaseKeeper` renews it from a thread of its own every ``lease_ttl / 3``, however long a round
takes (a follower tries to take it every ``interval``, and acts at once when it does); expiry
is judged by the database's clock; taking the lease raises its epoch, and every
write that changes a deployment or a job's schedule carries that epoch and is refused by the
database once it is stale. A holder that was paused past the lease (or lost the database)
stops acting: at its next look it no longer has a fence, and any write already under way is
refused. A holder that dies stops renewing, and another takes over once the lease has expired;
deployments resume where their records say they are, since every step lives in the database.

Isolation: each monitor, deployment, batch schedule and retraining trigger runs behind its own
boundary. Any exception there is logged with its reason, counted in ``failures``, recorded
(a batch schedule's ``last_status``/``last_error``, a retraining run's ``error``) and raises an
alert (check ``scheduler``, feature ``<kind>:<name>``, closed when the job next succeeds); the
others still run. Webhooks are delivered off the round, on a thread per endpoint.
Runs as ``watchkeeper scheduler`` or inside ``watchkeeper serve --with-scheduler``.
"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from watchkeeper.batch.schedule import after_failure, spec_for
from watchkeeper.config import Settings
from watchkeeper.cron import next_time
from watchkeeper.errors import WatchkeeperError
from watchkeeper.logbook import Logbook
from watchkeeper.monitoring.results import Status
from watchkeeper.monitoring.spec import MonitorSpec, declared_monitors
from watchkeeper.notify import AlertSink, BackgroundSink, LogSink, WebhookSink, deliver_all
from watchkeeper.registry import Registry
from watchkeeper.registry.batch import BatchSchedule, BatchStore
from watchkeeper.registry.deployments import Deployment
from watchkeeper.registry.leases import Fence, LeaseKeeper, LeaseStore, StaleEpoch, fenced
from watchkeeper.registry.live import LiveStatsStore
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.registry.retention import PRUNE_BUDGET_S, PRUNE_EVERY, prune, retention_period
from watchkeeper.registry.retraining import RetrainStore
from watchkeeper.registry.schema import BatchScheduleRow
from watchkeeper.retraining.spec import RetrainSpec, declared_retraining
from watchkeeper.retraining.triggers import due_trigger
from watchkeeper.rollout.controller import Rollouts

if TYPE_CHECKING:
    from watchkeeper.batch.job import run_batch
    from watchkeeper.retraining.runner import retrain
    from watchkeeper.watch.runner import run_monitor


def _on_first_call(module: str, name: str) -> Callable[..., Any]:
    """A job's entry point, imported when a job of its kind first runs: monitor runs (with
    scikit-learn and jinja2 behind them), batch scoring and retraining weigh ~70 MB that an
    idle scheduler never needs."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    return call


if not TYPE_CHECKING:
    run_batch = _on_first_call("watchkeeper.batch.job", "run_batch")
    retrain = _on_first_call("watchkeeper.retraining.runner", "retrain")
    run_monitor = _on_first_call("watchkeeper.watch.runner", "run_monitor")

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
        self._wake = threading.Event()  # a round now: the lease was just taken, or stop
        self.lease = LeaseKeeper(LeaseStore(self.registry.engine), LEASE, self.options.holder,
                                 self.options.lease_ttl, follow_every=self.options.interval,
                                 on_acquired=self._wake.set)  # fmt: skip
        self.rollouts = Rollouts(self.registry, logbook=self.logbook, live=self.live,
                                 actor="controller", clock=self.clock)  # fmt: skip
        self.monitors: dict[str, MonitorSpec] = (
            declared_monitors(settings) if self.options.monitors else {}
        )
        self._last_run: dict[str, datetime] = {}
        self.retention = retention_period(settings.retention)  # None: "off"
        self._pruned_at: datetime | None = None  # when the last prune finished
        self.batch_store = BatchStore(self.registry.engine, clock=self.clock)
        self._batch_threads: dict[int, threading.Thread] = {}
        self.retraining: dict[str, RetrainSpec] = (
            declared_retraining(settings) if self.options.retraining else {}
        )
        self._retrain_threads: dict[str, threading.Thread] = {}
        self._webhooks: dict[str, BackgroundSink] = {}
        self.failures: Counter[str] = Counter()  # failed jobs by kind
        self._failing: set[tuple[str, str]] = set()  # (model, job) with an alert open
        self._watching_since = self.clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # the loop, when start_thread() ran it

    @property
    def stopping(self) -> threading.Event:
        """Set once the loop has been asked to stop."""
        return self._stop

    @property
    def leading(self) -> bool:
        return self.lease.fence() is not None

    def run_once(self) -> bool:
        """If the lease is held (renewed here when no keeper thread runs), one round of work;
        True if it was held throughout."""
        fence = self.lease.fence() if self.lease.running else self.lease.renew()
        if fence is None:
            return False
        try:
            for changed in self.rollouts.tick(self.lease.fence, on_error=self._deployment_failed):
                log.info("deployment of %s: %s (%s)", changed.model, changed.state,
                         changed.reason)  # fmt: skip
        except StaleEpoch as exc:
            log.warning("scheduler %s stops acting: %s", self.options.holder, exc.message)
            return False
        self._isolated("monitors", "all", "", self._run_due_monitors)
        if self.options.batches:
            self._isolated("batches", "all", "", lambda: self._run_due_batches(fence))
        self._isolated("retraining", "all", "", self._run_due_retraining)
        self._isolated("retention", "prune", "", self._prune_if_due)
        return self.leading

    # --- isolation ---------------------------------------------------------------------------

    def _isolated(self, kind: str, name: str, model: str, job: Callable[[], object]) -> bool:
        """Run ``job``; any exception is recorded with its reason and alerted. True if it ran."""
        try:
            job()
        except StaleEpoch as exc:
            log.warning("%s %s: %s", kind, name, exc.message)
            return False
        except Exception as exc:  # the boundary of one job: the others still run
            self._failed(kind, name, model, exc)
            return False
        self._recovered(kind, name, model)
        return True

    def _deployment_failed(self, d: Deployment, exc: Exception) -> None:
        self._failed("deployment", d.model, d.model, exc)

    def _failed(self, kind: str, name: str, model: str, exc: Exception) -> None:
        reason = _reason(exc)
        self.failures[kind] += 1
        log.error("%s %s failed: %s", kind, name, reason, exc_info=exc)
        self._failing.add((model, f"{kind}:{name}"))
        self._job_alert(model, f"{kind}:{name}", "fail", 1.0)

    def _recovered(self, kind: str, name: str, model: str) -> None:
        key = (model, f"{kind}:{name}")
        if key in self._failing:
            self._failing.discard(key)
            self._job_alert(model, key[1], "ok", 0.0)

    def _job_alert(self, model: str, job: str, status: Status, value: float) -> None:
        """Open (or close) the alert of a failing scheduler job; never raises."""
        from watchkeeper.monitoring.checks import Window  # job code: imported on first use

        now = self.clock()
        result = Window(model or "scheduler", None, now, now).result(
            "scheduler", job, "failed", value, 0.0, status
        )
        try:
            store = MonitoringStore(self.registry.engine)
            store.record([result])
            deliver_all([LogSink()], store.apply_alerts([result]))
        except WatchkeeperError as exc:
            log.error("could not record the alert of %s: %s", job, exc.message)

    # --- monitors ------------------------------------------------------------------------------

    def _run_due_monitors(self) -> None:
        now = self.clock()
        for name, spec in self.monitors.items():
            last = self._last_run.get(name)
            if last is not None and now - last < spec.interval:
                continue
            self._last_run[name] = now
            self._isolated("monitor", name, spec.model, partial(self._monitor, spec, now))

    def _monitor(self, spec: MonitorSpec, now: datetime) -> None:
        outcome = run_monitor(spec, registry=self.registry, logbook=self.logbook,
                              store=MonitoringStore(self.registry.engine), end=now,
                              live=self.live)  # fmt: skip
        sinks: list[AlertSink] = [LogSink(), *(self._webhook(u) for u in spec.webhooks)]
        deliver_all(sinks, outcome.alerts)

    def _webhook(self, url: str) -> BackgroundSink:
        """One delivery thread per endpoint: a dead one delays neither the round nor others."""
        if url not in self._webhooks:
            self._webhooks[url] = BackgroundSink(WebhookSink(url), name=url)
        return self._webhooks[url]

    # --- batch schedules -------------------------------------------------------------------------

    def _run_due_batches(self, fence: Fence) -> None:
        now = self.clock()
        for schedule in self.batch_store.due(now):
            running = self._batch_threads.get(schedule.id)
            if running is not None and running.is_alive():
                continue
            # claim the run first: a new leader after a failover will not start it again
            self._record_schedule(fence, schedule.id, status="running",
                                  next_run_at=next_time(schedule.cron, now),
                                  attempts=schedule.attempts)  # fmt: skip
            if not self.options.jobs_in_thread:
                self._run_batch(schedule, fence)
                continue
            thread = threading.Thread(target=self._run_batch, args=(schedule, fence),
                                      name=f"wk-batch-{schedule.id}", daemon=True)  # fmt: skip
            self._batch_threads[schedule.id] = thread
            thread.start()

    def _record_schedule(
        self, fence: Fence, schedule_id: int, *, status: str, next_run_at: datetime,
        attempts: int, error: str = "",
    ) -> None:  # fmt: skip
        """A schedule's state, written only while ``fence`` holds the lease (``StaleEpoch``)."""
        with fenced(self.registry.engine, fence) as session:
            session.execute(
                update(BatchScheduleRow).where(BatchScheduleRow.id == schedule_id).values(
                    last_run_at=self.clock(), last_status=status, next_run_at=next_run_at,
                    attempts=attempts, last_error=error[:2000],
                )
            )  # fmt: skip

    def _run_batch(self, schedule: BatchSchedule, fence: Fence) -> None:
        """One scheduled run with the production version of now; retries and alerts. Every
        exception ends here, recorded: the schedule never stays ``running``."""
        started = self.clock()
        try:
            outcome = run_batch(self.settings, spec_for(schedule), schedule_id=schedule.id)
        except Exception as exc:  # the job's boundary
            self._batch_failed(schedule, fence, started, exc)
            return
        log.info("batch schedule %s: %s@%s scored %d rows", schedule.id, schedule.model,
                 outcome.run.version, outcome.run.rows_in)  # fmt: skip
        try:
            self._record_schedule(fence, schedule.id, status="succeeded",
                                  next_run_at=next_time(schedule.cron, started),
                                  attempts=0)  # fmt: skip
            self._batch_alert(schedule, "ok", 0.0)
        except StaleEpoch as exc:
            log.warning("batch schedule %s: result not recorded: %s", schedule.id, exc.message)
        except WatchkeeperError as exc:
            log.error("batch schedule %s: result not recorded: %s", schedule.id, exc.message)

    def _batch_failed(
        self, schedule: BatchSchedule, fence: Fence, started: datetime, exc: Exception
    ) -> None:
        reason = _reason(exc)
        when, attempts, exhausted = after_failure(schedule, started)
        self.failures["batch"] += 1
        log.warning("batch schedule %s (%s) failed, attempt %d: %s", schedule.id,
                    schedule.model, schedule.attempts + 1, reason,
                    exc_info=not isinstance(exc, WatchkeeperError))  # fmt: skip
        try:
            self._record_schedule(fence, schedule.id, status="failed", next_run_at=when,
                                  attempts=attempts, error=reason)  # fmt: skip
            if exhausted:
                self._batch_alert(schedule, "fail", float(schedule.max_attempts))
        except StaleEpoch as stale:
            log.warning("batch schedule %s: failure not recorded: %s", schedule.id,
                        stale.message)  # fmt: skip
        except WatchkeeperError as lost:
            log.error("batch schedule %s: failure not recorded: %s", schedule.id, lost.message)

    def _batch_alert(self, schedule: BatchSchedule, status: Status, value: float) -> None:
        from watchkeeper.monitoring.checks import Window

        now = self.clock()
        result = Window(schedule.model, None, now, now).result(
            "batch", f"schedule-{schedule.id}", "failed_attempts", value,
            float(schedule.max_attempts), status,
        )  # fmt: skip
        store = MonitoringStore(self.registry.engine)
        store.record([result])
        deliver_all([LogSink()], store.apply_alerts([result]))

    # --- retraining ------------------------------------------------------------------------------

    def _run_due_retraining(self) -> None:
        now = self.clock()
        for name, spec in self.retraining.items():
            running = self._retrain_threads.get(name)
            if running is not None and running.is_alive():
                continue
            self._isolated("trigger", name, spec.model,
                           partial(self._maybe_retrain, name, spec, now))  # fmt: skip

    def _maybe_retrain(self, name: str, spec: RetrainSpec, now: datetime) -> None:
        runs = RetrainStore(self.registry.engine)
        monitoring = MonitoringStore(self.registry.engine)
        trigger = due_trigger(spec, runs=runs, monitoring=monitoring, now=now,
                              watching_since=self._watching_since)  # fmt: skip
        if trigger is None:
            return
        log.info("retraining %s: %s", name, trigger.name)
        if not self.options.jobs_in_thread:
            self._retrain(spec, trigger.name)
            return
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
        except Exception as exc:  # the job's boundary: no run left ``running``
            self._failed("retraining", spec.model, spec.model, exc)
            self._close_running_retrain(spec.model, _reason(exc))
            return
        self._recovered("retraining", spec.model, spec.model)
        log.info("retraining %s ended %s: %s", spec.model, run.status,
                 run.outcome or run.error)  # fmt: skip

    def _close_running_retrain(self, model: str, reason: str) -> None:
        try:
            store = RetrainStore(self.registry.engine)
            for run in store.runs(model, limit=1):
                if run.status == "running":
                    store.finish(run.id, status="failed", error=reason)
        except WatchkeeperError as exc:
            log.error("retraining %s: could not record the failure: %s", model, exc.message)

    # --- retention -------------------------------------------------------------------------------

    def _prune_if_due(self) -> None:
        """Once a day, delete live statistics and monitor results older than the retention: a
        few seconds of batches per round, so a backlog is spread over several rounds."""
        now = self.clock()
        if self.retention is None or (
            self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY
        ):
            return
        report = prune(self.registry.engine, now - self.retention, budget_s=PRUNE_BUDGET_S)
        if report.total:
            log.info("retention: deleted %s rows older than %s", report.deleted,
                     report.cutoff.isoformat())  # fmt: skip
        if report.complete:
            self._pruned_at = now

    # --- life cycle ------------------------------------------------------------------------------

    def join_jobs(self, timeout: float | None = None) -> None:
        """Wait for the batch and retraining jobs this scheduler started."""
        for thread in [*self._batch_threads.values(), *self._retrain_threads.values()]:
            thread.join(timeout)

    def run_forever(self) -> None:
        """Until :meth:`stop`; a failing round is logged and the next one tried."""
        self.lease.start()
        while not self._stop.is_set():
            try:
                self.run_once()
            except WatchkeeperError as exc:  # the database is away: keep trying
                log.warning("scheduler round failed: %s", exc.message)
            except Exception:
                log.exception("scheduler round failed")
            self._wake.wait(self.options.interval)
            self._wake.clear()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="wk-scheduler", daemon=True)
        thread.start()
        self._thread = thread
        return thread

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop, let the round in progress finish (a monitor check may be inside pyarrow or
        scikit-learn: leaving it running while the interpreter exits aborts the process), give
        running jobs ``timeout`` seconds (the lease still held, so they can record how they
        ended), then hand the lease over and close."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self.join_jobs(timeout)
        self.stop()
        self.close()

    def request_stop(self) -> None:
        """End the loop after the round in progress; the lease is kept until :meth:`stop`."""
        self._stop.set()
        self._wake.set()

    def stop(self) -> None:
        """End the loop and hand the lease over at once."""
        self._stop.set()
        self._wake.set()
        self.lease.stop(release=True)

    def close(self) -> None:
        for sink in self._webhooks.values():
            sink.close(timeout=1.0)
        self.registry.close()


def _reason(exc: BaseException) -> str:
    message = exc.message if isinstance(exc, WatchkeeperError) else str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
