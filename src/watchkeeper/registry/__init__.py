"""The model registry: versions, stages, aliases, rollback and audit over SQL + fsspec."""

from watchkeeper.registry.entities import AuditEvent, ModelVersion, RegisteredModel
from watchkeeper.registry.refs import ModelRef
from watchkeeper.registry.registry import Registry

__all__ = ["AuditEvent", "ModelRef", "ModelVersion", "RegisteredModel", "Registry"]
