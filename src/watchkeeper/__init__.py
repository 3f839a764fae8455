"""watchkeeper: deploy machine-learning models and keep them working as data shifts.

The promised Python API is what ``__all__`` lists; everything else is importable but may change.
Names are imported on first use (PEP 562), so ``import watchkeeper.monitoring.drift`` does not
pay for SQLAlchemy, the registry or the model flavors.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watchkeeper.config import Settings
    from watchkeeper.errors import WatchkeeperError
    from watchkeeper.models import (
        LoadedModel,
        Manifest,
        Signature,
        infer_signature,
        load_model,
        save_model,
    )
    from watchkeeper.registry import AuditEvent, ModelVersion, RegisteredModel, Registry

__version__ = "0.1.0"  # the one place it is written: pyproject.toml reads it ([tool.hatch.version])

_WHERE = {
    "AuditEvent": "watchkeeper.registry",
    "LoadedModel": "watchkeeper.models",
    "Manifest": "watchkeeper.models",
    "ModelVersion": "watchkeeper.registry",
    "RegisteredModel": "watchkeeper.registry",
    "Registry": "watchkeeper.registry",
    "Settings": "watchkeeper.config",
    "Signature": "watchkeeper.models",
    "WatchkeeperError": "watchkeeper.errors",
    "infer_signature": "watchkeeper.models",
    "load_model": "watchkeeper.models",
    "save_model": "watchkeeper.models",
}

__all__ = [
    "AuditEvent",
    "LoadedModel",
    "Manifest",
    "ModelVersion",
    "RegisteredModel",
    "Registry",
    "Settings",
    "Signature",
    "WatchkeeperError",
    "__version__",
    "infer_signature",
    "load_model",
    "save_model",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'watchkeeper' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
