"""Wire protocols: every accepted shape, every refusal, the rendered answers, and fuzzing."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchkeeper.errors import (
    Detail,
    MalformedRequest,
    PayloadTooLarge,
    SchemaError,
    UnsupportedMediaType,
    WatchkeeperError,
)
from watchkeeper.models.signature import ColumnSpec, Signature
from watchkeeper.serving.batch import ParsedBatch
from watchkeeper.serving.protocols import _bounds, _json, kserve_v1, mlflow, v2
from watchkeeper.serving.validation import Validator

SIG = Signature(
    (
        ColumnSpec(name="a", dtype="float"),
        ColumnSpec(name="b", dtype="int", nullable=True),
        ColumnSpec(name="c", dtype="float"),
    )
)
NAMES = SIG.names
ROWS = [[1.5, 2, -3.0], [4.0, None, 6.25]]
EXPECTED = np.array([[1.5, 2.0, -3.0], [4.0, np.nan, 6.25]])
RECORDS = [dict(zip(NAMES, row, strict=True)) for row in ROWS]
COLUMNS = {name: [row[i] for row in ROWS] for i, name in enumerate(NAMES)}
TEXT_SIG = Signature(
    (
        ColumnSpec(name="city", dtype="string", categories=("paris", "rome")),
        ColumnSpec(name="x", dtype="float"),
    )
)
JSON = "application/json"


def body(obj: Any) -> bytes:
    return orjson.dumps(obj)


def tensor(name: str, shape: list[int], data: Any, datatype: str = "FP64") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def v2_columns() -> list[dict[str, Any]]:
    return [tensor(n, [2], COLUMNS[n]) for n in NAMES]


PARSERS = {
    "v1-instances-records": lambda: kserve_v1.parse(body({"instances": RECORDS}), NAMES),
    "v1-instances-rows": lambda: kserve_v1.parse(body({"instances": ROWS}), NAMES),
    "v1-inputs-columns": lambda: kserve_v1.parse(body({"inputs": COLUMNS}), NAMES),
    "v1-inputs-list": lambda: kserve_v1.parse(body({"inputs": ROWS}), None),
    "mlflow-split": lambda: mlflow.parse(
        body({"dataframe_split": {"columns": NAMES, "data": ROWS, "index": [7, 8]}}), JSON, NAMES
    ),
    "mlflow-split-reordered": lambda: mlflow.parse(
        body(
            {
                "dataframe_split": {
                    "columns": ["c", "a", "b"],
                    "data": [[-3.0, 1.5, 2], [6.25, 4.0, None]],
                }
            }
        ),
        JSON,
        NAMES,
    ),
    "mlflow-split-no-columns": lambda: mlflow.parse(
        body({"dataframe_split": {"data": ROWS}}), JSON, None
    ),
    "mlflow-records": lambda: mlflow.parse(body({"dataframe_records": RECORDS}), JSON, NAMES),
    "mlflow-instances": lambda: mlflow.parse(body({"instances": RECORDS}), JSON, NAMES),
    "mlflow-inputs-list": lambda: mlflow.parse(body({"inputs": ROWS}), JSON, NAMES),
    "mlflow-inputs-dict": lambda: mlflow.parse(
        body({"inputs": COLUMNS, "params": {"anything": 1}}),
        "application/json; charset=utf-8",
        NAMES,
    ),
    "mlflow-csv": lambda: mlflow.parse(b"c,a,b\r\n-3,1.5,2\r\n6.25,4,\r\n", "text/csv", NAMES),
    "v2-columns": lambda: v2.parse(body({"inputs": v2_columns()}), SIG),
    "v2-columns-n-by-1": lambda: v2.parse(
        body({"inputs": [tensor(n, [2, 1], [[v] for v in COLUMNS[n]]) for n in NAMES]}), SIG
    ),
    "v2-2d-flat": lambda: v2.parse(
        body({"inputs": [tensor("input-0", [2, 3], [x for r in ROWS for x in r])]}), SIG
    ),
    "v2-2d-nested": lambda: v2.parse(body({"inputs": [tensor("input-0", [2, 3], ROWS)]}), SIG),
}


@pytest.mark.parametrize("name", list(PARSERS))
def test_every_accepted_shape_validates_to_the_same_array(name: str) -> None:
    batch = Validator(SIG).validate(PARSERS[name]())
    np.testing.assert_array_equal(batch.data, EXPECTED)
    assert batch.findings == {("b", "null"): 1}


def validated(parsed: ParsedBatch, sig: Signature = SIG) -> Any:
    return Validator(sig).validate(parsed).data


# --- KServe v1 ----------------------------------------------------------------------------------


def test_v1_scalar_instances_for_a_one_input_model() -> None:
    sig = Signature((ColumnSpec(name="x", dtype="float"),))
    parsed = kserve_v1.parse(b'{"instances": [0.5, 2]}', ["x"])
    np.testing.assert_array_equal(validated(parsed, sig), [[0.5], [2.0]])


def test_v1_scalar_instances_need_a_one_input_model() -> None:
    with pytest.raises(MalformedRequest, match="only a model with exactly one input"):
        kserve_v1.parse(b'{"instances": [0.5, 2]}', NAMES)


@pytest.mark.parametrize(
    "payload",
    [{}, {"instances": [], "inputs": {}}, {"rows": ROWS}, [ROWS]],
    ids=["none", "both", "other", "not-an-object"],
)
def test_v1_needs_exactly_one_of_instances_or_inputs(payload: Any) -> None:
    with pytest.raises(MalformedRequest, match='either "instances"'):
        kserve_v1.parse(body(payload), NAMES)


def test_v1_mixed_instances_name_the_first_odd_row() -> None:
    with pytest.raises(MalformedRequest, match="row 1 differs from row 0") as info:
        kserve_v1.parse(body({"instances": [RECORDS[0], ROWS[1]]}), NAMES)
    assert info.value.details == [Detail("instances", "mixed_rows", 1)]


def test_v1_return_probabilities_flag() -> None:
    assert kserve_v1.parse(
        body({"instances": ROWS, "return_probabilities": True}), NAMES
    ).return_probabilities
    assert not kserve_v1.parse(body({"instances": ROWS}), NAMES).return_probabilities
    with pytest.raises(MalformedRequest, match="must be true or false"):
        kserve_v1.parse(body({"instances": ROWS, "return_probabilities": "yes"}), NAMES)


def test_v1_column_that_is_not_a_list() -> None:
    with pytest.raises(MalformedRequest, match="'a' is not") as info:
        kserve_v1.parse(body({"inputs": {"a": 1.0, "b": [1], "c": [2.0]}}), NAMES)
    assert info.value.details == [Detail("a", "not_an_array")]


def test_v1_invalid_json() -> None:
    with pytest.raises(MalformedRequest, match="request body is not valid JSON"):
        kserve_v1.parse(b'{"instances": [1,', NAMES)


def test_v1_string_in_a_float_column_is_a_schema_error_naming_row_and_field() -> None:
    parsed = kserve_v1.parse(body({"instances": [RECORDS[0], {**RECORDS[1], "c": "x"}]}), NAMES)
    with pytest.raises(SchemaError, match="row 1, 'c': expected_number") as info:
        validated(parsed)
    assert info.value.http_status == 422


def test_v1_render() -> None:
    out = orjson.loads(
        kserve_v1.render(
            model="iris",
            version=3,
            request_id="r1",
            predictions=np.array([0, 2]),
            probabilities=np.array([[0.9, 0.1], [0.2, 0.8]]),
        )
    )
    assert out == {
        "predictions": [0, 2],
        "probabilities": [[0.9, 0.1], [0.2, 0.8]],
        "model": "iris",
        "model_version": "3",
        "request_id": "r1",
    }
    plain = orjson.loads(
        kserve_v1.render(model="m", version="2", request_id=None, predictions=np.array(["x"]))
    )
    assert plain == {"predictions": ["x"], "model": "m", "model_version": "2", "request_id": None}


# --- MLflow -------------------------------------------------------------------------------------

ALLOWED = "dataframe_split, dataframe_records, instances, inputs"


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_records": RECORDS, "instances": ROWS},
        {},
        {"params": {}},
        {"columns": NAMES, "data": ROWS},
    ],
    ids=["two", "none", "only-params", "old-format"],
)
def test_mlflow_needs_exactly_one_input_field(payload: Any) -> None:
    with pytest.raises(MalformedRequest, match=ALLOWED) as info:
        mlflow.parse(body(payload), JSON, NAMES)
    assert info.value.http_status == 400


@pytest.mark.parametrize("content_type", ["text/plain", "", "application/x-www-form-urlencoded"])
def test_mlflow_unsupported_content_type(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType, match="send application/json or text/csv") as info:
        mlflow.parse(body({"instances": ROWS}), content_type, NAMES)
    assert info.value.http_status == 415


def test_mlflow_json_in_another_charset() -> None:
    raw = '{"dataframe_records": [{"city": "rome", "x": 1}]}'.encode("utf-16")
    frame = validated(mlflow.parse(raw, "application/json; charset=UTF-16", None), TEXT_SIG)
    assert frame["city"].tolist() == ["rome"]
    with pytest.raises(UnsupportedMediaType, match="unknown charset"):
        mlflow.parse(raw, "application/json; charset=klingon", None)


def test_mlflow_csv_types_each_column_and_keeps_text() -> None:
    parsed = mlflow.parse(b"city,x\nparis,1\nrome,2.5\n", "text/csv; charset=utf-8", None)
    assert parsed.columns == {"city": ["paris", "rome"], "x": [1, 2.5]}
    frame = validated(parsed, TEXT_SIG)
    assert frame["city"].tolist() == ["paris", "rome"]
    assert frame["x"].tolist() == [1.0, 2.5]


def test_mlflow_csv_booleans_and_empty_cells() -> None:
    parsed = mlflow.parse(b"f,g\nTrue,\nfalse,x\n", "text/csv", None)
    assert parsed.columns == {"f": [True, False], "g": [None, "x"]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "needs a header row"),
        (b"a,b,c\n1,2\n", "CSV row 0 has 2 cells; the header has 3"),
        (b"a,a\n1,2\n", "names a column twice"),
    ],
)
def test_mlflow_bad_csv(raw: bytes, message: str) -> None:
    with pytest.raises(MalformedRequest, match=message):
        mlflow.parse(raw, "text/csv", NAMES)


def test_mlflow_split_row_of_the_wrong_length() -> None:
    payload = {"dataframe_split": {"columns": ["c", "a", "b"], "data": [[1.0, 2.0]]}}
    with pytest.raises(MalformedRequest, match="row 0 of dataframe_split.data"):
        mlflow.parse(body(payload), JSON, NAMES)


def test_mlflow_records_must_be_objects() -> None:
    with pytest.raises(MalformedRequest, match='row 1 of "dataframe_records" is not an object'):
        mlflow.parse(body({"dataframe_records": [RECORDS[0], [1, 2, 3]]}), JSON, NAMES)


def test_mlflow_render_is_a_plain_predictions_list() -> None:
    assert orjson.loads(mlflow.render(np.array([1.5, 2.0]))) == {"predictions": [1.5, 2.0]}
    assert orjson.loads(mlflow.render(np.array(["a", "b"], dtype=object))) == {
        "predictions": ["a", "b"]
    }
    with_probs = orjson.loads(mlflow.render([1], np.array([[0.25, 0.75]])))
    assert with_probs == {"predictions": [1], "probabilities": [[0.25, 0.75]]}


# --- Open Inference Protocol (v2) ---------------------------------------------------------------


def test_v2_id_is_parsed_and_echoed() -> None:
    parsed = v2.parse(body({"id": "abc-1", "inputs": v2_columns()}), SIG)
    assert parsed.request_id == "abc-1"
    out = orjson.loads(
        v2.render(model="m", version=1, request_id=parsed.request_id, predictions=np.array([1, 0]))
    )
    assert out["id"] == "abc-1"
    without = orjson.loads(v2.render(model="m", version=1, request_id=None, predictions=[1.0]))
    assert "id" not in without


def test_v2_bytes_tensor_for_a_string_column() -> None:
    inputs = [
        tensor("city", [2], ["rome", "paris"], "BYTES"),
        tensor("x", [2, 1], [[1], [2]], "INT64"),
    ]
    frame = validated(v2.parse(body({"inputs": inputs}), TEXT_SIG), TEXT_SIG)
    assert isinstance(frame, pd.DataFrame)
    assert frame["city"].tolist() == ["rome", "paris"]
    assert frame["x"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("inputs", "message", "detail"),
    [
        (
            [tensor("a", [3], [1.0, 2.0])],
            r"shape \[3\] holds 3 values but data has 2",
            "shape_mismatch",
        ),
        ([tensor("a", [2], [1.0, 2.0], "FP128")], "unknown datatype 'FP128'", "unknown_datatype"),
        (
            [tensor("a", [2], ["x", 2.0], "FP32")],
            "declared FP32 but holds string 'x'",
            "datatype_mismatch",
        ),
        (
            [tensor("a", [2], [1.5, 2], "INT64")],
            "declared INT64 but holds number 1.5",
            "datatype_mismatch",
        ),
        ([tensor("a", [1, 1, 2], [1.0, 2.0])], "has 3 dimensions", "bad_shape"),
        ([tensor("a", [2], [[1.0], 2.0])], "flat or evenly nested", "bad_data"),
        (
            [tensor("a", [2, 2], [1.0] * 4), tensor("b", [2], [1, 2], "INT64")],
            "one .n. or .n, 1. tensor per column",
            "bad_shape",
        ),
        ([tensor("a", [1], [1.0]), tensor("a", [1], [1.0])], "sent twice", "duplicate"),
    ],
)
def test_v2_malformed_tensors(inputs: list[Any], message: str, detail: str) -> None:
    with pytest.raises(MalformedRequest, match=message) as info:
        v2.parse(body({"inputs": inputs}), SIG)
    assert info.value.details[0].problem == detail


def test_v2_missing_fields_are_named() -> None:
    with pytest.raises(MalformedRequest, match="inputs\\[0\\] lacks shape, data") as info:
        v2.parse(body({"inputs": [{"name": "a", "datatype": "FP64"}]}), SIG)
    assert [d.field for d in info.value.details] == ["inputs[0].shape", "inputs[0].data"]
    with pytest.raises(MalformedRequest, match='"inputs" must be a non-empty list'):
        v2.parse(b'{"id": "x"}', SIG)


def test_v2_asking_for_probabilities() -> None:
    by_output = {"inputs": v2_columns(), "outputs": [{"name": "probabilities"}]}
    by_parameter = {"inputs": v2_columns(), "parameters": {"return_probabilities": True}}
    assert v2.parse(body(by_output), SIG).return_probabilities
    assert v2.parse(body(by_parameter), SIG).return_probabilities
    assert not v2.parse(body({"inputs": v2_columns()}), SIG).return_probabilities


def test_v2_render_derives_datatypes_and_flattens_probabilities() -> None:
    out = orjson.loads(
        v2.render(
            model="iris",
            version=4,
            request_id="q",
            predictions=np.array([1, 0], dtype=np.int32),
            probabilities=[[0.25, 0.75], [0.5, 0.5]],
        )
    )
    assert out == {
        "model_name": "iris",
        "model_version": "4",
        "id": "q",
        "outputs": [
            {"name": "predictions", "datatype": "INT32", "shape": [2], "data": [1, 0]},
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": [2, 2],
                "data": [0.25, 0.75, 0.5, 0.5],
            },
        ],
    }


@pytest.mark.parametrize(
    ("predictions", "datatype", "data"),
    [
        (np.array(["setosa", "virginica"]), "BYTES", ["setosa", "virginica"]),
        (np.array(["setosa", "virginica"], dtype=object), "BYTES", ["setosa", "virginica"]),
        (np.array([0.5, 1.0], dtype=np.float32), "FP32", [0.5, 1.0]),
        (np.array([True, False]), "BOOL", [True, False]),
        (np.array([3, 4], dtype=np.uint8), "UINT8", [3, 4]),
        (np.array([1, 2], dtype=object), "INT64", [1, 2]),
    ],
)
def test_v2_render_datatypes(predictions: Any, datatype: str, data: list[Any]) -> None:
    out = orjson.loads(v2.render(model="m", version=1, request_id=None, predictions=predictions))
    assert out["outputs"] == [
        {"name": "predictions", "datatype": datatype, "shape": [2], "data": data}
    ]


def test_v2_metadata() -> None:
    meta = v2.metadata("iris", [3], TEXT_SIG, probabilities=True)
    assert meta == {
        "name": "iris",
        "versions": ["3"],
        "platform": "watchkeeper",
        "inputs": [
            {"name": "city", "datatype": "BYTES", "shape": [-1]},
            {"name": "x", "datatype": "FP64", "shape": [-1]},
        ],
        "outputs": [
            {"name": "predictions", "datatype": "FP64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, -1]},
        ],
    }
    server = v2.server_metadata()
    assert server["name"] == "watchkeeper"
    assert server["extensions"] == ["binary_tensor_data"]
    assert isinstance(server["version"], str)


# --- shared JSON helpers ------------------------------------------------------------------------


def test_error_body() -> None:
    error = SchemaError(
        "1 problem", details=[Detail("a", "null", 0), Detail("b", "missing_column")]
    )
    assert orjson.loads(_json.error_body(error)) == {
        "error": {
            "code": "schema_error",
            "message": "1 problem",
            "details": [
                {"field": "a", "problem": "null", "row": 0},
                {"field": "b", "problem": "missing_column"},
            ],
        }
    }


def test_dumps_handles_numpy_and_pandas() -> None:
    obj = {
        "strided": np.arange(6)[::2],
        "nan": np.array([np.nan, 1.0]),
        "scalar": np.float32(0.5),
        "series": pd.Series([1, None], dtype="Int64"),
    }
    assert orjson.loads(_json.dumps(obj)) == {
        "strided": [0, 2, 4],
        "nan": [None, 1.0],
        "scalar": 0.5,
        "series": [1, None],
    }


# --- fuzzing: any JSON value, in any protocol, fails only with our own errors -------------------

MIXED_SIG = Signature(
    (
        ColumnSpec(name="a", dtype="float", min=0.0, max=1.0),
        ColumnSpec(name="b", dtype="int", nullable=True),
        ColumnSpec(name="s", dtype="string", categories=("x", "y")),
        ColumnSpec(name="t", dtype="datetime", nullable=True),
        ColumnSpec(name="f", dtype="bool"),
    )
)
BOOL_SIG = Signature((ColumnSpec(name="a", dtype="float"), ColumnSpec(name="f", dtype="bool")))
SIGNATURES = [SIG, MIXED_SIG, BOOL_SIG]
KEYS = st.sampled_from(["a", "b", "c", "s", "t", "f", "name", "shape", "data", "datatype"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["x", "2024-01-01", "FP64", "BYTES", "probabilities"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=25,
)
TENSORS = st.fixed_dictionaries(
    {
        "name": KEYS,
        "shape": st.lists(st.integers(min_value=0, max_value=3), max_size=3) | VALUES,
        "datatype": st.sampled_from(["FP64", "INT64", "BOOL", "BYTES"]) | VALUES,
        "data": VALUES,
    }
)
# near-valid rows, so that fuzzing reaches the value checks and the happy path too
NEAR = st.one_of(
    st.integers(0, 3),
    st.floats(0, 1),
    st.none(),
    st.booleans(),
    st.sampled_from(["x", "2024-01-01"]),
)
NEAR_RECORDS = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c", "s", "t", "f"]), NEAR, min_size=2, max_size=6),
    min_size=1,
    max_size=4,
)
NEAR_ROWS = st.lists(st.lists(NEAR, min_size=2, max_size=5), min_size=1, max_size=4)
BODIES = (
    VALUES
    | NEAR_RECORDS.map(lambda r: {"instances": r})
    | NEAR_ROWS.map(lambda r: {"dataframe_split": {"data": r}})
    | NEAR_ROWS.map(
        lambda r: {
            "inputs": [{"name": "x", "shape": [len(r), len(r[0])], "datatype": "FP64", "data": r}]
        }
    )
    | VALUES.map(lambda v: {"instances": v})
    | VALUES.map(lambda v: {"inputs": v})
    | VALUES.map(lambda v: {"dataframe_split": v})
    | VALUES.map(lambda v: {"dataframe_records": v})
    | st.lists(VALUES, max_size=3).map(
        lambda v: {"dataframe_split": {"columns": ["a", "b", "c"], "data": v}}
    )
    | st.lists(TENSORS, max_size=3).map(lambda t: {"inputs": t, "id": "x"})
)


def parse_everywhere(raw: bytes, sig: Signature) -> list[ParsedBatch]:
    names = sig.names
    attempts = [
        lambda: kserve_v1.parse(raw, names),
        lambda: kserve_v1.parse(raw, names[:1]),
        lambda: mlflow.parse(raw, JSON, names),
        lambda: mlflow.parse(raw, "text/csv", names),
        lambda: v2.parse(raw, sig),
        lambda: v2.parse(raw, None),
    ]
    parsed = []
    for attempt in attempts:
        try:
            parsed.append(attempt())
        except WatchkeeperError:
            pass
    return parsed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BODIES)
def test_any_json_fails_only_with_watchkeeper_errors(value: Any) -> None:
    raw = json.dumps(value).encode()  # orjson refuses integers beyond 64 bits; clients may not
    for sig in SIGNATURES:
        for parsed in parse_everywhere(raw, sig):
            try:
                Validator(sig).validate(parsed)
            except WatchkeeperError:
                pass


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_any_csv_fails_only_with_watchkeeper_errors(text: str) -> None:
    for sig in SIGNATURES:
        try:
            parsed = mlflow.parse(text.encode(), "text/csv", sig.names)
            Validator(sig).validate(parsed)
        except WatchkeeperError:
            pass


# --- bounds before allocation (issue 16, item 5) ----------------------------------------------


@pytest.mark.parametrize(
    ("shape", "error", "problem"),
    [
        ([30_000_000, 0], PayloadTooLarge, "too_many_rows"),
        ([11, 1], PayloadTooLarge, "too_many_rows"),
        ([2, 2**30], PayloadTooLarge, "too_large"),
        ([2, 0], MalformedRequest, "bad_shape"),
        ([-1], MalformedRequest, "bad_shape"),
        ([2**31], MalformedRequest, "bad_shape"),
        ([True], MalformedRequest, "bad_shape"),
        ([1, 1, 1], MalformedRequest, "bad_shape"),
        ([3], MalformedRequest, "shape_mismatch"),
    ],
)
def test_v2_declared_shapes_are_checked_before_data_is_laid_out(
    shape: list[Any], error: type[WatchkeeperError], problem: str
) -> None:
    with pytest.raises(error, match="input 'a'") as info:
        v2.parse(body({"inputs": [tensor("a", shape, [1.0])]}), SIG, max_rows=10)
    assert info.value.details[0].problem == problem


@pytest.mark.parametrize(
    "request_body",
    [
        {"instances": [[1.0]] * 3000},
        {"inputs": {"a": [1.0] * 3000}},
        {"instances": [{"a": 1}] * 3000},
    ],
)
def test_json_holding_more_values_than_the_row_limit_allows_is_refused_unparsed(
    request_body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kserve_v1, "loads", lambda body: pytest.fail("parsed"))
    with pytest.raises(PayloadTooLarge, match="at most 1 rows") as info:
        kserve_v1.parse(body(request_body), ["a"], max_rows=1)
    assert info.value.details == [Detail("*", "too_many_values")]
    assert _bounds.max_values(1, 1) < 3000  # the cases above are over it


def test_commas_and_escaped_quotes_inside_strings_are_not_counted() -> None:
    text = ',\\",\\\\' * 2000
    request_body = body({"instances": [{"a": 1.0, text: 1}]})
    assert request_body.count(b",") > _bounds.max_values(1, 1)
    parsed = kserve_v1.parse(request_body, ["a"], max_rows=1)
    assert parsed.records == [{"a": 1.0, text: 1}]


def test_csv_lines_and_cells_are_bounded_but_quoted_newlines_are_not_rows() -> None:
    with pytest.raises(PayloadTooLarge, match="holds more than 7 lines; at most 5 rows"):
        mlflow.parse(b"a\n" + b"1\n" * 10 + b"1", "text/csv", ["a"], max_rows=5)
    with pytest.raises(PayloadTooLarge, match="cells"):
        mlflow.parse(b"a" + b",b" * 5000 + b"\n", "text/csv", ["a"], max_rows=5)
    quoted = b'a\n"' + b"x\n" * 50 + b'"\n'
    parsed = mlflow.parse(quoted, "text/csv", ["a"], max_rows=5)
    assert parsed.columns == {"a": ["x\n" * 50]}


def test_errors_clip_what_the_client_sent() -> None:
    huge = "v" * 100_000
    error = MalformedRequest(f"bad {huge}", details=[Detail(huge, huge)] * 500)
    assert len(error.message) < 1100
    assert error.message.endswith(f"({len(huge) + 4} chars)")
    assert len(error.details) == 100
    assert error.details[0].field == "v" * 200 + f"… ({len(huge)} chars)"
    assert error.details[-1] == Detail("*", "401 more problems not listed")
    assert len(_json.error_body(error)) < 50_000
