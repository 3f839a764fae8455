"""Model packages on disk: a directory of model file(s) plus a sha256 ``manifest.json``.

Save any supported model with :func:`save_model`, bring in what is already on disk (a package,
an MLflow model directory, a single model file) with :func:`package_from_path`, and load it
back with :func:`load_model`, which checks every file before deserializing anything. This
package knows nothing of the registry or HTTP.
"""

from watchkeeper.models.flavors import FLAVORS
from watchkeeper.models.loaded import LoadedModel
from watchkeeper.models.manifest import Manifest, read_manifest, verify_package
from watchkeeper.models.package import load_model, package_from_path, save_model
from watchkeeper.models.signature import ColumnSpec, Signature, infer_signature

__all__ = [
    "ColumnSpec",
    "FLAVORS",
    "LoadedModel",
    "Manifest",
    "Signature",
    "infer_signature",
    "load_model",
    "package_from_path",
    "read_manifest",
    "save_model",
    "verify_package",
]
