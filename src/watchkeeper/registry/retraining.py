"""Retraining run records: one running run per model (a partial unique index), then its end."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from watchkeeper.errors import Conflict, NotFound
from watchkeeper.registry import convert
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.schema import RetrainRunRow

LOG_LIMIT = 64_000  # characters of a run's stdout/stderr kept (the end, where errors are)


@dataclass(frozen=True, kw_only=True)
class RetrainRun:
    id: int
    model: str
    trigger: str
    status: str  # running | registered | rejected | failed | dry_run
    dry_run: bool
    parent_version: int | None
    candidate_version: int | None
    verdict: str  # pass | fail | "" (no gate reached)
    gate: dict[str, Any]
    outcome: str  # what happened next, in words
    error: str
    log: str
    started_at: datetime
    finished_at: datetime | None
    actor: str

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        out = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}
        out["seconds"] = self.seconds
        return out


class RetrainStore:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))

    def start(self, model: str, *, trigger: str, parent: int | None, actor: str,
              dry_run: bool = False) -> RetrainRun:  # fmt: skip
        """A new running run; ``Conflict`` if the model already has one."""
        try:
            with session_scope(self.engine, write=True) as session:
                row = RetrainRunRow(
                    model_name=model, trigger=trigger, status="running", dry_run=dry_run,
                    parent_version=parent, candidate_version=None, verdict="", gate={},
                    outcome="", error="", log="", started_at=self.clock(), actor=actor,
                )  # fmt: skip
                session.add(row)
                session.flush()
                return _run(row)
        except IntegrityError as exc:
            raise Conflict(f"model '{model}' is already being retrained") from exc

    def finish(self, run_id: int, *, status: str, verdict: str = "", outcome: str = "",
               error: str = "", log: str = "", gate: Mapping[str, Any] | None = None,
               candidate: int | None = None) -> RetrainRun:  # fmt: skip
        with session_scope(self.engine, write=True) as session:
            row = session.get(RetrainRunRow, run_id)
            if row is None:
                raise NotFound(f"no retraining run {run_id}")
            row.status, row.verdict, row.outcome, row.error = status, verdict, outcome, error
            row.log = log[-LOG_LIMIT:]
            row.gate = dict(gate or {})
            row.candidate_version = candidate
            row.finished_at = self.clock()
            return _run(row)

    def runs(self, model: str | None = None, *, limit: int = 50) -> list[RetrainRun]:
        """Newest first."""
        query = select(RetrainRunRow).order_by(RetrainRunRow.id.desc()).limit(limit)
        if model is not None:
            query = query.where(RetrainRunRow.model_name == model)
        with session_scope(self.engine) as session:
            return [_run(row) for row in session.scalars(query)]

    def last_started(self, model: str, *, trigger_prefix: str = "") -> datetime | None:
        query = select(RetrainRunRow.started_at).where(
            RetrainRunRow.model_name == model, RetrainRunRow.dry_run.is_(False)
        )
        if trigger_prefix:
            query = query.where(RetrainRunRow.trigger.startswith(trigger_prefix))
        with session_scope(self.engine) as session:
            found = session.scalar(query.order_by(RetrainRunRow.id.desc()).limit(1))
        return convert.aware(found) if found is not None else None

    def running(self, model: str) -> bool:
        query = select(RetrainRunRow.id).where(RetrainRunRow.model_name == model,
                                               RetrainRunRow.status == "running")  # fmt: skip
        with session_scope(self.engine) as session:
            return session.scalar(query.limit(1)) is not None


def _run(row: RetrainRunRow) -> RetrainRun:
    return RetrainRun(
        id=row.id, model=row.model_name, trigger=row.trigger, status=row.status,
        dry_run=row.dry_run, parent_version=row.parent_version,
        candidate_version=row.candidate_version, verdict=row.verdict, gate=dict(row.gate or {}),
        outcome=row.outcome, error=row.error, log=row.log,
        started_at=convert.aware(row.started_at),
        finished_at=convert.aware(row.finished_at) if row.finished_at else None, actor=row.actor,
    )  # fmt: skip
