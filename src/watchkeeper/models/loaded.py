"""``LoadedModel``: one interface over every flavor, for serving, batch scoring and monitoring."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from watchkeeper.errors import InvalidInput
from watchkeeper.models._batch import to_array, to_frame
from watchkeeper.models.flavors.base import Array, Predictor
from watchkeeper.models.manifest import Manifest
from watchkeeper.models.signature import Signature


class LoadedModel:
    """A model package ready to predict.

    ``predict`` and ``predict_proba`` accept a DataFrame or a dict of columns (reordered by the
    signature; a missing column raises ``SchemaError``; extra columns are ignored) or a 2-D
    array whose columns are already in signature order. They always return numpy arrays:
    predictions 1-D, probabilities 2-D with one column per entry of ``classes``.
    """

    def __init__(self, *, path: Path, manifest: Manifest, predictor: Predictor) -> None:
        self.path = path
        self.manifest = manifest
        self._predictor = predictor
        signature = manifest.signature
        self._names = signature.names if signature is not None else predictor.feature_names
        self._prepare: Callable[[Any], Any]
        if predictor.input_kind == "array":
            self._prepare = self._as_array
        else:
            self._prepare = self._as_frame

    @property
    def flavor(self) -> str:
        return self.manifest.flavor

    @property
    def signature(self) -> Signature | None:
        return self.manifest.signature

    @property
    def has_proba(self) -> bool:
        return self._predictor.has_proba

    @property
    def classes(self) -> Array | None:
        return self._predictor.classes

    @property
    def input_kind(self) -> str:
        """``"array"`` when the model takes a 2-D array as well as a frame, else ``"frame"``."""
        return str(self._predictor.input_kind)

    @property
    def input_names(self) -> list[str] | None:
        """The columns fed to the model, in order (from the signature, else from the model)."""
        return list(self._names) if self._names is not None else None

    def predict(self, batch: Any) -> Array:
        return np.asarray(self._predictor.predict(self._prepare(batch)))

    def predict_proba(self, batch: Any) -> Array:
        if not self._predictor.has_proba:
            raise InvalidInput(f"the {self.flavor} model at {self.path} has no predict_proba")
        return np.asarray(self._predictor.predict_proba(self._prepare(batch)))

    def predict_and_proba(self, batch: Any) -> tuple[Array, Array]:
        """Predictions and probabilities of one batch, prepared once; a single model pass when
        the flavor's ``predict`` is by definition the argmax of its probabilities."""
        if not self._predictor.has_proba:
            raise InvalidInput(f"the {self.flavor} model at {self.path} has no predict_proba")
        x = self._prepare(batch)
        proba = np.asarray(self._predictor.predict_proba(x))
        classes = self._predictor.classes
        if getattr(self._predictor, "predicts_by_argmax", False) and classes is not None:
            return classes.take(np.argmax(proba, axis=1), axis=0), proba
        return np.asarray(self._predictor.predict(x)), proba

    def _as_array(self, batch: Any) -> Any:
        return to_array(batch, self._names)

    def _as_frame(self, batch: Any) -> Any:
        return to_frame(batch, self._names, self.manifest.signature)

    def __repr__(self) -> str:
        return f"LoadedModel(flavor={self.flavor!r}, path={str(self.path)!r})"
