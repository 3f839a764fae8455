"""Checking one parsed request against the signature of the version that answers it.

A clean request to a model whose columns are all numeric or bool takes the fast path: one type
scan of the values (plain JSON numbers and ``null``; booleans too, then checked column by column
when the model has bool columns), one ``np.array(..., dtype=float64)`` and a handful of
vectorised checks over the whole 2-D array. Anything else — a string where a number belongs, a
nested list, a missing key, a model with string or datetime columns — takes the careful path,
which converts column by column so every problem is reported with its field and row.

Decisions, so clients can rely on them:

- A JSON boolean is refused in a numeric column and only booleans are taken in a bool column
  (``0``/``1`` are refused there): Python's ``bool`` being an ``int`` must not leak into a model.
- An int column takes whole numbers, also written ``3.0``; ``3.5`` is refused (``not_integer``).
- A string column takes strings and also numbers, turned into their text (``7`` → ``"7"``),
  because CSV bodies and many clients send numeric codes as numbers; the text must still be a
  known category when the column has categories. A boolean there is refused.
- A datetime column takes ISO 8601 strings; a UTC offset is converted to naive UTC.
- ``null`` (and NaN) is refused in a non-nullable column and counted in a nullable one;
  infinities are always refused.
- The signature's ``min``/``max`` are the training range: values outside it are counted by
  default (``ValidationPolicy.out_of_range``); ``ValidationPolicy.bounds`` are hard limits,
  always refused. Bounds naming a column the signature lacks (or a non-numeric one) are ignored,
  so one policy can serve many models.
- ``problem`` in each detail is a short stable code (``expected_number``, ``null``,
  ``out_of_range``…); the error message explains the first problem in words.
"""

from __future__ import annotations

from collections import Counter
from itertools import chain
from typing import Any

import numpy as np

from watchkeeper.errors import Detail, PayloadTooLarge, SchemaError
from watchkeeper.models.signature import ColumnSpec, Signature
from watchkeeper.models.validation import ValidationPolicy
from watchkeeper.serving._convert import (
    BOOL_TYPES,
    NUMBER_TYPES,
    ArrayChecks,
    FloatArray,
    Problems,
    convert,
    describe,
    to_float,
    to_frame,
)
from watchkeeper.serving.batch import ParsedBatch, ValidatedBatch
from watchkeeper.serving.keyed import KeyedMatrix

_ARRAY_DTYPES = ("float", "int", "bool")


class Validator:
    """Validates parsed requests against one signature; build once per loaded version."""

    def __init__(self, signature: Signature, policy: ValidationPolicy | None = None) -> None:
        self.signature = signature
        self.policy = policy if policy is not None else ValidationPolicy()
        self._names = signature.names
        self._name_set = frozenset(self._names)
        self._k = len(self._names)
        self._keyed = KeyedMatrix(self._names)
        self._array_specs = [s for s in signature.columns if s.dtype in _ARRAY_DTYPES]
        self._text_specs = [s for s in signature.columns if s.dtype not in _ARRAY_DTYPES]
        self._all_numeric = not self._text_specs
        # with bool columns, one scan of all values cannot tell 1 from true: scan per column
        self._per_column = any(s.dtype == "bool" for s in signature.columns)
        self._plain = NUMBER_TYPES | {bool} if self._per_column else NUMBER_TYPES
        self._column_types = [BOOL_TYPES if s.dtype == "bool" else NUMBER_TYPES
                              for s in signature.columns]  # fmt: skip
        self._checks = ArrayChecks(
            self._array_specs,
            bounds=self.policy.bounds,
            reject_range=self.policy.out_of_range == "reject",
        )
        self._categories = {s.name: frozenset(s.categories) for s in self._text_specs
                            if s.categories is not None}  # fmt: skip

    def __repr__(self) -> str:
        return f"Validator(columns={self._names!r}, policy={self.policy!r})"

    def validate(self, parsed: ParsedBatch) -> ValidatedBatch:
        n = parsed.n_rows
        if n > self.policy.max_rows:
            raise PayloadTooLarge(
                f"the request holds {n} rows; at most {self.policy.max_rows} are accepted at once"
            )
        if n == 0:
            raise SchemaError("the request holds no rows", details=[Detail("*", "empty")])
        if self._all_numeric:
            return self._validate_array(parsed, n)
        return self._validate_frame(parsed, n)

    def _validate_array(self, parsed: ParsedBatch, n: int) -> ValidatedBatch:
        arr = self._fast_array(parsed, n)
        if arr is None:
            arr = self._careful_array(parsed, n)
        problems = Problems(self.policy.max_details)
        findings: dict[tuple[str, str], int] = {}
        self._checks.run(arr, problems, findings)
        problems.raise_if_any()
        return ValidatedBatch(data=arr, n_rows=n, findings=findings)

    def _fast_array(self, parsed: ParsedBatch, n: int) -> FloatArray | None:
        """The batch as float64 when it holds only plain numbers and nulls in the right places."""
        if parsed.columns is not None:
            matrix = self._keyed.columns(parsed.columns)
        elif parsed.records is not None:
            matrix = self._keyed.records(parsed.records)
        else:
            matrix = parsed.rows
        try:
            if matrix is None or not set(map(type, chain.from_iterable(matrix))) <= self._plain:
                return None
            if self._per_column and not self._typed(matrix, parsed.columns is not None):
                return None
            arr = np.array(matrix, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            return None
        if parsed.columns is not None:
            arr = np.ascontiguousarray(arr.T)
        return arr if arr.shape == (n, self._k) else None

    def _typed(self, matrix: list[Any], column_major: bool) -> bool:
        cols = matrix if column_major else zip(*matrix, strict=False)
        pairs = zip(cols, self._column_types, strict=False)
        return all(set(map(type, col)) <= allowed for col, allowed in pairs)

    def _careful_array(self, parsed: ParsedBatch, n: int) -> FloatArray:
        table = self._table(parsed)
        problems = Problems(self.policy.max_details)
        arrays = [to_float(spec, table[spec.name], problems) for spec in self.signature.columns]
        problems.raise_if_any()
        return np.column_stack(arrays) if arrays else np.zeros((n, 0))

    def _validate_frame(self, parsed: ParsedBatch, n: int) -> ValidatedBatch:
        table = self._table(parsed)
        problems = Problems(self.policy.max_details)
        converted = {s.name: convert(s, table[s.name], problems) for s in self.signature.columns}
        problems.raise_if_any()
        findings: dict[tuple[str, str], int] = {}
        if self._array_specs:
            matrix = np.column_stack([converted[s.name] for s in self._array_specs])
            self._checks.run(matrix, problems, findings)
        for spec in self._text_specs:
            self._check_text(spec, converted[spec.name], problems, findings)
        problems.raise_if_any()
        frame = to_frame(self.signature.columns, converted, n)
        return ValidatedBatch(data=frame, n_rows=n, findings=findings)

    def _check_text(
        self, spec: ColumnSpec, values: Any, problems: Problems, findings: dict[Any, int]
    ) -> None:
        if spec.dtype == "datetime":
            missing = np.flatnonzero(np.isnat(values)).tolist()
        else:
            missing = [row for row, value in enumerate(values) if value is None]
        if missing and spec.nullable:
            findings[(spec.name, "null")] = len(missing)
        elif missing:
            for row in missing:
                problems.add(spec.name, "null", row, "the column is not nullable")
        known = self._categories.get(spec.name)
        if known is None:
            return
        unseen = [
            row for row, value in enumerate(values) if value is not None and value not in known
        ]
        if unseen and self.policy.unseen_category == "count":
            findings[(spec.name, "unseen_category")] = len(unseen)
        else:
            for row in unseen:
                problems.add(spec.name, "unseen_category", row, f"{values[row]!r} is not known")

    def _table(self, parsed: ParsedBatch) -> dict[str, list[Any]]:
        """The batch as column name → values, or a SchemaError naming what does not fit."""
        problems = Problems(self.policy.max_details)
        if parsed.rows is not None:
            table = self._rows_table(parsed.rows, problems)
        elif parsed.records is not None:
            table = self._records_table(parsed.records, problems)
        else:
            assert parsed.columns is not None
            table = self._columns_table(parsed.columns, problems)
        problems.raise_if_any()
        return table

    def _rows_table(self, rows: list[list[Any]], problems: Problems) -> dict[str, list[Any]]:
        for i, row in enumerate(rows):
            if not isinstance(row, list):
                problems.add("*", "not_an_array", i, f"the row is {describe(row)}")
            elif len(row) != self._k:
                note = f"{len(row)} values; the model takes {self._k}, in signature order"
                problems.add("*", "wrong_length", i, note)
        if problems.total:
            return {}
        return dict(zip(self._names, map(list, zip(*rows, strict=True)), strict=False))

    def _records_table(
        self, records: list[dict[str, Any]], problems: Problems
    ) -> dict[str, list[Any]]:
        names = self._names
        missing: dict[str, list[int]] = {}
        unknown: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                problems.add("*", "not_an_object", i, f"the row is {describe(record)}")
            elif len(record) != self._k or not all(name in record for name in names):
                for name in names:
                    if name not in record:
                        missing.setdefault(name, []).append(i)
                for key in record:
                    if key not in self._name_set:
                        unknown.setdefault(str(key), []).append(i)
        _report(missing, "missing_column", len(records), problems)
        _report(unknown, "unknown_column", len(records), problems)
        if problems.total:
            return {}
        return {name: [record[name] for record in records] for name in names}

    def _columns_table(
        self, columns: dict[str, list[Any]], problems: Problems
    ) -> dict[str, list[Any]]:
        for key in columns:
            if key not in self._name_set:
                problems.add(str(key), "unknown_column", None, "the signature has no such column")
        lengths: dict[str, int] = {}
        for name in self._names:
            if name not in columns:
                problems.add(name, "missing_column", None, "the signature needs it")
            elif not isinstance(columns[name], list):
                problems.add(name, "not_an_array", None, f"got {describe(columns[name])}")
            else:
                lengths[name] = len(columns[name])
        if len(set(lengths.values())) > 1:
            usual = Counter(lengths.values()).most_common(1)[0][0]
            for name, length in lengths.items():
                if length != usual:
                    note = f"{length} values where the other columns have {usual}"
                    problems.add(name, "ragged", None, note)
        return columns


def _report(found: dict[str, list[int]], problem: str, n: int, problems: Problems) -> None:
    for name, rows in found.items():
        everywhere = len(rows) == n
        note = "in every row" if everywhere else f"in {len(rows)} of {n} rows"
        problems.add(name, problem, None if everywhere else rows[0], note)
