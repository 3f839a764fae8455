"""Row-level validation of one Arrow chunk against a signature, vectorised.

Online requests are refused whole on the first bad row; a batch job instead keeps the good rows
and writes the bad ones to a rejects file with their reason. The rules are serving's (see
``watchkeeper.serving.validation``): nulls only in nullable columns, no infinities, whole
numbers in int columns, known categories in string columns with categories (unless counted),
values outside the training range counted by default. A column the signature needs but the
input lacks is a job error, not a row problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.errors import Detail, SchemaError
from watchkeeper.models.signature import ColumnSpec, Signature
from watchkeeper.models.validation import ValidationPolicy

BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True)
class Checked:
    """The valid rows in signature order, which input rows they are, and why others failed."""

    frame: pd.DataFrame
    keep: BoolArray
    reasons: np.ndarray[Any, Any]  # one string per input row; "" for kept rows
    out_of_range: int

    @property
    def rejected(self) -> int:
        return int((~self.keep).sum())


def check_columns(names: list[str], signature: Signature) -> None:
    """Refuse an input missing columns the model needs, naming every one."""
    missing = [c.name for c in signature.columns if c.name not in names]
    if missing:
        raise SchemaError(
            f"the input lacks column(s) {', '.join(missing)} that the model needs",
            details=[Detail(name, "missing_column") for name in missing],
        )


def validate_chunk(table: pa.Table | pa.RecordBatch, signature: Signature,
                   policy: ValidationPolicy) -> Checked:  # fmt: skip
    n = table.num_rows
    check_columns(table.schema.names, signature)
    reasons = np.full(n, "", dtype=object)
    columns: dict[str, Any] = {}
    out_of_range = 0
    for spec in signature.columns:
        values, bad, outside = _column(table.column(spec.name), spec, policy)
        columns[spec.name] = values
        out_of_range += outside
        for problem, mask in bad.items():
            fresh = mask & (reasons == "")
            reasons[fresh] = f"{spec.name}: {problem}"
    keep = reasons == ""
    frame = pd.DataFrame({name: _take(values, keep) for name, values in columns.items()})
    return Checked(frame, keep, reasons, out_of_range)


def _take(values: Any, keep: BoolArray) -> Any:
    return values[keep] if not keep.all() else values


def _column(
    column: pa.ChunkedArray | pa.Array, spec: ColumnSpec, policy: ValidationPolicy
) -> tuple[Any, dict[str, BoolArray], int]:
    if spec.is_numeric or spec.dtype == "bool":
        return _numeric(column, spec, policy)
    if spec.dtype == "datetime":
        values = pd.to_datetime(column.to_pandas(), errors="coerce", utc=True).dt.tz_localize(None)
        bad = values.isna().to_numpy() & ~_nulls(column)
        return values.to_numpy(), {"not_a_datetime": bad, **_null_problem(column, spec)}, 0
    return _text(column, spec, policy)


def _nulls(column: pa.ChunkedArray | pa.Array) -> BoolArray:
    return np.asarray(pc.is_null(column, nan_is_null=True).to_numpy(zero_copy_only=False))


def _null_problem(column: pa.ChunkedArray | pa.Array, spec: ColumnSpec) -> dict[str, BoolArray]:
    if spec.nullable or column.null_count == 0:
        return {}
    return {"null": np.asarray(pc.is_null(column).to_numpy(zero_copy_only=False))}


def _numeric(
    column: pa.ChunkedArray | pa.Array, spec: ColumnSpec, policy: ValidationPolicy
) -> tuple[Any, dict[str, BoolArray], int]:
    kind = column.type
    bad: dict[str, BoolArray] = {}
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = column.to_pandas()
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        bad["expected_number"] = np.isnan(numbers) & text.notna().to_numpy()
    elif pa.types.is_boolean(kind) and spec.dtype != "bool":
        numbers = np.zeros(len(column))
        bad["expected_number"] = np.ones(len(column), dtype=bool)
    else:
        numbers = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        numbers = np.asarray(numbers, dtype=np.float64)
    nulls = np.isnan(numbers)
    if "expected_number" in bad:
        nulls &= ~bad["expected_number"]
    if not spec.nullable and nulls.any():
        bad["null"] = nulls
    if np.isinf(numbers).any():
        bad["not_finite"] = np.isinf(numbers)
    outside = 0
    if spec.dtype == "int":
        fraction = np.isfinite(numbers) & (numbers != np.round(numbers))
        if fraction.any():
            bad["not_integer"] = fraction
    if spec.is_numeric and (spec.min is not None or spec.max is not None):
        low = -np.inf if spec.min is None else spec.min
        high = np.inf if spec.max is None else spec.max
        with np.errstate(invalid="ignore"):
            beyond = (numbers < low) | (numbers > high)
        outside = int(beyond.sum())
        if policy.out_of_range == "reject" and outside:
            bad["out_of_range"] = beyond
    for name, (low_b, high_b) in policy.bounds.items():
        if name == spec.name and spec.is_numeric:
            with np.errstate(invalid="ignore"):
                limit = (numbers < (-np.inf if low_b is None else low_b)) | (
                    numbers > (np.inf if high_b is None else high_b)
                )
            if limit.any():
                bad["beyond_bounds"] = limit
    if spec.dtype == "bool":
        return numbers.astype(bool), bad, outside
    return numbers, bad, outside


def _text(
    column: pa.ChunkedArray | pa.Array, spec: ColumnSpec, policy: ValidationPolicy
) -> tuple[Any, dict[str, BoolArray], int]:
    if pa.types.is_boolean(column.type):
        n = len(column)
        return np.full(n, None, dtype=object), {"expected_text": np.ones(n, dtype=bool)}, 0
    text = pc.cast(column, pa.string()) if not pa.types.is_string(column.type) else column
    bad = _null_problem(text, spec)
    values = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
    if spec.categories is not None and policy.unseen_category == "reject":
        known = pc.is_in(text, value_set=pa.array(list(spec.categories), pa.string()))
        unseen = ~np.asarray(pc.fill_null(known, True).to_numpy(zero_copy_only=False))
        if unseen.any():
            bad["unseen_category"] = unseen
    return values, bad, 0
