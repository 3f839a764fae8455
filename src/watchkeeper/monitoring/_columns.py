"""Reading columns for profiling: nulls, kinds and labels, whatever container they come in.

Accepts numpy arrays, lists, pandas Series (numpy-backed or extension dtypes such as nullable
``Int64``, ``string`` and ``category``) without importing pandas. See ``profile.py`` for the
null and label conventions these functions implement.
"""

from __future__ import annotations

import numbers
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InvalidInput

AnyArray: TypeAlias = npt.NDArray[Any]
FloatArray: TypeAlias = npt.NDArray[np.float64]
Kind: TypeAlias = Literal["float", "int", "bool", "label"]


def label_counts(column: AnyArray) -> tuple[dict[str, int], int]:
    """Occurrences of each label among the non-null values, and the null count."""
    if column.dtype.kind in "OUS":  # hashing beats sorting strings
        return _object_label_counts(column)
    present = non_null(column) if column.dtype.kind == "f" else column
    uniques, counts = np.unique(present, return_counts=True)
    labels = _merge_labels(zip(uniques.tolist(), counts.tolist(), strict=True))
    return labels, column.size - present.size


def _object_label_counts(column: AnyArray) -> tuple[dict[str, int], int]:
    items = column.tolist()
    try:
        raw = _count_objects(items)
    except TypeError as exc:
        raise InvalidInput("categorical values must be hashable scalars") from exc
    nulls = sum(n for value, n in raw if _is_null(value))
    return _merge_labels((value, n) for value, n in raw if not _is_null(value)), nulls


def _count_objects(items: list[Any]) -> list[tuple[object, int]]:
    """Occurrences of each distinct object. 1, 1.0 and True are equal dict keys but different
    labels, so values are keyed by their type too, unless at most one type besides str is
    present (a str never equals a non-str), which is the common, faster case."""
    if len(set(map(type, items)) - {str}) <= 1:
        return list(Counter(items).items())
    typed = Counter(zip(map(type, items), items, strict=True))
    return [(value, n) for (_, value), n in typed.items()]


def _merge_labels(pairs: Iterable[tuple[object, int]]) -> dict[str, int]:
    labels: dict[str, int] = {}
    for value, n in pairs:
        name = _label(value)
        labels[name] = labels.get(name, 0) + n
    return labels


def _label(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float | np.floating):
        number = float(value)
        if number.is_integer() and abs(number) < 2**53:
            return str(int(number))
    return str(value)


def read_column(values: npt.ArrayLike) -> tuple[AnyArray, Kind]:
    """A 1-D numpy array and what it holds. Pandas objects are read duck-typed (no import):
    nullable numbers become float64 with NaN; strings, categories and booleans stay values."""
    dtype = getattr(values, "dtype", None)
    if dtype is not None and not isinstance(dtype, np.dtype):
        return _read_extension(values, dtype)
    column = np.asarray(values)
    if column.ndim != 1:
        raise InvalidInput(f"expected a 1-D column, got shape {column.shape}")
    kind = column.dtype.kind
    if kind == "f":
        return column.astype(np.float64, copy=False), "float"
    if kind in "iu":
        return column, "int"
    if kind == "b":
        return column, "bool"
    if kind in "US":
        return column, "label"
    if kind == "O":
        return _read_objects(column)
    raise _unsupported(str(column.dtype))


def _read_extension(values: Any, dtype: Any) -> tuple[AnyArray, Kind]:
    kind = getattr(dtype, "kind", "O")
    if kind in "iuf":
        column = np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan))
        return column, "float" if kind == "f" else "int"
    if kind in "Mmc":
        raise _unsupported(str(dtype))
    column = np.asarray(values, dtype=object)
    if column.ndim != 1:
        raise InvalidInput(f"expected a 1-D column, got shape {column.shape}")
    return column, "bool" if kind == "b" else "label"


def _read_objects(column: AnyArray) -> tuple[AnyArray, Kind]:
    """Object arrays holding only real numbers (and nulls) are numbers; anything else labels."""
    integral, seen = True, False
    for value in column:  # stops at the first label, so string columns cost one element
        if _is_null(value):
            continue
        if not isinstance(value, numbers.Real) or isinstance(value, bool | np.bool_):
            return column, "label"
        seen = True
        integral = integral and isinstance(value, numbers.Integral)
    if not seen:
        return column, "label"
    nulls = np.fromiter(map(_is_null, column), dtype=bool, count=column.size)
    numbers_only = np.full(column.size, np.nan)
    numbers_only[~nulls] = column[~nulls].astype(np.float64)
    return numbers_only, "int" if integral else "float"


def float_values(values: npt.ArrayLike) -> FloatArray:
    column, kind = read_column(values)
    if kind == "label":
        if column.dtype.kind == "O" and all(map(_is_null, column)):
            return np.full(column.size, np.nan)  # only nulls: numbers of any kind
        raise InvalidInput(f"expected numbers, got labels (dtype {column.dtype})")
    return column.astype(np.float64, copy=False)


def non_null(column: FloatArray) -> FloatArray:
    nulls = np.isnan(column)
    return column[~nulls] if nulls.any() else column


def _is_null(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT
    except TypeError:  # pd.NA refuses to be a bool
        return True


def _unsupported(dtype: str) -> InvalidInput:
    return InvalidInput(
        f"cannot profile values of dtype {dtype}: convert them to numbers or strings, "
        "or list the column in categorical="
    )


def check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be a positive integer, got {value!r}")
