"""Rows to entities: the only place that reads ORM rows into the registry's value objects."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from watchkeeper.registry.entities import AuditEvent, ModelVersion, RegisteredModel
from watchkeeper.registry.schema import (
    AliasRow,
    AuditRow,
    MetricRow,
    ModelRow,
    VersionRow,
    VersionTagRow,
)


def aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; everything we store is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def model(session: Session, row: ModelRow) -> RegisteredModel:
    production = session.scalar(
        select(VersionRow.version).where(
            VersionRow.model_id == row.id, VersionRow.stage == "production"
        )
    )
    aliases = session.execute(
        select(AliasRow.alias, VersionRow.version)
        .join(VersionRow, VersionRow.id == AliasRow.version_id)
        .where(AliasRow.model_id == row.id)
        .order_by(AliasRow.alias)
    ).all()
    return RegisteredModel(
        name=row.name,
        description=row.description,
        tags=dict(row.tags or {}),
        latest_version=row.latest_version,
        revision=row.revision,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
        production_version=production,
        aliases={alias: version for alias, version in aliases},
    )


def versions(session: Session, name: str, rows: Sequence[VersionRow]) -> list[ModelVersion]:
    ids = [row.id for row in rows]
    metrics: dict[int, dict[str, float]] = defaultdict(dict)
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    aliases: dict[int, list[str]] = defaultdict(list)
    if ids:
        for m in session.scalars(select(MetricRow).where(MetricRow.version_id.in_(ids))):
            metrics[m.version_id][m.key] = m.value
        for t in session.scalars(select(VersionTagRow).where(VersionTagRow.version_id.in_(ids))):
            tags[t.version_id][t.key] = t.value
        alias_rows = session.scalars(
            select(AliasRow).where(AliasRow.version_id.in_(ids)).order_by(AliasRow.alias)
        )
        for a in alias_rows:
            aliases[a.version_id].append(a.alias)
    return [
        ModelVersion(
            name=name,
            version=row.version,
            stage=row.stage,
            flavor=row.flavor,
            description=row.description,
            metrics=dict(sorted(metrics[row.id].items())),
            tags=dict(sorted(tags[row.id].items())),
            aliases=tuple(aliases[row.id]),
            signature=row.signature,
            run_id=row.run_id,
            run_url=row.run_url,
            data_uri=row.data_uri,
            data_hash=row.data_hash,
            artifact_uri=row.artifact_uri,
            manifest_digest=row.manifest_digest,
            has_profile=row.has_profile,
            created_by=row.created_by,
            created_at=aware(row.created_at),
        )
        for row in rows
    ]


def event(row: AuditRow) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        at=aware(row.at),
        actor=row.actor,
        action=row.action,
        model_name=row.model_name,
        version=row.version,
        from_value=row.from_value,
        to_value=row.to_value,
        reason=row.reason,
    )
