"""Batch run records and batch schedules in the metadata database."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from watchkeeper.errors import NotFound
from watchkeeper.registry import convert
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.schema import BatchRunRow, BatchScheduleRow


@dataclass(frozen=True, kw_only=True)
class BatchRun:
    id: int
    model: str
    version: int
    input: str
    output: str
    engine: str
    status: str  # running | succeeded | failed
    rows_in: int
    rows_out: int
    rows_rejected: int
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None
    error: str
    schedule_id: int | None
    actor: str

    @property
    def rows_per_second(self) -> float | None:
        if not self.seconds:
            return None
        return self.rows_in / self.seconds

    def to_dict(self) -> dict[str, Any]:
        out = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}
        out["rows_per_second"] = self.rows_per_second
        return out


@dataclass(frozen=True, kw_only=True)
class BatchSchedule:
    id: int
    model: str
    cron: str
    input: str
    output: str
    options: dict[str, Any]
    max_attempts: int
    next_run_at: datetime
    last_run_at: datetime | None
    last_status: str
    attempts: int
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


class BatchStore:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))

    # --- runs ------------------------------------------------------------------------------

    def start_run(self, *, model: str, version: int, input: str, output: str, engine: str,
                  actor: str, schedule_id: int | None = None) -> BatchRun:  # fmt: skip
        with session_scope(self.engine, write=True) as session:
            row = BatchRunRow(
                model_name=model, version=version, input=input, output=output, engine=engine,
                status="running", rows_in=0, rows_out=0, rows_rejected=0,
                started_at=self.clock(), error="", schedule_id=schedule_id, actor=actor,
            )  # fmt: skip
            session.add(row)
            session.flush()
            return _run(row)

    def finish_run(self, run_id: int, *, status: str, rows_in: int, rows_out: int,
                   rows_rejected: int, error: str = "") -> BatchRun:  # fmt: skip
        with session_scope(self.engine, write=True) as session:
            row = session.get(BatchRunRow, run_id)
            if row is None:
                raise NotFound(f"no batch run {run_id}")
            now = self.clock()
            row.status, row.error = status, error
            row.rows_in, row.rows_out, row.rows_rejected = rows_in, rows_out, rows_rejected
            row.finished_at = now
            row.seconds = (now - convert.aware(row.started_at)).total_seconds()
            return _run(row)

    def runs(self, model: str | None = None, *, limit: int = 50) -> list[BatchRun]:
        """Newest first."""
        query = select(BatchRunRow).order_by(BatchRunRow.id.desc()).limit(limit)
        if model is not None:
            query = query.where(BatchRunRow.model_name == model)
        with session_scope(self.engine) as session:
            return [_run(row) for row in session.scalars(query)]

    # --- schedules -------------------------------------------------------------------------

    def add_schedule(self, *, model: str, cron: str, input: str, output: str,
                     options: Mapping[str, Any], next_run_at: datetime, actor: str,
                     max_attempts: int = 3) -> BatchSchedule:  # fmt: skip
        with session_scope(self.engine, write=True) as session:
            row = BatchScheduleRow(
                model_name=model, cron=cron, input=input, output=output, options=dict(options),
                max_attempts=max_attempts, next_run_at=next_run_at, last_run_at=None,
                last_status="", attempts=0, created_by=actor, created_at=self.clock(),
            )  # fmt: skip
            session.add(row)
            session.flush()
            return _schedule(row)

    def schedules(self, model: str | None = None) -> list[BatchSchedule]:
        query = select(BatchScheduleRow).order_by(BatchScheduleRow.id)
        if model is not None:
            query = query.where(BatchScheduleRow.model_name == model)
        with session_scope(self.engine) as session:
            return [_schedule(row) for row in session.scalars(query)]

    def remove_schedule(self, schedule_id: int) -> None:
        with session_scope(self.engine, write=True) as session:
            row = session.get(BatchScheduleRow, schedule_id)
            if row is None:
                raise NotFound(f"no batch schedule {schedule_id}")
            session.delete(row)

    def due(self, now: datetime) -> list[BatchSchedule]:
        query = select(BatchScheduleRow).where(BatchScheduleRow.next_run_at <= now)
        with session_scope(self.engine) as session:
            return [_schedule(row) for row in session.scalars(query.order_by(BatchScheduleRow.id))]

    def record_attempt(self, schedule_id: int, *, status: str, next_run_at: datetime,
                       attempts: int) -> BatchSchedule:  # fmt: skip
        with session_scope(self.engine, write=True) as session:
            row = session.get(BatchScheduleRow, schedule_id)
            if row is None:
                raise NotFound(f"no batch schedule {schedule_id}")
            row.last_run_at, row.last_status = self.clock(), status
            row.next_run_at, row.attempts = next_run_at, attempts
            return _schedule(row)


def _run(row: BatchRunRow) -> BatchRun:
    return BatchRun(
        id=row.id, model=row.model_name, version=row.version, input=row.input,
        output=row.output, engine=row.engine, status=row.status, rows_in=row.rows_in,
        rows_out=row.rows_out, rows_rejected=row.rows_rejected,
        started_at=convert.aware(row.started_at),
        finished_at=convert.aware(row.finished_at) if row.finished_at else None,
        seconds=row.seconds, error=row.error, schedule_id=row.schedule_id, actor=row.actor,
    )  # fmt: skip


def _schedule(row: BatchScheduleRow) -> BatchSchedule:
    return BatchSchedule(
        id=row.id, model=row.model_name, cron=row.cron, input=row.input, output=row.output,
        options=dict(row.options or {}), max_attempts=row.max_attempts,
        next_run_at=convert.aware(row.next_run_at),
        last_run_at=convert.aware(row.last_run_at) if row.last_run_at else None,
        last_status=row.last_status, attempts=row.attempts, created_by=row.created_by,
        created_at=convert.aware(row.created_at),
    )  # fmt: skip
