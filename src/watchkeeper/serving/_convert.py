"""Cell-level pieces of request validation: problems, vectorised checks, per-column conversion.

The per-column converters are the careful (slow) path: they walk the values one by one only when
a quick type scan of the column found something other than the plain JSON types it expects, so
that every wrong value is reported with its row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from watchkeeper.errors import Detail, SchemaError, WatchkeeperError
from watchkeeper.models.signature import ColumnSpec

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

NULL = type(None)
NUMBER_TYPES: frozenset[type] = frozenset({int, float, NULL})
BOOL_TYPES: frozenset[type] = frozenset({bool, NULL})
TEXT_TYPES: frozenset[type] = frozenset({str, NULL})
_INT64_LIMIT = 2.0**63

_JSON_NAMES = {
    NULL: "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def describe(value: Any) -> str:
    """The JSON type of a value, with the value itself when it is short: ``string "abc"``."""
    kind = _JSON_NAMES.get(type(value), type(value).__name__)
    if type(value) in (str, int, float, bool):
        text = repr(value) if type(value) is not bool else str(value).lower()
        return f"{kind} {text[:29] + '...' if len(text) > 32 else text}"
    return kind


class Problems:
    """Field-level problems of one request: every one counted, the first ``limit`` kept."""

    __slots__ = ("details", "first_note", "limit", "total")

    def __init__(self, limit: int) -> None:
        self.details: list[Detail] = []
        self.total = 0
        self.limit = limit
        self.first_note = ""

    def add(self, field: str, problem: str, row: int | None = None, note: str = "") -> None:
        if not self.total:
            self.first_note = note
        self.total += 1
        if len(self.details) < self.limit:
            self.details.append(Detail(field, problem, row))

    def add_cells(
        self, mask: BoolArray, names: list[str], problem: str, note: Callable[[int, int], str]
    ) -> None:
        """One problem per true cell of a 2-D ``mask`` whose columns are ``names``."""
        rows, cols = np.nonzero(mask)
        if not rows.size:
            return
        if not self.total:
            self.first_note = note(int(rows[0]), int(cols[0]))
        self.total += int(rows.size)
        room = max(self.limit - len(self.details), 0)
        for row, col in zip(rows[:room].tolist(), cols[:room].tolist(), strict=True):
            self.details.append(Detail(names[col], problem, row))

    def raise_if_any(self, error: type[WatchkeeperError] = SchemaError) -> None:
        if self.total:
            raise error(self.message(), details=self.details)

    def message(self) -> str:
        first = self.details[0]
        where = f"row {first.row}, " if first.row is not None else ""
        note = f" ({self.first_note})" if self.first_note else ""
        more = f"; and {self.total - 1} more" if self.total > 1 else ""
        count = f"{self.total} problem{'s' if self.total > 1 else ''}"
        return f"{count} with the input: {where}{first.field!r}: {first.problem}{note}{more}"


class ArrayChecks:
    """Vectorised checks over a 2-D float64 array of numeric and bool columns."""

    def __init__(
        self,
        specs: list[ColumnSpec],
        *,
        bounds: Mapping[str, tuple[float | None, float | None]],
        reject_range: bool,
    ) -> None:
        self.names = [s.name for s in specs]
        self.required = np.array([not s.nullable for s in specs], dtype=np.bool_)
        self.int_cols = np.array([i for i, s in enumerate(specs) if s.dtype == "int"], np.intp)
        self.int_names = [self.names[i] for i in self.int_cols.tolist()]
        numeric = [s.is_numeric for s in specs]
        hard = [bounds.get(s.name, (None, None)) if ok else (None, None)
                for s, ok in zip(specs, numeric, strict=True)]  # fmt: skip
        self.low = _vector([low for low, _ in hard], -np.inf)
        self.high = _vector([high for _, high in hard], np.inf)
        self.bounded = bool(np.isfinite(self.low).any() or np.isfinite(self.high).any())
        self.train_min = _vector([s.min for s in specs], -np.inf)
        self.train_max = _vector([s.max for s in specs], np.inf)
        self.ranged = bool(np.isfinite(self.train_min).any() or np.isfinite(self.train_max).any())
        self.reject_range = reject_range

    def run(
        self, arr: FloatArray, problems: Problems, findings: dict[tuple[str, str], int]
    ) -> None:
        if not np.isfinite(arr).all():
            self._missing(arr, problems, findings)
        if self.int_cols.size:
            part = arr[:, self.int_cols]
            whole = (part == np.floor(part)) & (np.abs(part) < _INT64_LIMIT)
            bad = np.isfinite(part) & ~whole
            problems.add_cells(bad, self.int_names, "not_integer", _got(part))
        if self.bounded:
            bad = (arr < self.low) | (arr > self.high)
            note = _outside(arr, self.low, self.high, "allowed")
            problems.add_cells(bad, self.names, "out_of_bounds", note)
        if self.ranged:
            out = (arr < self.train_min) | (arr > self.train_max)
            if self.reject_range:
                note = _outside(arr, self.train_min, self.train_max, "training")
                problems.add_cells(out, self.names, "out_of_range", note)
            elif out.any():
                self._count(out, "out_of_range", findings)

    def _missing(self, arr: FloatArray, problems: Problems, findings: dict[Any, int]) -> None:
        nan = np.isnan(arr)
        problems.add_cells(np.isinf(arr), self.names, "not_finite", _got(arr))
        refused = nan & self.required
        problems.add_cells(refused, self.names, "null", lambda r, c: "the column is not nullable")
        self._count(nan & ~self.required, "null", findings)

    def _count(self, mask: BoolArray, problem: str, findings: dict[tuple[str, str], int]) -> None:
        counts = mask.sum(axis=0)
        for col in np.flatnonzero(counts).tolist():
            findings[(self.names[col], problem)] = int(counts[col])


def _vector(values: list[float | None], default: float) -> FloatArray:
    return np.array([default if v is None else v for v in values], dtype=np.float64)


def _got(arr: FloatArray) -> Any:
    return lambda r, c: f"got {arr[r, c]:g}"


def _outside(arr: FloatArray, low: FloatArray, high: FloatArray, what: str) -> Any:
    return lambda r, c: f"{arr[r, c]:g} is outside the {what} range [{low[c]:g}, {high[c]:g}]"


def convert(spec: ColumnSpec, values: list[Any], problems: Problems) -> Any:
    """One column's values in the type its spec declares (numbers and booleans as float64)."""
    if spec.dtype == "string":
        return to_text(spec, values, problems)
    if spec.dtype == "datetime":
        return to_datetime(spec, values, problems)
    return to_float(spec, values, problems)


def to_float(spec: ColumnSpec, values: list[Any], problems: Problems) -> FloatArray:
    """Numbers (or booleans, for a bool column) as float64; ``null`` becomes NaN."""
    allowed = BOOL_TYPES if spec.dtype == "bool" else NUMBER_TYPES
    if set(map(type, values)) <= allowed:
        try:
            return np.array(values, dtype=np.float64)
        except (OverflowError, ValueError, TypeError):
            pass  # an integer too large for a float: found below
    expected = "expected_bool" if spec.dtype == "bool" else "expected_number"
    out = np.full(len(values), np.nan)
    for row, value in enumerate(values):
        if value is None:
            continue
        if type(value) not in allowed:
            problems.add(spec.name, expected, row, f"got {describe(value)}")
            continue
        try:
            out[row] = float(value)
        except OverflowError:
            problems.add(spec.name, "not_finite", row, "the number is too large")
    return out


def to_text(spec: ColumnSpec, values: list[Any], problems: Problems) -> list[str | None]:
    """Strings as sent; numbers turned into their text (``7`` → ``"7"``); booleans refused."""
    if set(map(type, values)) <= TEXT_TYPES:
        return values
    out: list[str | None] = []
    for row, value in enumerate(values):
        kind = type(value)
        if kind is str or value is None:
            out.append(value)
        elif kind is int or kind is float:
            out.append(str(value))
        else:
            problems.add(spec.name, "expected_string", row, f"got {describe(value)}")
            out.append(None)
    return out


def to_datetime(spec: ColumnSpec, values: list[Any], problems: Problems) -> Any:
    """ISO 8601 strings as ``datetime64[us]``; an offset is converted to naive UTC."""
    out: list[datetime | None] = []
    for row, value in enumerate(values):
        stamp = _parse_datetime(value) if type(value) is str else None
        if stamp is None and value is not None:
            problems.add(spec.name, "expected_datetime", row, f"got {describe(value)}")
        out.append(stamp)
    return np.array(out, dtype="datetime64[us]")


def _parse_datetime(text: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(text)
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        return None
    return stamp


def to_frame(specs: tuple[ColumnSpec, ...], converted: dict[str, Any], n_rows: int) -> pd.DataFrame:
    """The DataFrame a model gets, with one fixed dtype per column spec (not per batch)."""
    return pd.DataFrame(
        {spec.name: _series(spec, converted[spec.name]) for spec in specs},
        index=pd.RangeIndex(n_rows),
    )


def _series(spec: ColumnSpec, values: Any) -> Any:
    if spec.dtype == "int":
        return pd.array(values, dtype="Int64") if spec.nullable else values.astype(np.int64)
    if spec.dtype == "bool":
        return pd.array(values, dtype="boolean") if spec.nullable else values.astype(np.bool_)
    if spec.dtype == "string":
        return pd.array(values, dtype=_string_dtype())
    return values  # float64 and datetime64 arrays as converted


@functools.cache
def _string_dtype() -> Any:
    """pandas' default string dtype (NaN for missing) where it exists, else ``object``."""
    try:
        return pd.StringDtype(na_value=np.nan)
    except TypeError:  # pandas < 2.3
        return np.dtype(object)
