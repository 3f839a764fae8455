"""Deployment records: the candidate beside a model's production version, and its history.

A deployment is one row per model. Servers follow it (every change bumps the model's
``revision``, which they watch); the rollout controller and people change it the same way: a
compare-and-set on the deployment's own ``revision``, so two writers never both win. Every
change appends a ``deployment_events`` row and an audit event with its reason.

The rollout controller writes with a :class:`~watchkeeper.registry.leases.Fence` (the scheduler
lease's epoch it holds): the write and the lease check are one transaction, so a controller
that lost the lease (paused past its time to live, then resumed) changes nothing; its events
carry the epoch, which never goes back.

A server replica that cannot load (or warm) a deployment's candidate says so with
:meth:`DeploymentStore.report_load_failure`: one ``deployment_events`` row in state
``load_failed`` at the deployment's current revision, and no change to the record itself (a
replica never changes traffic). The rollout controller reads the reports of the revision it
looks at and rolls the deployment back; a report about an older revision is never read again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from watchkeeper.errors import Conflict, InvalidInput
from watchkeeper.registry import convert
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.entities import ModelVersion
from watchkeeper.registry.leases import Fence, check_fence
from watchkeeper.registry.schema import DeploymentEventRow, DeploymentRow, ModelRow
from watchkeeper.registry.store import MetadataStore, _model_row, _production_row, _version_row

Mode = Literal["shadow", "canary", "bluegreen", "ab"]
MODES: tuple[str, ...] = ("shadow", "canary", "bluegreen", "ab")
ACTIVE = ("running", "ready")  # states in which servers load the candidate
STATES = (*ACTIVE, "promoted", "rolled_back", "aborted", "done")
LOAD_FAILED = "load_failed"  # a replica's report in the history, not a state of the record


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """One model's deployment. ``share`` is the candidate's share of answered traffic (canary,
    ab, a switched blue-green) or of copied requests (shadow). ``standby`` is a previous
    production version kept loaded until ``standby_until`` so a rollback is instant."""

    model: str
    revision: int
    mode: str
    state: str
    candidate: int | None
    baseline: int | None  # the production version when the deployment started
    share: float
    step: int
    config: dict[str, Any]
    reason: str
    standby: int | None
    standby_until: datetime | None
    started_at: datetime
    step_started_at: datetime
    updated_at: datetime
    updated_by: str

    @property
    def active(self) -> bool:
        return self.state in ACTIVE and self.candidate is not None

    def to_dict(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in asdict(self).items()}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class DeploymentEvent:
    model: str
    revision: int
    at: datetime
    actor: str
    mode: str
    state: str
    candidate: int | None
    share: float
    step: int
    reason: str
    details: dict[str, Any]
    epoch: int | None = None  # the controller's lease epoch; None for a person's change

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


_CHANGEABLE = {"mode", "state", "candidate", "share", "step", "config", "standby",
               "standby_until", "step_started_at"}  # fmt: skip


class DeploymentStore:
    """Reads and compare-and-set writes of deployments, on the registry's database."""

    def __init__(
        self, metadata: MetadataStore, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.metadata = metadata
        self.engine = metadata.engine
        self.clock = clock or metadata.clock

    def get(self, model: str) -> Deployment | None:
        with session_scope(self.engine) as session:
            found = session.execute(
                select(DeploymentRow, ModelRow.name)
                .join(ModelRow, ModelRow.id == DeploymentRow.model_id)
                .where(ModelRow.name == model)
            ).first()
            return _entity(found[0], found[1]) if found else None

    def all(self, *, active_only: bool = False) -> list[Deployment]:
        with session_scope(self.engine) as session:
            query = select(DeploymentRow, ModelRow.name).join(
                ModelRow, ModelRow.id == DeploymentRow.model_id
            )
            if active_only:
                query = query.where(DeploymentRow.state.in_(ACTIVE))
            return [
                _entity(row, name) for row, name in session.execute(query.order_by(ModelRow.name))
            ]

    def events(self, model: str, *, limit: int | None = None) -> list[DeploymentEvent]:
        """Newest first."""
        with session_scope(self.engine) as session:
            query = (
                select(DeploymentEventRow)
                .where(DeploymentEventRow.model_name == model)
                .order_by(DeploymentEventRow.id.desc())
            )
            if limit is not None:
                query = query.limit(limit)
            return [_event(row) for row in session.scalars(query)]

    def start(
        self, model: str, mode: str, candidate: int, *, share: float, config: Mapping[str, Any],
        actor: str, reason: str, state: str = "running",
    ) -> Deployment:  # fmt: skip
        """Begin a deployment of ``candidate``; refused while another one is active."""
        if mode not in MODES:
            raise InvalidInput(f"unknown deployment mode '{mode}'; choose from {list(MODES)}")
        _check_share(share)
        now = self.clock()
        with session_scope(self.engine, write=True) as session:
            row_model = _model_row(session, model, lock=True)
            version = _version_row(session, row_model, candidate)
            production = _production_row(session, row_model)
            if production is None:
                raise Conflict(f"model '{model}' has no production version to deploy beside")
            if production.version == version.version:
                raise Conflict(f"{model}@{candidate} is already the production version")
            row = session.get(DeploymentRow, row_model.id)
            if row is not None and row.state in ACTIVE:
                raise Conflict(
                    f"model '{model}' already has a {row.mode} deployment of version "
                    f"{row.candidate} ({row.state}): promote or abort it first"
                )
            if row is None:
                row = DeploymentRow(model_id=row_model.id, revision=0, started_at=now)
                session.add(row)
            row.revision = (row.revision or 0) + 1
            row.mode, row.state, row.candidate = mode, state, candidate
            row.baseline, row.share, row.step = production.version, share, 0
            row.config, row.reason = dict(config), reason
            row.started_at = row.step_started_at = row.updated_at = now
            row.updated_by = actor
            keep = row.standby_until is not None and convert.aware(row.standby_until) > now
            row.standby = row.standby if keep else None  # a warm previous version stays warm
            row.standby_until = row.standby_until if keep else None
            self._record(session, row_model, row, actor, f"start {mode}", reason, {})
            return _entity(row, model)

    def update(
        self, model: str, revision: int, *, actor: str, reason: str,
        details: Mapping[str, Any] | None = None, promote: bool = False,
        fence: Fence | None = None, **changes: Any,
    ) -> Deployment:  # fmt: skip
        """Change fields of the deployment at ``revision``; ``Conflict`` if it has moved on,
        ``StaleEpoch`` (a ``Conflict``) if ``fence`` no longer holds its lease.

        With ``promote``, the candidate becomes the production version in the same
        transaction (the old one stays in the production history for ``models rollback``).
        """
        unknown = set(changes) - _CHANGEABLE
        if unknown:
            raise InvalidInput(f"cannot change {sorted(unknown)} of a deployment")
        if "share" in changes:
            _check_share(changes["share"])
        if "state" in changes and changes["state"] not in STATES:
            raise InvalidInput(f"unknown deployment state '{changes['state']}'")
        with session_scope(self.engine, write=True) as session:
            if fence is not None:
                check_fence(session, fence)  # holds the lease row until this commits
            row_model = _model_row(session, model, lock=True)
            row = session.get(DeploymentRow, row_model.id)
            if row is None:
                raise Conflict(f"model '{model}' has no deployment")
            if row.revision != revision:
                raise Conflict(
                    f"the deployment of '{model}' changed (revision {row.revision}, "
                    f"expected {revision}): look again before acting"
                )
            if "step" in changes and changes["step"] != row.step:
                changes.setdefault("step_started_at", self.clock())
            for key, value in changes.items():
                setattr(row, key, value)
            if promote:
                if row.candidate is None:
                    raise Conflict(f"the deployment of '{model}' has no candidate to promote")
                version = _version_row(session, row_model, row.candidate)
                self.metadata._set_stage(session, row_model, version, "production", actor=actor,
                                         reason=reason or f"{row.mode} deployment")  # fmt: skip
            row.revision += 1
            row.updated_at, row.updated_by, row.reason = self.clock(), actor, reason
            self._record(session, row_model, row, actor, _action(changes, promote), reason,
                         dict(details or {}), epoch=fence.epoch if fence else None)  # fmt: skip
            return _entity(row, model)

    def report_load_failure(
        self, model: str, revision: int, *, candidate: int, replica: str, reason: str,
    ) -> bool:  # fmt: skip
        """Record that ``replica`` could not load ``candidate`` of the deployment at ``revision``.

        Nothing is written (False) when the deployment has moved on from ``revision``, is no
        longer active or deploys another version: the report would be about a deployment that
        no longer exists. The record and the model's revision are left alone."""
        with session_scope(self.engine, write=True) as session:
            row_model = _model_row(session, model)
            row = session.get(DeploymentRow, row_model.id)
            current = (row is not None and row.revision == revision and row.state in ACTIVE
                       and row.candidate == candidate)  # fmt: skip
            if row is None or not current:
                return False
            details = {"load_failure": {"replica": replica, "candidate": candidate}}
            session.add(DeploymentEventRow(
                model_name=model, revision=revision, at=self.clock(), actor=f"replica {replica}",
                mode=row.mode, state=LOAD_FAILED, candidate=candidate, share=row.share,
                step=row.step, reason=reason, details=details,
            ))  # fmt: skip
            return True

    def load_failures(self, model: str, revision: int) -> list[DeploymentEvent]:
        """Replicas' reports that they could not load the candidate at ``revision``, oldest
        first."""
        with session_scope(self.engine) as session:
            query = (
                select(DeploymentEventRow)
                .where(DeploymentEventRow.model_name == model)
                .where(DeploymentEventRow.revision == revision)
                .where(DeploymentEventRow.state == LOAD_FAILED)
                .order_by(DeploymentEventRow.id)
            )
            return [_event(row) for row in session.scalars(query)]

    def production(self, model: str) -> ModelVersion | None:
        with session_scope(self.engine) as session:
            row = _production_row(session, _model_row(session, model))
            return convert.versions(session, model, [row])[0] if row is not None else None

    def _record(
        self, session: Session, model: ModelRow, row: DeploymentRow, actor: str, action: str,
        reason: str, details: dict[str, Any], *, epoch: int | None = None,
    ) -> None:  # fmt: skip
        self.metadata._changed(session, model)  # servers follow the model's revision
        session.add(DeploymentEventRow(
            model_name=model.name, revision=row.revision, at=self.clock(), actor=actor,
            mode=row.mode, state=row.state, candidate=row.candidate, share=row.share,
            step=row.step, reason=reason or action, details=details, epoch=epoch,
        ))  # fmt: skip
        to_value = f"{row.mode} {row.state} share={row.share:g} step={row.step}"
        self.metadata._audit(session, actor, "deploy", model.name, row.candidate, action,
                             to_value, reason)  # fmt: skip
        session.flush()


def _action(changes: Mapping[str, Any], promote: bool) -> str:
    if promote:
        return "promote"
    if "state" in changes:
        return str(changes["state"])
    return "step" if "step" in changes else "update"


def _check_share(share: float) -> None:
    if not 0.0 <= float(share) <= 1.0:
        raise InvalidInput(f"a share must be between 0 and 1, got {share}")


def _entity(row: DeploymentRow, model: str) -> Deployment:
    return Deployment(
        model=model, revision=row.revision, mode=row.mode, state=row.state,
        candidate=row.candidate, baseline=row.baseline, share=row.share, step=row.step,
        config=dict(row.config or {}), reason=row.reason, standby=row.standby,
        standby_until=convert.aware(row.standby_until) if row.standby_until else None,
        started_at=convert.aware(row.started_at),
        step_started_at=convert.aware(row.step_started_at),
        updated_at=convert.aware(row.updated_at),
        updated_by=row.updated_by,
    )  # fmt: skip


def _event(row: DeploymentEventRow) -> DeploymentEvent:
    return DeploymentEvent(
        model=row.model_name, revision=row.revision, at=convert.aware(row.at), actor=row.actor,
        mode=row.mode, state=row.state, candidate=row.candidate, share=row.share, step=row.step,
        reason=row.reason, details=dict(row.details or {}), epoch=row.epoch,
    )  # fmt: skip
