"""Reading columns for profiling: nulls, kinds and labels, whatever container they come in.

Accepts numpy arrays, lists, pandas Series (numpy-backed or extension dtypes such as nullable
``Int64``, ``string`` and ``category``) without importing pandas, and pyarrow arrays and
chunked arrays (pyarrow is imported only when one comes in). Frames are pandas DataFrames,
mappings of columns, or pyarrow Tables and RecordBatches. See ``profile.py`` for the null and
label conventions these functions implement.

Labels are counted by Arrow (``value_counts``) whenever the column is Arrow data already: a
pyarrow array, a pandas column backed by pyarrow (pandas' default ``str`` dtype since 3.0,
``string[pyarrow]``, ``ArrowDtype``) or a pandas ``category``; the distinct values it finds go
through the same labelling as any other, so the result does not depend on the container.
"""

from __future__ import annotations

import numbers
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InvalidInput

AnyArray: TypeAlias = npt.NDArray[Any]
FloatArray: TypeAlias = npt.NDArray[np.float64]
Kind: TypeAlias = Literal["float", "int", "bool", "label"]


def frame_columns(frame: Any, *, unique: bool = False) -> dict[str, Any]:
    """The columns of a DataFrame, a mapping of columns, or a pyarrow Table or RecordBatch;
    ``unique`` refuses a name that appears twice (else the last column of that name wins)."""
    if isinstance(frame, Mapping) or hasattr(frame, "items"):
        pairs = [(str(k), v) for k, v in frame.items()]
    elif hasattr(frame, "column_names") and hasattr(frame, "column"):
        pairs = [(str(name), frame.column(i)) for i, name in enumerate(frame.column_names)]
    else:
        raise InvalidInput(
            "expected a DataFrame, a mapping of columns or a pyarrow Table, "
            f"got {type(frame).__name__}"
        )
    columns: dict[str, Any] = {}
    for name, values in pairs:
        if unique and name in columns:
            raise InvalidInput(f"column name {name!r} appears twice")
        columns[name] = values
    return columns


def count_labels(values: Any) -> tuple[dict[str, int], int]:
    """:func:`label_counts` of any column, by Arrow where the column is Arrow data already.

    >>> import pyarrow as pa
    >>> count_labels(pa.array(["b", None, "a", "b"]))
    ({'b': 2, 'a': 1}, 1)
    """
    arrow = _arrow_data(values)
    if arrow is not None and _countable_by_arrow(arrow):
        return _arrow_label_counts(arrow)
    return label_counts(read_column(values)[0])


def arrow_labels(values: Any) -> bool:
    """Whether ``values`` is Arrow data (or a pandas column backed by it) holding labels:
    strings, bytes, booleans or dictionary-encoded values, which :func:`read_column` would
    read as ``"label"`` or ``"bool"``.

    >>> import pyarrow as pa
    >>> arrow_labels(pa.array(["a"])), arrow_labels(pa.array([1.0])), arrow_labels(["a"])
    (True, False, False)
    """
    arrow = _arrow_data(values)
    if arrow is None:
        return False
    import pyarrow as pa

    dtype = arrow.type
    return bool(pa.types.is_dictionary(dtype) or pa.types.is_boolean(dtype) or _is_text(dtype))


def _is_text(dtype: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_string_view(dtype)
        or pa.types.is_binary(dtype)
        or pa.types.is_large_binary(dtype)
        or pa.types.is_binary_view(dtype)
    )


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


def _arrow_label_counts(column: Any) -> tuple[dict[str, int], int]:
    import pyarrow.compute as pc

    found = pc.value_counts(column)
    values = found.field("values").to_pylist()
    counts = found.field("counts").to_pylist()
    nulls = sum(n for value, n in zip(values, counts, strict=True) if _is_null(value))
    pairs = ((v, n) for v, n in zip(values, counts, strict=True) if not _is_null(v))
    return _merge_labels(pairs), nulls


def _arrow_data(values: Any) -> Any:
    """``values`` as a pyarrow array when that costs no conversion per value, else None."""
    if _is_arrow(values):
        return values
    dtype = getattr(values, "dtype", None)
    if dtype is None or isinstance(dtype, np.dtype):
        return None
    backed = getattr(dtype, "storage", None) == "pyarrow" or hasattr(dtype, "pyarrow_dtype")
    if not (backed or getattr(dtype, "name", None) == "category"):
        return None
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError):  # categories of mixed types
        return None


def _is_arrow(values: object) -> bool:
    return type(values).__module__.startswith("pyarrow") and hasattr(values, "type")


def _countable_by_arrow(column: Any) -> bool:
    """Types whose Python values label as the numpy path labels them. Integers with nulls are
    left to that path, which reads them as floats (as pandas' nullable integers are read)."""
    import pyarrow as pa

    dtype = column.type
    if pa.types.is_integer(dtype) and column.null_count:
        return False
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    return bool(
        _is_text(dtype)
        or pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_null(dtype)
    )


def _count_objects(items: list[Any]) -> list[tuple[object, int]]:
    """Occurrences of each distinct object. 1, 1.0 and True are equal dict keys but different
    labels, so values are keyed by their type too, unless at most one type besides str is
    present (a str never equals a non-str), which is the common, faster case."""
    if len(set(map(type, items)) - {str}) <= 1:
        return list(Counter(items).items())
    typed = Counter(zip(map(type, items), items, strict=True))
    return [(value, n) for (_, value), n in typed.items()]


BOOLEAN_LABELS = frozenset({"False", "True"})
_NUMBERS_AS_BOOLEANS = {"0": "False", "1": "True"}


def boolean_labels(labels: dict[str, int], categories: Iterable[str]) -> dict[str, int]:
    """``labels`` with the numbers 0 and 1 counted as ``"False"`` and ``"True"`` when the
    known ``categories`` are booleans' (a bool feature that came as 0/1 numbers, as serving
    passes them on and older logbook segments hold them); else ``labels`` as they are.

    >>> boolean_labels({"1": 3, "0": 2, "True": 1}, ["True", "False"])
    {'True': 4, 'False': 2}
    >>> boolean_labels({"1": 3}, ["1", "2"])
    {'1': 3}
    """
    known = set(categories)
    if not known or not known <= BOOLEAN_LABELS or not labels.keys() & _NUMBERS_AS_BOOLEANS:
        return labels
    out: dict[str, int] = {}
    for name, n in labels.items():
        name = _NUMBERS_AS_BOOLEANS.get(name, name)
        out[name] = out.get(name, 0) + n
    return out


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
    if _is_arrow(values):
        return _read_arrow(values)
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


def _read_arrow(values: Any) -> tuple[AnyArray, Kind]:
    """A pyarrow array or chunked array, read as the pandas column of the same type would be."""
    import pyarrow as pa

    dtype = values.type
    if pa.types.is_floating(dtype) or (pa.types.is_integer(dtype) and values.null_count):
        floats = values.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)  # null: NaN
        return np.asarray(floats), "float" if pa.types.is_floating(dtype) else "int"
    if pa.types.is_temporal(dtype) or pa.types.is_nested(dtype):
        raise _unsupported(str(dtype))
    if pa.types.is_dictionary(dtype):
        values = values.cast(dtype.value_type)
    column = np.asarray(values.to_numpy(zero_copy_only=False))
    if column.ndim != 1:
        raise InvalidInput(f"expected a 1-D column, got shape {column.shape}")
    if pa.types.is_integer(dtype):
        return column, "int"
    if pa.types.is_boolean(dtype):
        return column, "bool"
    return column.astype(object, copy=False), "label"


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
