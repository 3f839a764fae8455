"""Batch conversion: DataFrames, dicts of columns and arrays into what a model takes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from watchkeeper.errors import InvalidInput, SchemaError
from watchkeeper.models import ColumnSpec, Signature
from watchkeeper.models._batch import to_array, to_frame

SIGNATURE = Signature(
    (
        ColumnSpec(name="x", dtype="float", nullable=True),
        ColumnSpec(name="n", dtype="int"),
        ColumnSpec(name="ok", dtype="bool", nullable=True),
        ColumnSpec(name="at", dtype="datetime"),
        ColumnSpec(name="s", dtype="string"),
    )
)


def test_array_in_signature_order_passes_through_untouched() -> None:
    array = np.arange(6.0).reshape(3, 2)
    assert to_array(array, ["a", "b"]) is array


def test_frame_and_dict_become_float_arrays_in_signature_order() -> None:
    frame = pd.DataFrame({"b": [1, 2], "a": pd.array([0.5, None], dtype="Float64"), "c": [9, 9]})
    expected = np.array([[0.5, 1.0], [np.nan, 2.0]])
    np.testing.assert_array_equal(to_array(frame, ["a", "b"]), expected)
    as_dict = {"b": [1, 2], "a": [0.5, np.nan]}
    np.testing.assert_array_equal(to_array(as_dict, ["a", "b"]), expected)
    assert to_array({"a": [1, 2]}, None).dtype == np.float64


def test_frame_is_not_copied_when_already_in_order() -> None:
    frame = pd.DataFrame({"a": [1.0], "b": [2.0]})
    assert to_frame(frame, ["a", "b"], None) is frame
    assert list(to_frame(frame, ["b"], None).columns) == ["b"]


def test_object_array_columns_take_the_signature_types() -> None:
    rows = np.array(
        [[1.5, 3, True, "2024-01-01", "a"], [None, 4, None, "2024-01-02", "b"]], dtype=object
    )
    frame = to_frame(rows, SIGNATURE.names, SIGNATURE)
    assert frame["x"].dtype == np.float64
    assert np.isnan(frame["x"].iloc[1])
    assert frame["n"].dtype == np.int64
    assert frame["ok"].dtype == "boolean"
    assert pd.api.types.is_datetime64_any_dtype(frame["at"])
    assert frame["s"].tolist() == ["a", "b"]


def test_numeric_array_without_names_gets_f_columns() -> None:
    frame = to_frame(np.zeros((2, 3)), None, None)
    assert list(frame.columns) == ["f0", "f1", "f2"]


def test_bad_values_and_shapes() -> None:
    rows = np.array([["many", 3, True, "2024-01-01", "a"]], dtype=object)
    with pytest.raises(SchemaError, match="column 'x': values are not float") as info:
        to_frame(rows, SIGNATURE.names, SIGNATURE)
    assert info.value.details[0].field == "x"
    with pytest.raises(SchemaError, match=r"expected 2 column\(s\) \(a, b\), got 3"):
        to_array(np.zeros((1, 3)), ["a", "b"])
    with pytest.raises(SchemaError, match="missing input column"):
        to_frame({"a": [1]}, ["a", "b"], None)
    with pytest.raises(InvalidInput, match="do not form a table"):
        to_frame({"a": 1, "b": 2}, None, None)
    with pytest.raises(InvalidInput, match="cannot predict on a str"):
        to_frame("a,b", None, None)
