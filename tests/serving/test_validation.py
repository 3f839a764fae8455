"""Validator: what a request may hold, what it is refused for, and what is only counted."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from watchkeeper.errors import InvalidInput, PayloadTooLarge, SchemaError
from watchkeeper.models.signature import ColumnSpec, Signature
from watchkeeper.models.validation import ValidationPolicy
from watchkeeper.serving.batch import ParsedBatch, ValidatedBatch
from watchkeeper.serving.validation import Validator

NUMERIC = Signature(
    (
        ColumnSpec(name="x", dtype="float", min=0.0, max=10.0),
        ColumnSpec(name="y", dtype="float", nullable=True),
        ColumnSpec(name="n", dtype="int", min=0.0, max=100.0),
        ColumnSpec(name="flag", dtype="bool"),
    )
)
MIXED = Signature(
    (
        ColumnSpec(name="age", dtype="int", min=18.0, max=90.0),
        ColumnSpec(name="city", dtype="string", categories=("paris", "rome")),
        ColumnSpec(name="income", dtype="float", nullable=True),
        ColumnSpec(name="seen", dtype="datetime", nullable=True),
    )
)
ROWS = [[1.5, 2.0, 3, True], [4.0, None, 5.0, False]]
EXPECTED = np.array([[1.5, 2.0, 3.0, 1.0], [4.0, np.nan, 5.0, 0.0]])


def records(rows: list[list[object]], names: list[str]) -> list[dict[str, object]]:
    return [dict(zip(names, row, strict=True)) for row in rows]


def columns(rows: list[list[object]], names: list[str]) -> dict[str, list[object]]:
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def validate(parsed: ParsedBatch, sig: Signature = NUMERIC, **policy: object) -> ValidatedBatch:
    return Validator(sig, ValidationPolicy(**policy)).validate(parsed)  # type: ignore[arg-type]


def refused(parsed: ParsedBatch, sig: Signature = NUMERIC, **policy: object) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        validate(parsed, sig, **policy)
    return info.value


def one_row(**values: object) -> ParsedBatch:
    row = {"x": 1.0, "y": 2.0, "n": 3, "flag": True, **values}
    return ParsedBatch(records=[row])


# --- the three layouts agree ----------------------------------------------------------------


@pytest.mark.parametrize(
    "parsed",
    [
        ParsedBatch(rows=ROWS),
        ParsedBatch(records=records(ROWS, NUMERIC.names)),
        ParsedBatch(columns=columns(ROWS, NUMERIC.names)),
        ParsedBatch(records=[dict(reversed(r.items())) for r in records(ROWS, NUMERIC.names)]),
    ],
    ids=["rows", "records", "columns", "records-other-key-order"],
)
def test_every_layout_gives_the_same_float_array(parsed: ParsedBatch) -> None:
    batch = validate(parsed)
    assert isinstance(batch.data, np.ndarray)
    assert batch.data.dtype == np.float64
    assert batch.data.flags.c_contiguous
    np.testing.assert_array_equal(batch.data, EXPECTED)
    assert batch.n_rows == 2
    assert batch.findings == {("y", "null"): 1}


def test_clean_plain_numbers_take_the_fast_path_without_findings() -> None:
    sig = Signature(tuple(ColumnSpec(name=f"f{i}", dtype="float") for i in range(20)))
    batch = Validator(sig).validate(ParsedBatch(rows=[[float(i) for i in range(20)]]))
    assert batch.data.shape == (1, 20)
    assert batch.findings == {}


# --- wrong types --------------------------------------------------------------------------------


def test_string_in_a_float_column_names_row_and_field() -> None:
    rows = [[1.0, 2.0, 3, True], ["abc", 2.0, 3, True]]
    error = refused(ParsedBatch(rows=rows))
    assert [d.to_dict() for d in error.details] == [
        {"field": "x", "problem": "expected_number", "row": 1}
    ]
    assert "row 1, 'x': expected_number (got string 'abc')" in error.message


def test_numeric_string_is_not_silently_converted() -> None:
    error = refused(one_row(x="1.5"))
    assert error.details[0].problem == "expected_number"


@pytest.mark.parametrize("value", [True, False])
def test_boolean_in_a_float_column_is_refused(value: bool) -> None:
    error = refused(one_row(x=value))
    assert (error.details[0].field, error.details[0].problem) == ("x", "expected_number")


@pytest.mark.parametrize("value", [1, 0, "true", 1.0])
def test_only_booleans_in_a_bool_column(value: object) -> None:
    with pytest.raises(SchemaError, match="'flag': expected_bool"):
        validate(one_row(flag=value))


def test_fraction_in_an_int_column_is_refused_but_a_whole_float_is_taken() -> None:
    with pytest.raises(SchemaError, match=r"row 0, 'n': not_integer \(got 3.5\)"):
        validate(one_row(n=3.5))
    assert validate(one_row(n=3.0)).data[0, 2] == 3.0


@pytest.mark.parametrize("value", [[1.0], {"v": 1.0}])
def test_nested_values_are_refused(value: object) -> None:
    with pytest.raises(SchemaError, match="'x': expected_number"):
        validate(one_row(x=value))


def test_number_too_large_for_a_float_is_refused() -> None:
    with pytest.raises(SchemaError, match="'x': not_finite"):
        validate(one_row(x=10**400))


def test_infinity_is_refused() -> None:
    with pytest.raises(SchemaError, match="'y': not_finite"):
        validate(ParsedBatch(rows=[[1.0, math.inf, 1, True]]))


# --- nulls, bounds, training range, categories ------------------------------------------------


def test_null_in_a_non_nullable_column_is_refused() -> None:
    error = refused(ParsedBatch(rows=[[1.0, 2.0, 3, True], [None, 2.0, 3, True]]))
    assert [(d.field, d.problem, d.row) for d in error.details] == [("x", "null", 1)]


def test_nullable_float_takes_null_as_nan_and_counts_it() -> None:
    batch = validate(ParsedBatch(rows=[[1.0, None, 3, True], [1.0, None, 3, True]]))
    assert np.isnan(batch.data[:, 1]).all()
    assert batch.findings == {("y", "null"): 2}


def test_hard_bounds_are_always_refused() -> None:
    error = refused(one_row(x=7.0), bounds={"x": (0.0, 5.0)})
    assert (error.details[0].field, error.details[0].problem) == ("x", "out_of_bounds")
    assert "7 is outside the allowed range [0, 5]" in error.message


def test_bounds_for_columns_the_signature_lacks_are_ignored() -> None:
    assert validate(one_row(x=7.0), bounds={"elsewhere": (0.0, 1.0), "y": (None, 5.0)}).n_rows


def test_out_of_training_range_is_counted_by_default() -> None:
    batch = validate(ParsedBatch(rows=[[11.0, 0.0, 3, True], [-1.0, 0.0, 300, True]]))
    assert batch.findings == {("x", "out_of_range"): 2, ("n", "out_of_range"): 1}


def test_out_of_training_range_is_refused_when_the_policy_says_so() -> None:
    error = refused(one_row(x=11.0), out_of_range="reject")
    assert [(d.field, d.problem, d.row) for d in error.details] == [("x", "out_of_range", 0)]
    assert "outside the training range [0, 10]" in error.message


def mixed_row(**values: object) -> ParsedBatch:
    row = {"age": 30, "city": "paris", "income": 10.0, "seen": None, **values}
    return ParsedBatch(records=[row])


def test_unseen_category_is_refused_by_default() -> None:
    with pytest.raises(SchemaError, match="row 0, 'city': unseen_category"):
        validate(mixed_row(city="berlin"), MIXED)


def test_unseen_category_is_counted_when_the_policy_says_so() -> None:
    batch = validate(mixed_row(city="berlin"), MIXED, unseen_category="count")
    assert batch.findings == {("city", "unseen_category"): 1, ("seen", "null"): 1}


def test_null_in_a_non_nullable_string_column_is_refused() -> None:
    with pytest.raises(SchemaError, match="'city': null"):
        validate(mixed_row(city=None), MIXED)


# --- the shape of the batch -------------------------------------------------------------------


@pytest.mark.parametrize(
    "parsed",
    [ParsedBatch(rows=[]), ParsedBatch(records=[]), ParsedBatch(columns={"x": []})],
    ids=["rows", "records", "columns"],
)
def test_empty_batch_is_refused(parsed: ParsedBatch) -> None:
    with pytest.raises(SchemaError, match="no rows"):
        validate(parsed)


def test_ragged_columns_are_refused() -> None:
    cols = {"x": [1.0, 2.0], "y": [1.0, 2.0], "n": [1], "flag": [True, False]}
    error = refused(ParsedBatch(columns=cols))
    assert [(d.field, d.problem) for d in error.details] == [("n", "ragged")]
    assert "1 values where the other columns have 2" in error.message


def test_too_many_rows_is_payload_too_large() -> None:
    with pytest.raises(PayloadTooLarge, match="4 rows; at most 3"):
        validate(ParsedBatch(rows=ROWS * 2), max_rows=3)


def test_extra_column_is_refused_in_records_and_columns() -> None:
    with pytest.raises(SchemaError, match="'extra': unknown_column"):
        validate(one_row(extra=1.0))
    cols = {**columns(ROWS, NUMERIC.names), "extra": [1, 2]}
    with pytest.raises(SchemaError, match="'extra': unknown_column"):
        validate(ParsedBatch(columns=cols))


def test_missing_column_is_refused_in_records_and_columns() -> None:
    row = {"x": 1.0, "y": 2.0, "n": 3}
    error = refused(ParsedBatch(records=[row, {**row, "flag": True}]))
    assert [(d.field, d.problem, d.row) for d in error.details] == [("flag", "missing_column", 0)]
    with pytest.raises(SchemaError, match="'flag': missing_column"):
        validate(ParsedBatch(columns={"x": [1.0], "y": [1.0], "n": [1]}))


def test_positional_row_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(
        SchemaError, match=r"row 1, '\*': wrong_length \(3 values; the model takes 4"
    ):
        validate(ParsedBatch(rows=[[1.0, 2.0, 3, True], [1.0, 2.0, 3]]))


def test_details_are_capped_but_the_message_counts_them_all() -> None:
    error = refused(ParsedBatch(rows=[[None, 1.0, 1, True]] * 100), max_details=5)
    assert len(error.details) == 5
    assert error.message.startswith("100 problems with the input: row 0, 'x': null")


# --- the DataFrame path -------------------------------------------------------------------------


def test_a_string_column_gives_a_dataframe_with_the_signature_dtypes() -> None:
    rows = [
        {"age": 30, "city": "paris", "income": None, "seen": "2024-05-01T12:00:00+02:00"},
        {"age": 45.0, "city": "rome", "income": 3.5, "seen": None},
    ]
    batch = validate(ParsedBatch(records=rows), MIXED)
    frame = batch.data
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == MIXED.names
    assert frame["age"].dtype == np.int64
    assert frame["age"].tolist() == [30, 45]
    assert frame["income"].dtype == np.float64
    assert np.isnan(frame["income"][0])
    assert pd.api.types.is_string_dtype(frame["city"])
    assert frame["city"].tolist() == ["paris", "rome"]
    assert frame["seen"][0] == pd.Timestamp("2024-05-01T10:00:00")  # offset made naive UTC
    assert pd.isna(frame["seen"][1])
    assert batch.findings == {("income", "null"): 1, ("seen", "null"): 1}


def test_numbers_in_a_string_column_become_text_and_booleans_are_refused() -> None:
    sig = Signature((ColumnSpec(name="code", dtype="string", categories=("7", "8")),))
    assert validate(ParsedBatch(rows=[[7], ["8"]]), sig).data["code"].tolist() == ["7", "8"]
    with pytest.raises(SchemaError, match="'code': expected_string"):
        validate(ParsedBatch(rows=[[True]]), sig)


def test_nullable_int_and_bool_columns_keep_nullable_dtypes() -> None:
    sig = Signature(
        (
            ColumnSpec(name="i", dtype="int", nullable=True),
            ColumnSpec(name="b", dtype="bool", nullable=True),
            ColumnSpec(name="s", dtype="string", nullable=True),
        )
    )
    frame = validate(ParsedBatch(rows=[[1, None, "a"], [None, True, None]]), sig).data
    assert str(frame["i"].dtype) == "Int64"
    assert str(frame["b"].dtype) == "boolean"
    assert frame["i"].tolist()[0] == 1
    assert pd.isna(frame["i"][1])
    assert pd.isna(frame["s"][1])


def test_bad_datetime_is_refused() -> None:
    with pytest.raises(SchemaError, match="'seen': expected_datetime"):
        validate(mixed_row(seen="yesterday"), MIXED)


# --- the value objects --------------------------------------------------------------------------


def test_policy_has_a_readable_repr_and_checks_its_values() -> None:
    assert repr(ValidationPolicy()) == (
        "ValidationPolicy(out_of_range='count', unseen_category='reject', bounds={}, "
        "max_rows=10000, max_details=50)"
    )
    with pytest.raises(InvalidInput, match="out_of_range must be 'count' or 'reject'"):
        ValidationPolicy(out_of_range="drop")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="low 5 is above high 1"):
        ValidationPolicy(bounds={"x": (5, 1)})


def test_parsed_batch_holds_exactly_one_layout() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ParsedBatch(rows=[], records=[])
    with pytest.raises(ValueError, match="exactly one"):
        ParsedBatch()
    assert ParsedBatch(columns={"a": [1, 2], "b": [1]}).n_rows == 2
