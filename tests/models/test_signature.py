from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.errors import InvalidInput
from watchkeeper.models import ColumnSpec, Signature, infer_signature
from watchkeeper.models.signature import MAX_CATEGORIES


def _by_name(signature: Signature) -> dict[str, ColumnSpec]:
    return {c.name: c for c in signature.columns}


def test_numpy_dtypes_ranges_and_nullability() -> None:
    frame = pd.DataFrame(
        {
            "f": [1.5, -2.0, 3.25],
            "f_nan": [1.0, np.nan, 2.0],
            "i": np.array([3, 1, 2], dtype=np.int32),
            "u": np.array([7, 8, 9], dtype=np.uint8),
            "b": [True, False, True],
            "t": pd.to_datetime(["2024-01-01", "2024-02-01", None]),
            "tz": pd.date_range("2024-01-01", periods=3, tz="UTC"),
        }
    )
    cols = _by_name(infer_signature(frame))
    assert cols["f"] == ColumnSpec(name="f", dtype="float", nullable=False, min=-2.0, max=3.25)
    assert cols["f_nan"] == ColumnSpec(name="f_nan", dtype="float", nullable=True, min=1.0, max=2.0)
    assert cols["i"] == ColumnSpec(name="i", dtype="int", min=1.0, max=3.0)
    assert cols["u"] == ColumnSpec(name="u", dtype="int", min=7.0, max=9.0)
    assert cols["b"] == ColumnSpec(name="b", dtype="bool")
    assert cols["t"] == ColumnSpec(name="t", dtype="datetime", nullable=True)
    assert cols["tz"] == ColumnSpec(name="tz", dtype="datetime")
    assert infer_signature(frame).names == list(frame.columns)


def test_pandas_nullable_dtypes() -> None:
    frame = pd.DataFrame(
        {
            "i": pd.array([1, None, 5], dtype="Int64"),
            "i_full": pd.array([1, 2, 3], dtype="UInt16"),
            "f": pd.array([0.5, None, 1.5], dtype="Float64"),
            "b": pd.array([True, None, False], dtype="boolean"),
        }
    )
    cols = _by_name(infer_signature(frame))
    assert cols["i"] == ColumnSpec(name="i", dtype="int", nullable=True, min=1.0, max=5.0)
    assert cols["i_full"] == ColumnSpec(name="i_full", dtype="int", min=1.0, max=3.0)
    assert cols["f"] == ColumnSpec(name="f", dtype="float", nullable=True, min=0.5, max=1.5)
    assert cols["b"] == ColumnSpec(name="b", dtype="bool", nullable=True)


@pytest.mark.parametrize("dtype", ["str", "string", "string[pyarrow]", object])
def test_string_dtypes_record_sorted_categories(dtype: object) -> None:
    frame = pd.DataFrame({"s": pd.Series(["b", "a", None, "b"], dtype=dtype)})  # type: ignore[call-overload]
    (spec,) = infer_signature(frame).columns
    assert spec == ColumnSpec(name="s", dtype="string", nullable=True, categories=("a", "b"))


def test_pandas3_default_string_dtype() -> None:
    frame = pd.DataFrame({"s": ["x", "y"]})
    (spec,) = infer_signature(frame).columns
    assert spec.dtype == "string"
    assert spec.categories == ("x", "y")
    assert not spec.nullable


def test_categories_stop_above_the_limit() -> None:
    at_limit = [f"v{i:03d}" for i in range(MAX_CATEGORIES)]
    above = [*at_limit, "one-more"]
    cols = _by_name(infer_signature({"ok": at_limit, "many": above + above[:1]}))
    assert cols["ok"].categories == tuple(sorted(at_limit))
    assert cols["many"].categories is None
    assert cols["many"].dtype == "string"


def test_category_dtype() -> None:
    frame = pd.DataFrame(
        {
            "plan": pd.Categorical(["pro", None], categories=["basic", "pro", "team"]),
            "level": pd.Categorical([1, 3], categories=[1, 2, 3]),
        }
    )
    cols = _by_name(infer_signature(frame))
    assert cols["plan"] == ColumnSpec(
        name="plan", dtype="string", nullable=True, categories=("basic", "pro", "team")
    )
    assert cols["level"] == ColumnSpec(name="level", dtype="int", min=1.0, max=3.0)


def test_dict_of_lists_keeps_integers_with_missing_values() -> None:
    signature = infer_signature(
        {"n": [1, None, 3], "x": np.array([0.1, 0.2]), "s": ["a", "b"], "ok": [True, False]}
    )
    cols = _by_name(signature)
    assert cols["n"] == ColumnSpec(name="n", dtype="int", nullable=True, min=1.0, max=3.0)
    assert cols["x"].dtype == "float"
    assert cols["s"].categories == ("a", "b")
    assert cols["ok"].dtype == "bool"
    assert signature.names == ["n", "x", "s", "ok"]


def test_object_columns_are_inferred_from_values() -> None:
    frame = pd.DataFrame(
        {
            "ints": pd.Series([1, 2, None], dtype=object),
            "mixed_num": pd.Series([1, 2.5], dtype=object),
            "flags": pd.Series([True, False], dtype=object),
        }
    )
    cols = _by_name(infer_signature(frame))
    assert cols["ints"] == ColumnSpec(name="ints", dtype="int", nullable=True, min=1.0, max=2.0)
    assert cols["mixed_num"].dtype == "float"
    assert cols["flags"].dtype == "bool"


def test_two_dimensional_array_names_columns_f0_fn() -> None:
    array = np.array([[1.0, 10], [np.nan, 20], [3.0, 30]])
    signature = infer_signature(array)
    assert signature.names == ["f0", "f1"]
    assert signature.columns[0] == ColumnSpec(
        name="f0", dtype="float", nullable=True, min=1.0, max=3.0
    )
    assert signature.columns[1].max == 30.0


def test_infinite_values_leave_the_bound_open() -> None:
    (spec,) = infer_signature({"x": np.array([-np.inf, 1.0, 2.0])}).columns
    assert spec.min is None
    assert spec.max == 2.0


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ({"m": [1, "a"]}, "cannot infer a type"),
        ({"m": [None, None]}, "only missing values"),
        ({"m": np.zeros((2, 2))}, "must be 1-D"),
        ({"m": 3}, "must be a list"),
        (np.zeros(3), "must be 2-D"),
        (pd.DataFrame(np.zeros((2, 2))), "column names must be strings"),
        (pd.DataFrame({"t": pd.to_timedelta([1, 2], unit="s")}), "unsupported dtype"),
        ("text", "cannot infer a signature from a str"),
    ],
)
def test_uninferable_examples(example: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        infer_signature(example)  # type: ignore[arg-type]


def test_duplicate_names_are_refused() -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(InvalidInput, match="duplicate column names"):
        infer_signature(frame)
    with pytest.raises(InvalidInput, match="'a' twice"):
        Signature((ColumnSpec(name="a", dtype="int"), ColumnSpec(name="a", dtype="float")))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": "complex"}, "unknown dtype"),
        ({"dtype": "string", "min": 1.0}, "min/max only apply"),
        ({"dtype": "int", "categories": ("a",)}, "categories only apply"),
    ],
)
def test_column_spec_validates(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ColumnSpec(name="c", **kwargs)


def test_signature_dict_round_trip(mixed: tuple) -> None:
    signature = infer_signature(mixed[0])
    data = signature.to_dict()
    assert [c["name"] for c in data["columns"]] == list(mixed[0].columns)
    assert Signature.from_dict(data) == signature
    assert len(signature) == 5


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=64)),
        min_size=1,
        max_size=30,
    )
)
def test_float_column_range_matches_numpy(values: list[float | None]) -> None:
    array = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    (spec,) = infer_signature({"x": array}).columns
    assert spec.nullable == bool(np.isnan(array).any())
    finite = array[~np.isnan(array)]
    assert spec.min == (float(finite.min()) if finite.size else None)
    assert spec.max == (float(finite.max()) if finite.size else None)
    assert Signature.from_dict(Signature((spec,)).to_dict()).columns == (spec,)
