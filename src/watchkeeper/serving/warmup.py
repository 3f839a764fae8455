"""Getting a loaded version ready: the batcher's call around the model, and one warm-up
prediction on a synthetic row before it takes traffic."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from watchkeeper.errors import UnreadableModel, WatchkeeperError
from watchkeeper.models import LoadedModel
from watchkeeper.models.signature import ColumnSpec
from watchkeeper.serving.batch import ParsedBatch
from watchkeeper.serving.batcher import Outputs
from watchkeeper.serving.validation import Validator

log = logging.getLogger("watchkeeper.serving")


def predict_fn(
    model: LoadedModel, on_cpu: Callable[[float], None] | None = None
) -> Callable[[Any, bool], Outputs]:
    """The batcher's call; with ``on_cpu``, the calling thread's CPU time is reported (native
    threads a library starts are not counted: the figure is a floor)."""

    def run(data: Any, want_proba: bool) -> Outputs:
        cpu = time.thread_time() if on_cpu is not None else 0.0
        probabilities = None
        if want_proba and model.has_proba:  # one pass for both when the flavor allows it
            predictions, probabilities = model.predict_and_proba(data)
        else:
            predictions = model.predict(data)
        if on_cpu is not None:
            on_cpu(time.thread_time() - cpu)
        return predictions, probabilities

    return run


def warm(model: LoadedModel, validator: Validator | None) -> None:
    """One prediction on a synthetic row before the version takes traffic."""
    signature = model.signature
    if signature is None or validator is None:
        return
    row = {spec.name: [sample_value(spec)] for spec in signature.columns}
    try:
        data = validator.validate(ParsedBatch(columns=row)).data
    except WatchkeeperError as exc:  # our synthetic row, not the model, is at fault
        log.info("no warm-up for %s: %s", model.path, exc.message)
        return
    try:
        model.predict(data)
        if model.has_proba:
            model.predict_proba(data)
    except Exception as exc:
        raise UnreadableModel(f"warm-up prediction failed: {type(exc).__name__}: {exc}") from exc


def sample_value(spec: ColumnSpec) -> Any:
    if spec.categories:
        return spec.categories[0]
    if spec.dtype == "bool":
        return False
    if spec.dtype == "string":
        return ""
    if spec.dtype == "datetime":
        return "2000-01-01T00:00:00"
    if spec.min is not None and spec.max is not None and np.isfinite([spec.min, spec.max]).all():
        middle = (spec.min + spec.max) / 2
        return int(middle) if spec.dtype == "int" else middle
    return 0
