"""What the registry hands out: frozen value objects, never database rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, kw_only=True)
class RegisteredModel:
    name: str
    description: str
    tags: dict[str, str]
    latest_version: int
    revision: int
    created_at: datetime
    updated_at: datetime
    production_version: int | None = None
    aliases: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True, kw_only=True)
class ModelVersion:
    name: str
    version: int
    stage: str
    flavor: str
    description: str
    metrics: dict[str, float]
    tags: dict[str, str]
    aliases: tuple[str, ...]
    signature: dict[str, Any] | None
    run_id: str | None
    run_url: str | None
    data_uri: str | None
    data_hash: str | None
    artifact_uri: str
    manifest_digest: str
    has_profile: bool
    created_by: str
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True, kw_only=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    action: str
    model_name: str
    version: int | None
    from_value: str | None
    to_value: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = value
    return out
