"""Counting two label samples over the union of their labels (the exact categorical forms)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring._columns import label_counts, read_column
from watchkeeper.monitoring.drift.result import IntArray


def joint_label_counts(
    reference: npt.ArrayLike, current: npt.ArrayLike
) -> tuple[IntArray, IntArray]:
    """Counts per label (sorted) for both samples, nulls left out."""
    ref, _ = label_counts(read_column(reference)[0])
    cur, _ = label_counts(read_column(current)[0])
    for name, labels in (("reference", ref), ("current", cur)):
        if not labels:
            raise InvalidInput(f"the {name} sample has no non-null values")
    names = sorted(ref.keys() | cur.keys())
    return (
        np.array([ref.get(k, 0) for k in names], dtype=np.int64),
        np.array([cur.get(k, 0) for k in names], dtype=np.int64),
    )
