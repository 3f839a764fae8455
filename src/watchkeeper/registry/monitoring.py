"""Monitor results and alerts in the metadata database.

Results are appended (a time series per model, check, feature and statistic). Alerts follow
``watchkeeper.monitoring.results.alert_actions``, applied in one transaction; the partial
unique index on open alerts keeps them deduplicated even when two schedulers race.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from watchkeeper.errors import AlertNotFound
from watchkeeper.monitoring.results import CheckResult, alert_actions, describe
from watchkeeper.registry.convert import aware
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.schema import AlertRow, MonitorResultRow


@dataclass(frozen=True, kw_only=True)
class Alert:
    id: int
    model: str
    version: int | None
    check: str
    feature: str
    statistic: str
    status: str
    value: float | None
    threshold: float | None
    message: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    acknowledged_by: str | None


@dataclass(frozen=True)
class AlertChanges:
    opened: tuple[Alert, ...]
    updated: tuple[Alert, ...]
    closed: tuple[Alert, ...]


class MonitoringStore:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))

    def record(self, results: Sequence[CheckResult]) -> int:
        now = self.clock()
        with session_scope(self.engine, write=True) as session:
            session.add_all(
                MonitorResultRow(
                    model_name=r.model, version=r.version, window_start=r.window_start,
                    window_end=r.window_end, check=r.check, feature=r.feature,
                    statistic=r.statistic, value=r.value, threshold=r.threshold,
                    status=r.status, created_at=now,
                )
                for r in results
            )  # fmt: skip
        return len(results)

    def series(
        self, model: str, *, check: str | None = None, feature: str | None = None,
        statistic: str | None = None, since: datetime | None = None,
        until: datetime | None = None, newest: int | None = None,
    ) -> list[CheckResult]:  # fmt: skip
        """Stored results, oldest window first; with ``newest``, only the last that many."""
        query = select(MonitorResultRow).where(MonitorResultRow.model_name == model)
        for column, wanted in ((MonitorResultRow.check, check),
                               (MonitorResultRow.feature, feature),
                               (MonitorResultRow.statistic, statistic)):  # fmt: skip
            if wanted is not None:
                query = query.where(column == wanted)
        if since is not None:
            query = query.where(MonitorResultRow.window_start >= since)
        if until is not None:
            query = query.where(MonitorResultRow.window_start < until)
        if newest is not None:
            query = query.order_by(MonitorResultRow.window_start.desc(),
                                   MonitorResultRow.id.desc()).limit(newest)  # fmt: skip
            with session_scope(self.engine) as session:
                return [_result(row) for row in session.scalars(query)][::-1]
        query = query.order_by(MonitorResultRow.window_start, MonitorResultRow.id)
        with session_scope(self.engine) as session:
            return [_result(row) for row in session.scalars(query)]

    def latest(self, model: str | None = None) -> list[CheckResult]:
        """The newest result of every (model, check, feature, statistic): what /metrics shows."""
        newest = (
            select(
                MonitorResultRow.model_name, MonitorResultRow.check, MonitorResultRow.feature,
                MonitorResultRow.statistic, func.max(MonitorResultRow.id).label("id"),
            )
            .group_by(MonitorResultRow.model_name, MonitorResultRow.check,
                      MonitorResultRow.feature, MonitorResultRow.statistic)
        )  # fmt: skip
        if model is not None:
            newest = newest.where(MonitorResultRow.model_name == model)
        ids = newest.subquery().c.id
        query = select(MonitorResultRow).where(MonitorResultRow.id.in_(select(ids)))
        with session_scope(self.engine) as session:
            return [_result(row) for row in session.scalars(query.order_by(MonitorResultRow.id))]

    def apply_alerts(self, results: Sequence[CheckResult]) -> AlertChanges:
        """Open, update and close alerts for these results, in one transaction."""
        now = self.clock()
        with session_scope(self.engine, write=True) as session:
            models = {r.model for r in results}
            open_rows = {
                (a.model_name, a.check, a.feature, a.statistic): a
                for a in session.scalars(
                    select(AlertRow).where(
                        AlertRow.status == "open", AlertRow.model_name.in_(models)
                    ).with_for_update()
                )
            }  # fmt: skip
            actions = alert_actions(results, open_rows)
            opened = [_open(session, r, now) for r in actions.open]
            updated = [_update(open_rows[r.key], r, now) for r in actions.update]
            closed = [_close(open_rows[r.key], r, now) for r in actions.close]
            session.flush()
            return AlertChanges(
                tuple(map(_alert, opened)), tuple(map(_alert, updated)),
                tuple(map(_alert, closed)),
            )  # fmt: skip

    def alerts(self, model: str | None = None, *, open_only: bool = True) -> list[Alert]:
        query = select(AlertRow).order_by(AlertRow.opened_at.desc(), AlertRow.id.desc())
        if model is not None:
            query = query.where(AlertRow.model_name == model)
        if open_only:
            query = query.where(AlertRow.status == "open")
        with session_scope(self.engine) as session:
            return [_alert(row) for row in session.scalars(query)]

    def acknowledge(self, alert_id: int, actor: str) -> Alert:
        with session_scope(self.engine, write=True) as session:
            row = session.get(AlertRow, alert_id)
            if row is None:
                raise AlertNotFound(f"no alert with id {alert_id}")
            row.acknowledged_by = actor
            row.updated_at = self.clock()
            return _alert(row)


def _open(session: Session, result: CheckResult, now: datetime) -> AlertRow:
    row = AlertRow(
        model_name=result.model, version=result.version, check=result.check,
        feature=result.feature, statistic=result.statistic, status="open", value=result.value,
        threshold=result.threshold, message=describe(result), opened_at=now, updated_at=now,
    )  # fmt: skip
    session.add(row)
    return row


def _update(row: AlertRow, result: CheckResult, now: datetime) -> AlertRow:
    row.value, row.threshold, row.version = result.value, result.threshold, result.version
    row.message, row.updated_at = describe(result), now
    return row


def _close(row: AlertRow, result: CheckResult, now: datetime) -> AlertRow:
    row.status, row.closed_at, row.updated_at, row.value = "closed", now, now, result.value
    return row


def _alert(row: AlertRow) -> Alert:
    return Alert(
        id=row.id, model=row.model_name, version=row.version, check=row.check,
        feature=row.feature, statistic=row.statistic, status=row.status, value=row.value,
        threshold=row.threshold, message=row.message, opened_at=aware(row.opened_at),
        updated_at=aware(row.updated_at),
        closed_at=aware(row.closed_at) if row.closed_at is not None else None,
        acknowledged_by=row.acknowledged_by,
    )  # fmt: skip


def _result(row: MonitorResultRow) -> CheckResult:
    return CheckResult(
        model=row.model_name, version=row.version, window_start=aware(row.window_start),
        window_end=aware(row.window_end), check=row.check, feature=row.feature,
        statistic=row.statistic, value=row.value, threshold=row.threshold,
        status=row.status,  # type: ignore[arg-type]
    )  # fmt: skip
