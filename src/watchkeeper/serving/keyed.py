"""Keyed rows or columns laid out in a fixed column order, before any conversion.

Both fast paths that turn JSON into one float64 array use it: the validator's (a version with
a signature) and the row plan's (a version without one). ``None`` means "not this shape": the
caller then takes its careful path, which reports each problem with its field.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any


class KeyedMatrix:
    """``records`` / ``columns`` as a list of lists in ``names`` order: row-major for records,
    column-major for columns. Extra or missing keys give ``None``; the values are not looked
    at."""

    __slots__ = ("_getter", "k", "names")

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.k = len(self.names)
        self._getter = itemgetter(*self.names) if self.k > 1 else None  # a tuple only for k > 1

    def records(self, records: list[Any]) -> list[Any] | None:
        try:
            if self._getter is not None:
                matrix: list[Any] = list(map(self._getter, records))
            else:
                matrix = [[record[name] for name in self.names] for record in records]
            if sum(map(len, records)) != self.k * len(records):
                return None  # extra keys
        except (KeyError, TypeError, IndexError):
            return None
        return matrix

    def columns(self, columns: dict[str, Any]) -> list[Any] | None:
        if len(columns) != self.k:
            return None
        try:
            return [columns[name] for name in self.names]
        except KeyError:
            return None
