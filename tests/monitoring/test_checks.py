"""compare(): the same findings from pandas DataFrames and from pyarrow Tables."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from watchkeeper.models.signature import ColumnSpec, Signature
from watchkeeper.monitoring.checks import Window, compare

WINDOW = Window("churn", 3, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
SIGNATURE = Signature(
    (
        ColumnSpec(name="income", dtype="float", nullable=True),
        ColumnSpec(name="age", dtype="int", min=0, max=120),
        ColumnSpec(name="plan", dtype="string"),
        ColumnSpec(name="tenure", dtype="float"),  # missing from the current data
    )
)


def frame(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    income = rng.normal(50 + shift, 10, n)
    income[::20] = np.nan
    plan = rng.choice(np.array(["a", "b", "c", "d"], dtype=object), n,
                      p=[0.4, 0.3, 0.2 - shift / 100, 0.1 + shift / 100])  # fmt: skip
    plan[::25] = None
    return pd.DataFrame({"income": income, "age": rng.integers(0, 130, n), "plan": plan,
                         "tenure": rng.exponential(3.0, n)})  # fmt: skip


@pytest.mark.parametrize("signature", [SIGNATURE, None])
def test_compare_on_arrow_tables_equals_compare_on_dataframes(signature):
    reference, current = frame(3000, 1), frame(2000, 2, shift=5.0).drop(columns="tenure")
    expected = compare(reference, current, window=WINDOW, signature=signature)
    assert expected.drift.drifted == ["income", "plan"]
    assert expected.drift["tenure"].result is None
    tables = [pa.Table.from_pandas(f, preserve_index=False) for f in (reference, current)]
    for ref, cur in [(reference, tables[1]), tuple(tables)]:
        found = compare(ref, cur, window=WINDOW, signature=signature)
        assert found.to_dict() == expected.to_dict()
        assert found.profile == expected.profile
