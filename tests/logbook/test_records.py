"""Conversion of unusual but legal inputs into records."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.logbook.conftest import make_batch
from watchkeeper.logbook import LogbookConfig
from watchkeeper.logbook.records import RecordBuilder


def build(*batches: object) -> list[dict[str, object]]:
    table = RecordBuilder(LogbookConfig()).table(list(batches))  # type: ignore[arg-type]
    rows: list[dict[str, object]] = table.to_pylist()
    return rows


def test_missing_values_become_nulls_whatever_the_input_type() -> None:
    frame = pd.DataFrame(
        {
            "a": pd.array([1, None], dtype="Int64"),
            "b": [True, False],
            "c": pd.Series(["x", None], dtype="str"),
        }
    )
    rows = build(
        make_batch("df", features=frame, feature_names=["a", "b", "c"]),
        make_batch(
            "obj",
            features=np.array([[1.0, None, "y"], [np.nan, 2, None]], dtype=object),
            feature_names=["a", "b", "c"],
            predictions=np.array([3, None], dtype=object),
        ),
    )
    assert [r["feature_a"] for r in rows] == [1.0, None, 1.0, None]
    assert [r["feature_b"] for r in rows] == [1.0, 0.0, None, 2.0]
    assert [r["feature_c"] for r in rows] == ["x", None, "y", None]
    assert [r["prediction"] for r in rows[2:]] == [3.0, None]


def test_numeric_and_text_predictions_can_share_a_segment() -> None:
    rows = build(
        make_batch("n", rows=1, predictions=np.array([0.5])),
        make_batch("t", rows=2, predictions=np.array(["a", "b"])),
        make_batch("e", rows=0, predictions=np.array([], dtype=float)),
    )
    assert [(r["request_id"], r["row"]) for r in rows] == [("n", 0), ("t", 0), ("t", 1)]
    assert [r["prediction"] for r in rows] == [0.5, None, None]
    assert [r["prediction_label"] for r in rows] == [None, "a", "b"]


def test_probability_widths_may_differ_between_batches() -> None:
    rows = build(
        make_batch("two", rows=1, probabilities=np.array([[0.25, 0.75]])),
        make_batch("none", rows=1, probabilities=None),
        make_batch("three", rows=1, probabilities=np.array([[0.5, 0.25, 0.25]])),
    )
    assert [r["probabilities"] for r in rows] == [[0.25, 0.75], None, [0.5, 0.25, 0.25]]
