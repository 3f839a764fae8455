"""Batch schedules: the job a schedule describes, and its retry policy.

A schedule stores the command's options, never a version: each run scores with the version that
is production when it starts, so a promotion or a rollback changes what the next run uses. A
failed run is retried after 1, 2, 4 … minutes up to ``max_attempts``; then an alert opens (and
closes on the next success) and the schedule waits for its next cron time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from watchkeeper.batch.job import BatchSpec
from watchkeeper.cron import next_time
from watchkeeper.registry.batch import BatchSchedule

RETRY_BASE = timedelta(minutes=1)
# the BatchSpec fields a schedule may carry (the model, input and output are columns)
OPTIONS = ("query", "table", "if_exists", "rejects", "engine", "workers", "chunk_rows",
           "id_column", "columns", "passthrough", "probabilities", "max_reject_rate",
           "log_sample", "ray_address")  # fmt: skip


def spec_for(schedule: BatchSchedule) -> BatchSpec:
    """The job of one run: production at run time, replacing the previous output."""
    options: dict[str, Any] = {k: v for k, v in schedule.options.items() if k in OPTIONS}
    for name in ("columns", "passthrough"):
        if name in options:
            options[name] = tuple(options[name])
    options.setdefault("if_exists", "replace" if not schedule.output.startswith("sql://")
                       else "append")  # fmt: skip
    return BatchSpec(model=schedule.model, input=schedule.input, output=schedule.output, **options)


def after_failure(schedule: BatchSchedule, now: datetime) -> tuple[datetime, int, bool]:
    """When to try again, the attempt count, and whether the retries are exhausted."""
    attempts = schedule.attempts + 1
    if attempts >= schedule.max_attempts:
        return next_time(schedule.cron, now), 0, True
    return now + RETRY_BASE * 2 ** (attempts - 1), attempts, False
