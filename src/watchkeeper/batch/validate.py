"""Row-level validation of one Arrow chunk against a signature, vectorised.

Online requests are refused whole on the first bad row; a batch job instead keeps the good rows
and writes the bad ones to a rejects file with their reason. The rules are serving's (see
``watchkeeper.serving.validation``): nulls only in nullable columns, no infinities, whole
numbers in int columns, known categories in string columns with categories (unless counted),
values outside the training range counted by default. A column the signature needs but the
input lacks is a job error, not a row problem.

When every column of the signature is a number and arrives as an Arrow integer or float column
(the common case), the chunk becomes one float64 matrix, checked whole, and the model is given
its kept rows as an array: no DataFrame is built (see :meth:`Checked.features`). Otherwise each
column is checked on its own and the kept rows become a DataFrame, as the model would get them
online. Both give the same values, rejects and reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.errors import Detail, SchemaError
from watchkeeper.models.signature import ColumnSpec, Signature
from watchkeeper.models.validation import ValidationPolicy

BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
Problem = tuple[str, BoolArray]  # "column: problem", the rows that have it


@dataclass(frozen=True)
class Checked:
    """The valid rows in signature order, which input rows they are, and why others failed.

    ``matrix`` (columns × rows, float64) holds every input row when the chunk took the numeric
    path, else ``values`` holds one array per column; ``problems`` are in the order they take
    precedence (column order, then the order of the checks): a row's reason is its first."""

    names: list[str]
    keep: BoolArray
    problems: list[Problem]
    out_of_range: int
    matrix: np.ndarray[Any, np.dtype[np.float64]] | None = None
    values: dict[str, Any] | None = None

    @property
    def rejected(self) -> int:
        return len(self.keep) - int(np.count_nonzero(self.keep))

    @cached_property
    def reasons(self) -> np.ndarray[Any, Any]:
        """One string per input row; "" for kept rows."""
        reasons = np.full(len(self.keep), "", dtype=object)
        for reason, mask in reversed(self.problems):  # the first problem of a row wins
            reasons[mask] = reason
        return reasons

    def features(self, *, row_major: bool = False) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The kept rows as a rows × columns float64 array (numeric path only). Column-major
        by default: the layout of the DataFrame the other path builds, so a model computes on
        exactly what it would have computed on (a dot product's rounding depends on it)."""
        assert self.matrix is not None
        everything = bool(self.keep.all())
        if row_major:
            rows = self.matrix.T
            return np.ascontiguousarray(rows) if everything else rows[self.keep]
        # compress keeps each column contiguous (boolean indexing on axis 1 would not)
        return self.matrix.T if everything else self.matrix.compress(self.keep, axis=1).T

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The kept rows as a DataFrame in signature order."""
        if self.matrix is not None:
            columns = dict(zip(self.names, self.matrix, strict=True))
        else:
            assert self.values is not None
            columns = self.values
        everything = self.keep.all()
        return pd.DataFrame({n: v if everything else v[self.keep] for n, v in columns.items()})


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
    check_columns(table.schema.names, signature)
    if signature.columns and all(_plain_number(table, spec) for spec in signature.columns):
        return _matrix_checked(table, signature, policy)
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    out_of_range = 0
    for spec in signature.columns:
        column_values, bad, outside = _column(table.column(spec.name), spec, policy)
        values[spec.name] = column_values
        out_of_range += outside
        problems += [(f"{spec.name}: {problem}", mask) for problem, mask in bad.items()]
    keep = _keep(table.num_rows, problems)
    return Checked(signature.names, keep, problems, out_of_range, values=values)


def _keep(n: int, problems: list[Problem]) -> BoolArray:
    keep = np.ones(n, dtype=bool)
    for _, mask in problems:
        keep &= ~mask
    return keep


# ----------------------------------------------------------------------------- numeric path


def _plain_number(table: pa.Table | pa.RecordBatch, spec: ColumnSpec) -> bool:
    kind = table.schema.field(spec.name).type
    return spec.is_numeric and (pa.types.is_integer(kind) or pa.types.is_floating(kind))


def _matrix_checked(table: pa.Table | pa.RecordBatch, signature: Signature,
                    policy: ValidationPolicy) -> Checked:  # fmt: skip
    specs = signature.columns
    matrix = np.empty((len(specs), table.num_rows))
    for row, spec in zip(matrix, specs, strict=True):
        _fill(row, table.column(spec.name))
    beyond = _beyond_range(matrix, specs)
    out_of_range = int(np.count_nonzero(beyond)) if beyond is not None else 0
    clean = bool(np.isfinite(matrix).all())
    problems: list[Problem] = []
    for j, spec in enumerate(specs):
        numbers = matrix[j]
        if not clean:
            nulls = np.isnan(numbers)
            if not spec.nullable and nulls.any():
                problems.append((f"{spec.name}: null", nulls))
            infinite = np.isinf(numbers)
            if infinite.any():
                problems.append((f"{spec.name}: not_finite", infinite))
        problems += _number_problems(numbers, spec, policy, beyond, j)
    keep = _keep(table.num_rows, problems)
    return Checked(signature.names, keep, problems, out_of_range, matrix=matrix)


def _fill(row: np.ndarray[Any, Any], column: pa.ChunkedArray | pa.Array) -> None:
    """One column into its row of the matrix, chunk by chunk (nulls become NaN)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    start = 0
    for chunk in chunks:
        if pa.types.is_float64(chunk.type) and chunk.null_count == 0:
            numbers = chunk.to_numpy(zero_copy_only=True)
        else:
            numbers = pc.cast(chunk, pa.float64()).to_numpy(zero_copy_only=False)
        row[start : start + len(chunk)] = numbers
        start += len(chunk)


def _beyond_range(matrix: np.ndarray[Any, Any], specs: Sequence[ColumnSpec]) -> BoolArray | None:
    """Which values fall outside their column's training range (NaN never does)."""
    if all(s.min is None and s.max is None for s in specs):
        return None
    low = np.array([-np.inf if s.min is None else s.min for s in specs])[:, None]
    high = np.array([np.inf if s.max is None else s.max for s in specs])[:, None]
    with np.errstate(invalid="ignore"):
        return np.asarray((matrix < low) | (matrix > high))


def _number_problems(numbers: np.ndarray[Any, Any], spec: ColumnSpec, policy: ValidationPolicy,
                     beyond: BoolArray | None, j: int) -> list[Problem]:  # fmt: skip
    problems: list[Problem] = []
    if spec.dtype == "int":
        fraction = np.isfinite(numbers) & (numbers != np.round(numbers))
        if fraction.any():
            problems.append((f"{spec.name}: not_integer", fraction))
    if policy.out_of_range == "reject" and beyond is not None and beyond[j].any():
        problems.append((f"{spec.name}: out_of_range", beyond[j]))
    limit = _beyond_bounds(numbers, spec, policy)
    if limit is not None:
        problems.append((f"{spec.name}: beyond_bounds", limit))
    return problems


def _beyond_bounds(numbers: np.ndarray[Any, Any], spec: ColumnSpec,
                   policy: ValidationPolicy) -> BoolArray | None:  # fmt: skip
    if spec.name not in policy.bounds or not spec.is_numeric:
        return None
    low, high = policy.bounds[spec.name]
    with np.errstate(invalid="ignore"):
        limit = (numbers < (-np.inf if low is None else low)) | (
            numbers > (np.inf if high is None else high)
        )
    return np.asarray(limit) if limit.any() else None


# ----------------------------------------------------------------------------- column by column


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
    limit = _beyond_bounds(numbers, spec, policy)
    if limit is not None:
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
