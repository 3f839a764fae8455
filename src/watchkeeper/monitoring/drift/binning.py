"""Counting a window on the reference's bins: one vectorised pass per feature, mergeable.

Numeric features are counted on the profile's quantile ``edges`` with
:func:`~watchkeeper.monitoring.profile.bin_counts`, plus two *tail* bins for the values below
the first edge and above the last one (the profile's bins would fold them into the outer bins
and a move beyond the reference's range would look smaller than it is). The counts vector is
``[below, bin 0, ..., bin k-1, above]``; the tails also keep the summed distance of their
values from the edge, which is what the Wasserstein distance needs. Categorical features are
counted per reference category, plus one last bin for every unseen label. Nulls are counted
apart and never enter a distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring._columns import (
    _is_null,
    _label,
    boolean_labels,
    count_labels,
    float_values,
    non_null,
    read_column,
)
from watchkeeper.monitoring.drift.result import FloatArray, IntArray
from watchkeeper.monitoring.profile import bin_counts

__all__ = ["BinnedColumn", "count_categories", "count_numeric", "label_codes", "numeric_codes"]


@dataclass(frozen=True, eq=False)
class BinnedColumn:
    """Counts of one column of one window. ``a + b`` counts both windows.

    >>> a = count_numeric([0.5, 1.5, 9.0], [0.0, 1.0, 2.0])
    >>> (a + a).counts.tolist(), (a + a).above_excess
    ([0, 2, 2, 2], 14.0)
    """

    counts: IntArray
    nulls: int = 0
    below_excess: float = 0.0
    above_excess: float = 0.0

    @property
    def total(self) -> int:
        """Non-null values counted."""
        return int(self.counts.sum())

    def __add__(self, other: BinnedColumn) -> BinnedColumn:
        if self.counts.shape != other.counts.shape:
            raise InvalidInput("cannot add counts over different bins")
        return BinnedColumn(
            self.counts + other.counts,
            self.nulls + other.nulls,
            self.below_excess + other.below_excess,
            self.above_excess + other.above_excess,
        )


def count_numeric(values: npt.ArrayLike, edges: Sequence[float] | npt.ArrayLike) -> BinnedColumn:
    """Count numbers on ``edges`` with tail bins: ``[below, bins..., above]``.

    >>> c = count_numeric([-1.0, 0.5, 1.0, 2.0, 5.0, None], [0.0, 1.0, 2.0])
    >>> c.counts.tolist(), c.nulls, c.below_excess, c.above_excess
    ([1, 1, 2, 1], 1, 1.0, 3.0)
    """
    cuts = _edges(edges)
    column = float_values(values)
    present = non_null(column)
    inner = bin_counts(present, cuts)
    below = present < cuts[0]
    above = present > cuts[-1]
    n_below, n_above = int(np.count_nonzero(below)), int(np.count_nonzero(above))
    inner[0] -= n_below
    inner[-1] -= n_above
    counts = np.concatenate([[n_below], inner, [n_above]]).astype(np.int64)
    return BinnedColumn(
        counts,
        int(column.size - present.size),
        float(np.sum(cuts[0] - present[below])) if n_below else 0.0,
        float(np.sum(present[above] - cuts[-1])) if n_above else 0.0,
    )


def numeric_codes(values: FloatArray, edges: Sequence[float] | npt.ArrayLike) -> IntArray:
    """The bin of each (non-null) value in the layout of :func:`count_numeric`.

    >>> numeric_codes(np.array([-1.0, 0.0, 1.5, 2.0, 3.0]), [0.0, 1.0, 2.0]).tolist()
    [0, 1, 2, 2, 3]
    """
    cuts = _edges(edges)
    codes = np.searchsorted(cuts[1:-1], values, side="right") + 1
    codes[values < cuts[0]] = 0
    codes[values > cuts[-1]] = cuts.size
    return codes.astype(np.int64, copy=False)


def count_categories(values: npt.ArrayLike, categories: Sequence[str]) -> BinnedColumn:
    """Count labels per category, unseen labels in one last bin (labels as in the profile).

    >>> count_categories(["a", "b", "b", "z", None], ["a", "b"]).counts.tolist()
    [1, 2, 1]
    """
    labels, nulls = count_labels(values)
    labels = boolean_labels(labels, categories)  # 0/1 numbers against booleans' categories
    known = np.array([labels.get(name, 0) for name in categories], dtype=np.int64)
    unseen = sum(labels.values()) - int(known.sum())
    return BinnedColumn(np.append(known, unseen).astype(np.int64), nulls)


def label_codes(values: npt.ArrayLike, categories: Sequence[str]) -> IntArray:
    """Per value: its category's index, ``len(categories)`` when unseen, ``-1`` when null.

    >>> label_codes(["b", None, "a", "q", "b"], ["a", "b"]).tolist()
    [1, -1, 0, 2, 1]
    """
    column, _ = read_column(values)
    index = {name: i for i, name in enumerate(categories)}
    if column.dtype.kind not in "OUS":
        uniques, inverse = np.unique(column, return_inverse=True)
        table = np.array([_code(v, index) for v in uniques.tolist()], dtype=np.int64)
        return table[inverse.reshape(-1)] if table.size else np.zeros(0, dtype=np.int64)
    items = column.tolist()
    if len(set(map(type, items)) - {str}) <= 1:
        lookup = {value: _code(value, index) for value in set(items)}
        return np.fromiter(map(lookup.__getitem__, items), dtype=np.int64, count=len(items))
    keys = list(zip(map(type, items), items, strict=True))  # 1, 1.0 and True are other labels
    typed = {key: _code(key[1], index) for key in set(keys)}
    return np.fromiter(map(typed.__getitem__, keys), dtype=np.int64, count=len(keys))


def _code(value: object, index: dict[str, int]) -> int:
    if _is_null(value):
        return -1
    return index.get(_label(value), len(index))


def _edges(edges: Sequence[float] | npt.ArrayLike) -> FloatArray:
    cuts = np.asarray(edges, dtype=np.float64)
    if cuts.ndim != 1 or cuts.size < 2:
        raise InvalidInput(
            "numeric counting needs at least two edges (an all-null reference has none)"
        )
    return cuts
