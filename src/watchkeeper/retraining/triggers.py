"""Which declared trigger, if any, asks for a run now (the scheduler asks every look).

``schedule``: its cron time has come since the last scheduled run (or since the scheduler
started watching). ``drift``: an alert of the named check is open for the model.
``performance``: the metric was past its threshold in each of the newest N stored windows.
A cooldown after any run, and a run already going, hold every trigger.
"""

from __future__ import annotations

from datetime import datetime

from watchkeeper.cron import next_time
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.registry.retraining import RetrainStore
from watchkeeper.retraining.spec import LOWER_IS_BETTER, RetrainSpec, Trigger


def due_trigger(spec: RetrainSpec, *, runs: RetrainStore, monitoring: MonitoringStore,
                now: datetime, watching_since: datetime) -> Trigger | None:  # fmt: skip
    if runs.running(spec.model):
        return None
    last = runs.last_started(spec.model)
    if last is not None and now - last < spec.cooldown:
        return None
    for trigger in spec.triggers:
        if _fires(trigger, spec, runs, monitoring, now, watching_since):
            return trigger
    return None


def _fires(trigger: Trigger, spec: RetrainSpec, runs: RetrainStore, monitoring: MonitoringStore,
           now: datetime, watching_since: datetime) -> bool:  # fmt: skip
    if trigger.kind == "schedule" and trigger.cron:
        since = runs.last_started(spec.model, trigger_prefix="schedule") or watching_since
        return next_time(trigger.cron, since) <= now
    if trigger.kind == "drift":
        return any(a.check == trigger.check for a in monitoring.alerts(spec.model))
    if trigger.kind == "performance" and trigger.below is not None:
        series = monitoring.series(spec.model, check="performance", statistic=trigger.metric)
        newest = [r.value for r in series[-trigger.windows :] if r.value is not None]
        if len(newest) < trigger.windows:
            return False
        if trigger.metric in LOWER_IS_BETTER:
            return all(v > trigger.below for v in newest)
        return all(v < trigger.below for v in newest)
    return False
