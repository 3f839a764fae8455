"""watchkeeper: deploy machine-learning models and keep them working as data shifts.

The promised Python API is what ``__all__`` lists; everything else is importable but may change.
"""

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

__version__ = "0.1.0"

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
