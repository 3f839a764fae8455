"""The input signature of a model: its columns, their types and the values seen in training.

Serving validates every request against the signature of the version that answers it, so the
inference here is deliberately precise: integer columns stay integers (also pandas' nullable
``Int64``), a float column holding NaN is nullable, string columns with at most
``MAX_CATEGORIES`` distinct values record them, and ranges are recorded for numeric columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import numpy as np
import pandas as pd
from pandas.api.types import (
    infer_dtype,
    is_bool_dtype,
    is_datetime64_any_dtype,
    is_float_dtype,
    is_integer_dtype,
)

from watchkeeper.errors import InvalidInput

ColumnType = Literal["float", "int", "bool", "string", "datetime"]
COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)
MAX_CATEGORIES = 50

# pandas' infer_dtype names for object columns -> our column types
_INFERRED: dict[str, ColumnType] = {
    "string": "string",
    "integer": "int",
    "floating": "float",
    "mixed-integer-float": "float",
    "boolean": "bool",
    "datetime": "datetime",
    "datetime64": "datetime",
}


@dataclass(frozen=True, kw_only=True)
class ColumnSpec:
    """One input column.

    ``min``/``max`` only for numeric columns (``None``: unbounded or unknown); ``categories``
    only for string columns with few distinct values (``None``: any string).
    """

    name: str
    dtype: ColumnType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.dtype not in COLUMN_TYPES:
            raise InvalidInput(
                f"column {self.name!r}: unknown dtype {self.dtype!r} "
                f"(expected one of {', '.join(COLUMN_TYPES)})"
            )
        if self.dtype not in ("float", "int") and (self.min is not None or self.max is not None):
            raise InvalidInput(f"column {self.name!r}: min/max only apply to numeric columns")
        if self.categories is not None and self.dtype != "string":
            raise InvalidInput(f"column {self.name!r}: categories only apply to string columns")

    @property
    def is_numeric(self) -> bool:
        return self.dtype in ("float", "int")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "nullable": self.nullable,
            "min": self.min,
            "max": self.max,
            "categories": list(self.categories) if self.categories is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        categories = data.get("categories")
        low, high = data.get("min"), data.get("max")
        return cls(
            name=str(data["name"]),
            dtype=cast(ColumnType, str(data["dtype"])),
            nullable=bool(data.get("nullable", False)),
            min=float(low) if low is not None else None,
            max=float(high) if high is not None else None,
            categories=tuple(str(c) for c in categories) if categories is not None else None,
        )


@dataclass(frozen=True)
class Signature:
    """The ordered input columns of a model.

    >>> sig = infer_signature({"age": [31, 45], "plan": ["basic", "pro"]})
    >>> sig.names
    ['age', 'plan']
    >>> sig.columns[0]
    ColumnSpec(name='age', dtype='int', nullable=False, min=31.0, max=45.0, categories=None)
    """

    columns: tuple[ColumnSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        seen: set[str] = set()
        for column in self.columns:
            if column.name in seen:
                raise InvalidInput(f"signature lists column {column.name!r} twice")
            seen.add(column.name)

    @property
    def names(self) -> list[str]:
        """Column names in model order (a list, so ``frame[signature.names]`` works)."""
        return [c.name for c in self.columns]

    def __len__(self) -> int:
        return len(self.columns)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        return cls(tuple(ColumnSpec.from_dict(c) for c in data["columns"]))


def infer_signature(example: pd.DataFrame | Mapping[str, Any] | np.ndarray[Any, Any]) -> Signature:
    """Infer a signature from a DataFrame, a dict of columns or a 2-D array (``f0``, ``f1``, …)."""
    if isinstance(example, pd.DataFrame):
        return Signature(tuple(_spec(_label(n), example[n]) for n in _frame_columns(example)))
    if isinstance(example, np.ndarray):
        if example.ndim != 2:
            raise InvalidInput(f"an array example must be 2-D, got {example.ndim} dimension(s)")
        return Signature(
            tuple(_spec(f"f{i}", pd.Series(example[:, i])) for i in range(example.shape[1]))
        )
    if isinstance(example, Mapping):
        return Signature(tuple(_spec(_label(n), _as_series(n, v)) for n, v in example.items()))
    raise InvalidInput(
        "cannot infer a signature from a "
        f"{type(example).__name__}; pass a DataFrame, a dict of columns or a 2-D array"
    )


def _frame_columns(frame: pd.DataFrame) -> list[Any]:
    if not frame.columns.is_unique:
        raise InvalidInput("the example DataFrame has duplicate column names")
    return list(frame.columns)


def _label(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidInput(f"column names must be strings, got {name!r}")
    return name


def _as_series(name: object, values: Any) -> pd.Series[Any]:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise InvalidInput(f"column {name!r} must be 1-D, got shape {values.shape}")
        return pd.Series(values)
    if isinstance(values, Sequence) and not isinstance(values, (str, bytes)):
        return pd.Series(pd.array(list(values)))
    raise InvalidInput(f"column {name!r} must be a list or 1-D array, got {type(values).__name__}")


def _spec(name: str, series: pd.Series[Any]) -> ColumnSpec:
    dtype = series.dtype
    nullable = bool(series.isna().any())
    if isinstance(dtype, pd.CategoricalDtype):
        return _categorical_spec(name, series, nullable)
    if is_bool_dtype(dtype):
        return ColumnSpec(name=name, dtype="bool", nullable=nullable)
    if is_integer_dtype(dtype):
        return _numeric_spec(name, "int", series, nullable)
    if is_float_dtype(dtype):
        return _numeric_spec(name, "float", series, nullable)
    if is_datetime64_any_dtype(dtype):
        return ColumnSpec(name=name, dtype="datetime", nullable=nullable)
    if isinstance(dtype, pd.StringDtype):
        return _string_spec(name, series, nullable)
    if dtype == np.dtype(object):
        return _object_spec(name, series, nullable)
    raise InvalidInput(f"column {name!r}: unsupported dtype {dtype}")


def _object_spec(name: str, series: pd.Series[Any], nullable: bool) -> ColumnSpec:
    kind = _INFERRED.get(infer_dtype(series, skipna=True))
    if kind is None:
        found = sorted({type(v).__name__ for v in series.dropna()}) or ["only missing values"]
        raise InvalidInput(
            f"column {name!r}: cannot infer a type from {', '.join(found)}; "
            "pass an explicit signature"
        )
    if kind in ("int", "float"):
        return _numeric_spec(name, kind, series, nullable)
    if kind == "string":
        return _string_spec(name, series, nullable)
    return ColumnSpec(name=name, dtype=kind, nullable=nullable)


def _numeric_spec(
    name: str, kind: ColumnType, series: pd.Series[Any], nullable: bool
) -> ColumnSpec:
    values = series.dropna().to_numpy(dtype=np.float64)
    values = values[~np.isnan(values)]
    low = float(values.min()) if values.size else math.nan
    high = float(values.max()) if values.size else math.nan
    return ColumnSpec(
        name=name,
        dtype=kind,
        nullable=nullable,
        min=low if math.isfinite(low) else None,
        max=high if math.isfinite(high) else None,
    )


def _string_spec(name: str, series: pd.Series[Any], nullable: bool) -> ColumnSpec:
    return ColumnSpec(
        name=name,
        dtype="string",
        nullable=nullable,
        categories=_categories(str(v) for v in series.dropna().unique()),
    )


def _categories(values: Any) -> tuple[str, ...] | None:
    distinct = sorted(set(values))
    return tuple(distinct) if len(distinct) <= MAX_CATEGORIES else None


def _categorical_spec(name: str, series: pd.Series[Any], nullable: bool) -> ColumnSpec:
    declared = series.cat.categories
    if infer_dtype(declared, skipna=True) == "string":
        categories = _categories(str(c) for c in declared)
        return ColumnSpec(name=name, dtype="string", nullable=nullable, categories=categories)
    inner = _spec(name, pd.Series(declared.to_numpy()))  # range over the declared domain
    return ColumnSpec(name=name, dtype=inner.dtype, nullable=nullable, min=inner.min, max=inner.max)
