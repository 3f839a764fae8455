"""Metadata operations on the SQL database; one session per operation, entities out.

Every write locks the model's row first (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` serialises all writers), so version numbers, stages and the production
history stay consistent however many processes write at once. The partial unique index on
``stage = 'production'`` backs the "one production version" rule in the schema itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from watchkeeper.errors import (
    AliasNotFound,
    Conflict,
    ModelNotFound,
    NoEarlierProduction,
    VersionNotFound,
)
from watchkeeper.registry import convert
from watchkeeper.registry.db import session_scope
from watchkeeper.registry.entities import AuditEvent, ModelVersion, RegisteredModel
from watchkeeper.registry.refs import (
    MAX_VERSION,
    ModelRef,
    check_alias,
    check_name,
    check_stage,
    check_version,
)
from watchkeeper.registry.schema import (
    AliasRow,
    AuditRow,
    MetricRow,
    ModelRow,
    ProductionRow,
    VersionRow,
    VersionTagRow,
)
from watchkeeper.registry.search import Filter, apply_filters


@dataclass(frozen=True, kw_only=True)
class NewVersion:
    """Everything recorded about a version at registration."""

    flavor: str
    artifact_uri: str
    manifest_digest: str
    signature: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    run_url: str | None = None
    data_uri: str | None = None
    data_hash: str | None = None
    description: str = ""
    has_profile: bool = False
    stage: str = "none"


def _now() -> datetime:
    return datetime.now(UTC)


class MetadataStore:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _now) -> None:
        self.engine = engine
        self.clock = clock

    # --- reads ---------------------------------------------------------------------------

    def get_model(self, name: str) -> RegisteredModel:
        with session_scope(self.engine) as session:
            return convert.model(session, _model_row(session, name))

    def list_models(self) -> list[RegisteredModel]:
        with session_scope(self.engine) as session:
            rows = session.scalars(select(ModelRow).order_by(ModelRow.name)).all()
            return [convert.model(session, row) for row in rows]

    def resolve(self, ref: ModelRef) -> ModelVersion:
        with session_scope(self.engine) as session:
            return convert.versions(session, ref.name, [_resolve_row(session, ref)])[0]

    def list_versions(self, name: str) -> list[ModelVersion]:
        with session_scope(self.engine) as session:
            model = _model_row(session, name)
            rows = session.scalars(
                select(VersionRow)
                .where(VersionRow.model_id == model.id)
                .order_by(VersionRow.version)
            ).all()
            return convert.versions(session, name, rows)

    def search(self, filters: Sequence[Filter], *, name: str | None = None) -> list[ModelVersion]:
        with session_scope(self.engine) as session:
            query = select(ModelRow.name, VersionRow).join(
                ModelRow, ModelRow.id == VersionRow.model_id
            )
            if name is not None:
                query = query.where(ModelRow.name == name)
            query = apply_filters(query, filters).order_by(ModelRow.name, VersionRow.version)
            out: list[ModelVersion] = []
            for model_name, row in session.execute(query).all():
                out.extend(convert.versions(session, model_name, [row]))
            return out

    def history(self, name: str | None = None, *, limit: int | None = None) -> list[AuditEvent]:
        with session_scope(self.engine) as session:
            query = select(AuditRow).order_by(AuditRow.id.desc())
            if name is not None:
                query = query.where(AuditRow.model_name == name)
            if limit is not None:
                query = query.limit(min(max(limit, 0), MAX_VERSION))
            return [convert.event(row) for row in session.scalars(query)]

    def revisions(self) -> dict[str, int]:
        """``{model: revision}``: cheap enough for a server to poll several times a second."""
        with session_scope(self.engine) as session:
            return {n: r for n, r in session.execute(select(ModelRow.name, ModelRow.revision))}

    # --- writes --------------------------------------------------------------------------

    def add_version(self, name: str, new: NewVersion, *, actor: str) -> ModelVersion:
        check_name(name)
        check_stage(new.stage)
        self._ensure_model(name, actor=actor)
        with session_scope(self.engine, write=True) as session:
            model = _model_row(session, name, lock=True)
            model.latest_version += 1
            now = self.clock()
            row = VersionRow(
                model_id=model.id,
                version=model.latest_version,
                stage="none",
                flavor=new.flavor,
                description=new.description,
                signature=new.signature,
                run_id=new.run_id,
                run_url=new.run_url,
                data_uri=new.data_uri,
                data_hash=new.data_hash,
                artifact_uri=new.artifact_uri,
                manifest_digest=new.manifest_digest,
                has_profile=new.has_profile,
                created_by=actor,
                created_at=now,
            )
            session.add(row)
            session.flush()
            session.add_all(
                VersionTagRow(version_id=row.id, key=k, value=str(v)) for k, v in new.tags.items()
            )
            session.add_all(
                MetricRow(version_id=row.id, key=k, value=float(v)) for k, v in new.metrics.items()
            )
            self._audit(session, actor, "register", name, row.version, None, new.artifact_uri, "")
            if new.stage != "none":
                self._set_stage(session, model, row, new.stage, actor=actor, reason="at register")
            self._changed(session, model)  # ``name@latest`` moved: servers watching re-resolve it
            session.flush()
            return convert.versions(session, name, [row])[0]

    def set_stage(
        self, name: str, version: int, stage: str, *, actor: str, reason: str = ""
    ) -> ModelVersion:
        check_stage(stage)
        with session_scope(self.engine, write=True) as session:
            model = _model_row(session, name, lock=True)
            row = _version_row(session, model, version)
            self._set_stage(session, model, row, stage, actor=actor, reason=reason)
            return convert.versions(session, name, [row])[0]

    def set_alias(self, name: str, version: int, alias: str, *, actor: str) -> ModelVersion:
        check_alias(alias)
        with session_scope(self.engine, write=True) as session:
            model = _model_row(session, name, lock=True)
            row = _version_row(session, model, version)
            existing = session.get(AliasRow, (model.id, alias))
            previous = None
            if existing is None:
                session.add(AliasRow(model_id=model.id, alias=alias, version_id=row.id))
            else:
                old = session.get(VersionRow, existing.version_id)
                previous = str(old.version) if old is not None else None
                existing.version_id = row.id
            self._changed(session, model)
            self._audit(session, actor, "alias", name, version, previous, alias, "")
            session.flush()
            return convert.versions(session, name, [row])[0]

    def describe_model(
        self, name: str, *, description: str, tags: dict[str, str], actor: str
    ) -> RegisteredModel:
        """Set a model's description and merge ``tags`` into its tags (audited when changed)."""
        with session_scope(self.engine, write=True) as session:
            model = _model_row(session, name, lock=True)
            merged = {**(model.tags or {}), **tags}
            if model.description != description or merged != (model.tags or {}):
                model.description, model.tags = description, merged
                self._changed(session, model)
                self._audit(session, actor, "describe", name, None, None, None, "")
                session.flush()
            return convert.model(session, model)

    def remove_alias(self, name: str, alias: str, *, actor: str) -> None:
        with session_scope(self.engine, write=True) as session:
            model = _model_row(session, name, lock=True)
            existing = session.get(AliasRow, (model.id, alias))
            if existing is None:
                raise AliasNotFound(f"model '{name}' has no alias '{alias}'")
            old = session.get(VersionRow, existing.version_id)
            session.delete(existing)
            self._changed(session, model)
            version = old.version if old is not None else None
            self._audit(session, actor, "unalias", name, version, alias, None, "")

    def rollback(self, name: str, *, actor: str, reason: str = "") -> ModelVersion:
        """Production goes back to the version that was production before the current one."""
        with session_scope(self.engine, write=True) as session:
            model = _model_row(session, name, lock=True)
            current = _production_row(session, model)
            target = self._pop_to_previous(session, model, current)
            if current is not None:
                current.stage = "archived"
                session.flush()
            target.stage = "production"
            self._changed(session, model)
            self._audit(
                session,
                actor,
                "rollback",
                name,
                target.version,
                str(current.version) if current is not None else None,
                str(target.version),
                reason,
            )
            session.flush()
            return convert.versions(session, name, [target])[0]

    def rollback_target(self, name: str) -> int | None:
        """The version ``rollback`` would put back in production; None when there is none."""
        with session_scope(self.engine) as session:
            model = _model_row(session, name)
            target = _previous(session, model, _production_row(session, model), pop=False)
            return target.version if target is not None else None

    def delete_version(self, name: str, version: int, *, actor: str) -> str:
        """Delete one version's metadata; returns its artifact URI for the caller to remove."""
        with session_scope(self.engine, write=True) as session:
            model = _model_row(session, name, lock=True)
            row = _version_row(session, model, version)
            if row.stage == "production":
                raise Conflict(
                    f"{name}@{version} is in production: promote or roll back to another "
                    "version before deleting it"
                )
            uri = row.artifact_uri
            session.delete(row)
            self._changed(session, model)
            self._audit(session, actor, "delete", name, version, row.stage, None, "")
            return uri

    # --- internals -----------------------------------------------------------------------

    def _ensure_model(self, name: str, *, actor: str) -> None:
        """Create the model row if absent, tolerating a concurrent creator."""
        with session_scope(self.engine) as session:
            if session.scalar(select(ModelRow.id).where(ModelRow.name == name)) is not None:
                return
        try:
            with session_scope(self.engine, write=True) as session:
                if session.scalar(select(ModelRow.id).where(ModelRow.name == name)) is None:
                    now = self.clock()
                    session.add(
                        ModelRow(
                            name=name,
                            description="",
                            tags={},
                            latest_version=0,
                            revision=0,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    self._audit(session, actor, "create_model", name, None, None, None, "")
        except sa_exc.IntegrityError:
            pass  # created by someone else between our check and our insert

    def _set_stage(
        self,
        session: Session,
        model: ModelRow,
        row: VersionRow,
        stage: str,
        *,
        actor: str,
        reason: str,
    ) -> None:
        if row.stage == stage:
            return
        previous = row.stage
        if stage == "production":
            current = _production_row(session, model)
            if current is not None:
                current.stage = "archived"
                self._audit(
                    session,
                    actor,
                    "stage",
                    model.name,
                    current.version,
                    "production",
                    "archived",
                    f"replaced by version {row.version}",
                )
                session.flush()
            session.add(
                ProductionRow(
                    model_id=model.id,
                    version=row.version,
                    started_at=self.clock(),
                    rolled_back=False,
                )
            )
        row.stage = stage
        self._changed(session, model)
        self._audit(session, actor, "stage", model.name, row.version, previous, stage, reason)
        session.flush()

    def _pop_to_previous(
        self, session: Session, model: ModelRow, current: VersionRow | None
    ) -> VersionRow:
        target = _previous(session, model, current, pop=True)
        if target is None:
            raise NoEarlierProduction(
                f"model '{model.name}' has no earlier production version to roll back to"
            )
        return target

    def _changed(self, session: Session, model: ModelRow) -> None:
        model.revision += 1
        model.updated_at = self.clock()

    def _audit(
        self,
        session: Session,
        actor: str,
        action: str,
        name: str,
        version: int | None,
        from_value: str | None,
        to_value: str | None,
        reason: str,
    ) -> None:
        session.add(
            AuditRow(
                at=self.clock(),
                actor=actor,
                action=action,
                model_name=name,
                version=version,
                from_value=from_value,
                to_value=to_value,
                reason=reason,
            )
        )


def _model_row(session: Session, name: str, *, lock: bool = False) -> ModelRow:
    query = select(ModelRow).where(ModelRow.name == name)
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise ModelNotFound(f"no model named '{name}' (see `watchkeeper models list`)")
    return row


def _version_row(session: Session, model: ModelRow, version: int) -> VersionRow:
    check_version(version)  # every lookup by number passes here, from text or from an int
    row = session.scalar(
        select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.version == version)
    )
    if row is None:
        raise VersionNotFound(f"model '{model.name}' has no version {version}")
    return row


def _previous(
    session: Session, model: ModelRow, current: VersionRow | None, *, pop: bool
) -> VersionRow | None:
    """The newest earlier production version that still exists; with ``pop``, the entries
    passed over (the current one, deleted versions) are marked rolled back."""
    entries = session.scalars(
        select(ProductionRow)
        .where(ProductionRow.model_id == model.id, ProductionRow.rolled_back.is_(False))
        .order_by(ProductionRow.id.desc())
    ).all()
    for entry in entries:
        if current is None or entry.version != current.version:
            candidate = session.scalar(
                select(VersionRow).where(
                    VersionRow.model_id == model.id, VersionRow.version == entry.version
                )
            )
            if candidate is not None:
                return candidate
        if pop:
            entry.rolled_back = True
    return None


def _production_row(session: Session, model: ModelRow) -> VersionRow | None:
    return session.scalar(
        select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.stage == "production")
    )


def _resolve_row(session: Session, ref: ModelRef) -> VersionRow:
    model = _model_row(session, ref.name)
    query = select(VersionRow).where(VersionRow.model_id == model.id)
    if ref.kind == "version":
        return _version_row(session, model, int(ref.value))
    if ref.kind == "latest":
        row = session.scalar(query.order_by(VersionRow.version.desc()).limit(1))
    elif ref.kind == "stage":
        row = session.scalar(
            query.where(VersionRow.stage == ref.value).order_by(VersionRow.version.desc()).limit(1)
        )
    else:
        alias = session.get(AliasRow, (model.id, ref.value))
        if alias is None:
            raise AliasNotFound(f"model '{ref.name}' has no alias '{ref.value}'")
        row = session.get(VersionRow, alias.version_id)
    if row is None:
        raise VersionNotFound(f"model '{ref.name}' has no {ref.value} version")
    return row
