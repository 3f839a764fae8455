"""How a version without a signature takes keyed rows as one array: the column order, fixed
once per version (``Deployed.row_plan``), and the conversion of a batch to float64 rows."""

from __future__ import annotations

from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from watchkeeper.models.loaded import LoadedModel
from watchkeeper.serving.batch import ParsedBatch

_PLAIN = frozenset({int, float})


class RowPlan:
    """The column order of a version without a signature, fixed once: the model's own feature
    names (any key order is then taken), else the keys of the first keyed request (later
    requests must send the same keys in the same order, as a DataFrame of them would be)."""

    __slots__ = ("_getter", "by_model", "k", "names")

    def __init__(self, names: tuple[str, ...], *, by_model: bool) -> None:
        self.names = names
        self.by_model = by_model
        self.k = len(names)
        self._getter = itemgetter(*names) if self.k > 1 else None

    def array(self, parsed: ParsedBatch) -> np.ndarray[Any, Any] | None:
        """The batch as float64 rows in plan order, or None when it does not fit the plan."""
        try:
            if parsed.records is not None:
                matrix = self._records(parsed.records)
                column_major = False
            elif parsed.columns is not None:
                matrix = self._columns(parsed.columns)
                column_major = True
            else:
                return None
            if not matrix or not set(map(type, chain.from_iterable(matrix))) <= _PLAIN:
                return None
            arr = np.array(matrix, dtype=np.float64)
        except (KeyError, TypeError, ValueError, OverflowError, IndexError):
            return None
        if arr.ndim != 2:
            return None
        return np.ascontiguousarray(arr.T) if column_major else arr

    def _fits(self, keys: Any) -> bool:
        return tuple(keys) == self.names if not self.by_model else True

    def _records(self, records: list[dict[str, Any]]) -> list[Any] | None:
        if not self.k or not all(type(r) is dict for r in records):
            return None
        if sum(map(len, records)) != self.k * len(records):
            return None  # extra or missing keys
        if not self.by_model and not all(tuple(r) == self.names for r in records):
            return None
        if self._getter is None:
            return [[r[self.names[0]]] for r in records]
        return list(map(self._getter, records))

    def _columns(self, columns: dict[str, list[Any]]) -> list[Any] | None:
        if len(columns) != self.k or not self._fits(columns):
            return None
        matrix = [columns[name] for name in self.names]
        if not all(type(col) is list for col in matrix) or len({len(c) for c in matrix}) != 1:
            return None
        return matrix


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
