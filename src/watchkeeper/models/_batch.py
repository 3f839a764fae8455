"""Turning a request batch (DataFrame, dict of columns, 2-D array) into what a model takes.

The array path is the hot one: an ndarray already in signature order goes through with a shape
check only, no copy and no DataFrame.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from watchkeeper.errors import Detail, InvalidInput, SchemaError
from watchkeeper.models.flavors.base import Array
from watchkeeper.models.signature import ColumnSpec, Signature


def to_array(batch: Any, names: list[str] | None) -> Array:
    """A 2-D array with the columns in ``names`` order (numeric columns as float64)."""
    if isinstance(batch, np.ndarray):
        return check_shape(batch, names)
    if isinstance(batch, pd.DataFrame):
        frame = select(batch, names)
        if all(is_numeric_dtype(t) or is_bool_dtype(t) for t in frame.dtypes):
            return frame.to_numpy(dtype=np.float64, na_value=np.nan)
        return frame.to_numpy()
    if isinstance(batch, Mapping):
        keys = names if names is not None else [str(k) for k in batch]
        check_present(keys, batch)
        stacked = np.column_stack([np.asarray(batch[k]) for k in keys])
        return stacked.astype(np.float64) if stacked.dtype.kind in "biu" else stacked
    raise unsupported(batch)


def to_frame(batch: Any, names: list[str] | None, signature: Signature | None) -> pd.DataFrame:
    """A DataFrame with exactly the columns in ``names`` (all columns when None)."""
    if isinstance(batch, pd.DataFrame):
        return select(batch, names)
    if isinstance(batch, Mapping):
        keys = names if names is not None else [str(k) for k in batch]
        check_present(keys, batch)
        try:
            return pd.DataFrame({k: batch[k] for k in keys})
        except ValueError as exc:
            raise InvalidInput(f"the columns do not form a table: {exc}") from exc
    if isinstance(batch, np.ndarray):
        array = check_shape(batch, names)
        keys = names if names is not None else [f"f{i}" for i in range(array.shape[1])]
        if array.dtype == np.dtype(object) and signature is not None:
            return pd.DataFrame(
                {spec.name: typed(array[:, i], spec) for i, spec in enumerate(signature.columns)}
            )
        return pd.DataFrame(array, columns=keys, copy=False)
    raise unsupported(batch)


def select(frame: pd.DataFrame, names: list[str] | None) -> pd.DataFrame:
    if names is None or list(frame.columns) == names:
        return frame
    check_present(names, set(frame.columns))
    return frame[names]


def check_present(names: list[str], present: Collection[Any]) -> None:
    missing = [n for n in names if n not in present]
    if missing:
        raise SchemaError(
            f"missing input column(s): {', '.join(missing)}",
            details=[Detail(field=n, problem="missing column") for n in missing],
        )


def check_shape(array: Array, names: list[str] | None) -> Array:
    if array.ndim != 2:
        raise SchemaError(f"expected a 2-D array (rows x columns), got shape {array.shape}")
    if names is not None and array.shape[1] != len(names):
        raise SchemaError(
            f"expected {len(names)} column(s) ({', '.join(names)}), got {array.shape[1]}"
        )
    return array


def typed(values: Array, spec: ColumnSpec) -> Any:
    """One column of an object array, converted to the signature's type."""
    try:
        if spec.dtype == "float":
            return pd.to_numeric(values).astype(np.float64)
        if spec.dtype == "int":
            return pd.to_numeric(values)
        if spec.dtype == "bool":
            return (
                pd.array(values.tolist(), dtype="boolean") if spec.nullable else values.astype(bool)
            )
        if spec.dtype == "datetime":
            return pd.to_datetime(values)
    except (TypeError, ValueError) as exc:
        raise SchemaError(
            f"column {spec.name!r}: values are not {spec.dtype}: {exc}",
            details=[Detail(field=spec.name, problem=f"expected {spec.dtype}")],
        ) from exc
    return values


def unsupported(batch: Any) -> InvalidInput:
    return InvalidInput(
        f"cannot predict on a {type(batch).__name__}; pass a DataFrame, a dict of columns "
        "or a 2-D numpy array"
    )
