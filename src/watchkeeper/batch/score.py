"""Scoring one chunk: validate, predict, shape the output rows and the rejects.

Every engine (the local processes, Ray's actors) calls :func:`score_chunk` with a model it
loaded once, so the output is the same whichever engine ran it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from watchkeeper.batch.validate import Checked, validate_chunk
from watchkeeper.errors import InvalidInput
from watchkeeper.models import LoadedModel
from watchkeeper.models.signature import Signature
from watchkeeper.models.validation import ValidationPolicy


@dataclass(frozen=True, kw_only=True)
class OutputSpec:
    """Which input columns ride along, and what the output carries besides the prediction."""

    id_column: str | None = None
    passthrough: tuple[str, ...] = ()
    probabilities: bool = True
    validation: ValidationPolicy = field(default_factory=lambda: ValidationPolicy(max_rows=1 << 62))

    @property
    def carried(self) -> list[str]:
        names = [self.id_column] if self.id_column else []
        return names + [c for c in self.passthrough if c not in names]


@dataclass(frozen=True)
class Scored:
    output: pa.Table
    rejects: pa.Table
    rows_in: int
    out_of_range: int
    inputs: Any  # the kept rows as the model got them (an array or a DataFrame), for the logbook
    feature_names: list[str]
    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None


def check_carried(names: list[str], spec: OutputSpec) -> None:
    missing = [c for c in spec.carried if c not in names]
    if missing:
        raise InvalidInput(f"--id-column/--passthrough name column(s) the input lacks: "
                           f"{', '.join(missing)}")  # fmt: skip


def score_chunk(
    model: LoadedModel, chunk: pa.Table | pa.RecordBatch, *, spec: OutputSpec, name: str,
    version: int, scored_at: datetime, first_row: int = 0, signature: Signature | None = None,
) -> Scored:  # fmt: skip
    """Score the valid rows of ``chunk``; rows failing validation go to ``rejects`` with their
    reason and their row number in the input (``first_row`` + position)."""
    table = chunk if isinstance(chunk, pa.Table) else pa.Table.from_batches([chunk])
    signature = (
        signature
        or model.signature
        or features_signature([c for c in table.column_names if c not in spec.carried])
    )
    checked = validate_chunk(table, signature, spec.validation)
    keep = checked.keep
    kept = table.filter(pa.array(keep)) if checked.rejected else table
    n = kept.num_rows
    names = model.input_names
    if checked.matrix is not None and (names is None or names == signature.names):
        inputs: Any = checked.features(row_major=row_major(model))
    else:  # the model picks its columns from a DataFrame by name
        inputs = checked.frame
    probabilities = None
    if spec.probabilities and model.has_proba and n:
        predictions, probabilities = model.predict_and_proba(inputs)
        probabilities = np.asarray(probabilities, dtype=np.float64)
    else:
        predictions = np.asarray(model.predict(inputs)) if n else np.empty(0)
    columns: dict[str, Any] = {c: kept.column(c) for c in spec.carried}
    columns["prediction"] = _plain(predictions)
    if probabilities is not None:
        for label, values in zip(proba_names(model, probabilities.shape[1]), probabilities.T,
                                 strict=True):  # fmt: skip
            columns[label] = values
    columns["model"] = pa.repeat(pa.scalar(name, pa.string()), n)
    columns["model_version"] = pa.array(np.full(n, version, dtype=np.int64))
    columns["scored_at"] = pa.array(np.full(n, np.datetime64(scored_at.replace(tzinfo=None), "us")),
                                    pa.timestamp("us", tz="UTC"))  # fmt: skip
    output = pa.table(columns)
    rejects = _rejects(table, keep, checked, first_row)
    return Scored(output, rejects, table.num_rows, checked.out_of_range, inputs,
                  signature.names, predictions, probabilities)  # fmt: skip


def row_major(model: LoadedModel) -> bool:
    """Whether to hand ``model`` its rows row-major: a scikit-learn tree or forest walks each
    row down its trees (faster on contiguous rows), and comparing values with thresholds
    gives the same answer whatever the layout. Other models get the DataFrame's column-major
    layout, which keeps a dot product's rounding what it was."""
    estimator = str(model.manifest.options.get("estimator", ""))
    return model.flavor == "sklearn" and estimator.startswith(_TREES)


_TREES = ("sklearn.ensemble._forest.", "sklearn.tree.")


def proba_names(model: LoadedModel, count: int) -> list[str]:
    classes = model.classes
    labels = [str(c) for c in classes.tolist()] if classes is not None else None
    return [f"proba_{labels[i] if labels else i}" for i in range(count)]


def _plain(values: np.ndarray[Any, Any]) -> pa.Array:
    if values.dtype == object:
        try:  # labels that are all text (or None) convert in one call
            array = pa.array(values)
            if pa.types.is_string(array.type) or pa.types.is_null(array.type):
                return array.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.array(values)


def _rejects(table: pa.Table, keep: np.ndarray[Any, Any], checked: Checked,
             first_row: int) -> pa.Table:  # fmt: skip
    bad = ~keep
    if not bad.any():
        return pa.table({"row": pa.array([], pa.int64()), "reason": pa.array([], pa.string())})
    rows = np.flatnonzero(bad) + first_row
    out = {
        "row": pa.array(rows, pa.int64()),
        "reason": pa.array(checked.reasons[bad].tolist(), pa.string()),
    }
    for name in table.column_names:  # the rejected rows as they came, as text
        column = table.column(name).filter(pa.array(bad))
        out[name] = column.cast(pa.string()) if not pa.types.is_string(column.type) else column
    return pa.table(out)


def features_signature(names: list[str]) -> Signature:
    """For a model without a signature: these columns, numeric, nullable, in this order."""
    return Signature.from_dict(
        {"columns": [{"name": n, "dtype": "float", "nullable": True} for n in names]}
    )
