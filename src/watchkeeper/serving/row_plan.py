"""How a version without a signature takes keyed rows as one array: the column order, fixed
once per version (``Deployed.row_plan``), and the conversion of a batch to float64 rows."""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np

from watchkeeper.models.loaded import LoadedModel
from watchkeeper.serving.batch import ParsedBatch
from watchkeeper.serving.keyed import KeyedMatrix

_PLAIN = frozenset({int, float})


class RowPlan:
    """The column order of a version without a signature, fixed once: the model's own feature
    names (any key order is then taken), else the keys of the first keyed request (later
    requests must send the same keys in the same order, as a DataFrame of them would be)."""

    __slots__ = ("_keyed", "by_model", "k", "names")

    def __init__(self, names: tuple[str, ...], *, by_model: bool) -> None:
        self._keyed = KeyedMatrix(names)
        self.names = names
        self.by_model = by_model
        self.k = len(names)

    def array(self, parsed: ParsedBatch) -> np.ndarray[Any, Any] | None:
        """The batch as float64 rows in plan order, or None when it does not fit the plan."""
        if not self.k:
            return None
        if parsed.records is not None:
            records = parsed.records
            if not all(type(r) is dict for r in records) or not self._ordered(*records):
                return None
            matrix, column_major = self._keyed.records(records), False
        elif parsed.columns is not None:
            matrix, column_major = self._keyed.columns(parsed.columns), True
            if matrix is None or not self._ordered(parsed.columns):
                return None
            if not all(type(col) is list for col in matrix) or len(set(map(len, matrix))) != 1:
                return None
        else:
            return None
        try:
            if not matrix or not set(map(type, chain.from_iterable(matrix))) <= _PLAIN:
                return None
            arr = np.array(matrix, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            return None
        if arr.ndim != 2:
            return None
        return np.ascontiguousarray(arr.T) if column_major else arr

    def _ordered(self, *keyed: dict[str, Any]) -> bool:
        """Keys in plan order, unless the model names its own columns (then any order)."""
        return self.by_model or all(tuple(keys) == self.names for keys in keyed)


def build_plan(model: LoadedModel, parsed: ParsedBatch) -> RowPlan | None:
    names = model.input_names
    if names is not None:
        return RowPlan(tuple(names), by_model=True)
    if parsed.records and type(parsed.records[0]) is dict:
        keys = parsed.records[0]
    elif parsed.columns:
        keys = parsed.columns
    else:
        return None
    if not keys or not all(type(k) is str for k in keys):
        return None
    return RowPlan(tuple(keys), by_model=False)
