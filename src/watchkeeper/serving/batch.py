"""The two shapes a request takes on its way to a model.

A wire protocol turns a body into a :class:`ParsedBatch`: the values exactly as the client sent
them, in one of three layouts, with nothing checked beyond the protocol's own shape. The
validator turns that into a :class:`ValidatedBatch`: the data the model is called with, plus
counts of the problems that were noted but not refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd


@dataclass(frozen=True, kw_only=True, slots=True)
class ParsedBatch:
    """The rows of one request, in exactly one of three layouts.

    ``columns``: column name → values (column-wise). ``rows``: lists of values in signature
    column order (positional). ``records``: one object per row (row-wise).
    """

    columns: dict[str, list[Any]] | None = None
    rows: list[list[Any]] | None = None
    records: list[dict[str, Any]] | None = None
    return_probabilities: bool = False
    request_id: str | None = None
    binary_outputs: frozenset[str] = frozenset()  # v2: outputs to answer as binary tensor data

    def __post_init__(self) -> None:
        given = sum(x is not None for x in (self.columns, self.rows, self.records))
        if given != 1:
            raise ValueError("a ParsedBatch holds exactly one of columns, rows or records")

    @property
    def n_rows(self) -> int:
        """The number of rows (for ragged columns, the longest column)."""
        if self.rows is not None:
            return len(self.rows)
        if self.records is not None:
            return len(self.records)
        assert self.columns is not None
        return max((len(v) for v in self.columns.values() if isinstance(v, list)), default=0)


@dataclass(frozen=True, kw_only=True, slots=True)
class ValidatedBatch:
    """What the model is called with.

    ``data`` is a C-ordered 2-D float64 array in signature column order when every column is
    numeric or boolean, else a DataFrame with the signature's columns and dtypes. ``findings``
    counts the accepted-but-noted problems per ``(field, problem)``, e.g. ``("age",
    "out_of_range")``.
    """

    data: npt.NDArray[np.float64] | pd.DataFrame
    n_rows: int
    findings: dict[tuple[str, str], int] = field(default_factory=dict)
