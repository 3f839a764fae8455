"""The same column in every container reads and counts the same: numpy, pandas, pyarrow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring import _columns as columns_module
from watchkeeper.monitoring._columns import (
    _is_null,
    arrow_labels,
    count_labels,
    float_values,
    frame_columns,
    label_counts,
    read_column,
)
from watchkeeper.monitoring.profile import profile_frame

# One column per kind of label, each with nulls: what numpy/object arrays would hold.
COLUMNS = {
    "strings": ["b", None, "a", "b", "ß", "b", None],
    "ints": [3, 1, 3, 3, 2, 1, 3],
    "bools": [True, False, True, True, False, True, True],
    "floats": [1.0, 2.5, np.nan, 1.0, -0.0, 0.0, 3.0],
    "bytes": [b"x", b"y", b"x", None, b"x", b"y", b"x"],
}


def plain(column):
    """Values with every null (None, NaN, pd.NA) as None."""
    return [None if _is_null(v) else v for v in column.tolist()]


def containers(values):
    """The column as numpy (object) array, and every Arrow-backed form of it."""
    found = {"numpy": np.array(values, dtype=object) if None in values else np.array(values)}
    arrow = pa.array(values, from_pandas=True)
    found["pa.Array"] = arrow
    found["pa.ChunkedArray"] = pa.chunked_array([arrow.slice(0, 3), arrow.slice(3)])
    found["dictionary"] = pa.chunked_array([arrow.slice(0, 4).dictionary_encode(),
                                            arrow.slice(4).dictionary_encode()])  # fmt: skip
    found["ArrowDtype"] = pd.Series(arrow, dtype=pd.ArrowDtype(arrow.type))
    found["category"] = pd.Series(values, dtype="category")
    return found


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_labels_are_counted_alike_in_every_container(name):
    values = COLUMNS[name]
    expected = label_counts(read_column(np.array(values, dtype=object))[0])
    for container, column in containers(values).items():
        assert count_labels(column) == expected, container


def test_pandas_string_dtypes_count_as_object_strings():
    values = ["b", None, "a", "b", None, "c"]
    expected = ({"b": 2, "a": 1, "c": 1}, 2)
    for dtype in ("object", "str", "string[python]", "string[pyarrow]"):
        assert count_labels(pd.Series(values, dtype=dtype)) == expected, dtype


def test_arrow_labels_are_profiled_without_python_objects_and_alike(monkeypatch):
    values = ["b", None, "a", "b", None, "c"]
    expected = profile_frame({"s": np.array(values, dtype=object)}).to_dict()
    monkeypatch.setattr(columns_module, "_count_objects", None)  # no Counter on this path
    for column in (pd.Series(values, dtype="str"), pa.array(values).dictionary_encode()):
        assert arrow_labels(column)
        assert profile_frame({"s": column}).to_dict() == expected


def test_nullable_integers_label_as_pandas_reads_them():
    """Arrow integers with nulls are read as floats, like pandas' Int64: same labels."""
    values = [1, None, 2**60, 2]
    arrow = pa.array(values)
    assert count_labels(arrow) == count_labels(pd.Series(values, dtype="Int64"))
    assert count_labels(pa.array([1, 2**60])) == ({"1": 1, str(2**60): 1}, 0)


def test_arrow_columns_read_as_pandas_columns_of_the_same_type():
    cases = [
        (pa.array([1.5, None, 3.0]), pd.Series([1.5, None, 3.0]), "float"),
        (pa.array([1, None, 3]), pd.Series([1, None, 3], dtype="Int64"), "int"),
        (pa.array([1, 2, 3]), pd.Series([1, 2, 3]), "int"),
        (pa.array([True, None]), pd.Series([True, None], dtype="boolean"), "bool"),
        (pa.array(["a", None]), pd.Series(["a", None], dtype=object), "label"),
        (pa.array(["a", None]).dictionary_encode(), pd.Series(["a", None], dtype="category"),
         "label"),
    ]  # fmt: skip
    for arrow, series, kind in cases:
        got, got_kind = read_column(arrow)
        want, want_kind = read_column(series)
        assert (got_kind, want_kind) == (kind, kind)
        assert plain(got) == plain(want)
    assert plain(float_values(pa.chunked_array([[1.0], [None]]))) == [1.0, None]
    assert np.isnan(float_values(pa.nulls(2))).all()


def test_unsupported_arrow_types_are_refused():
    with pytest.raises(InvalidInput, match="cannot profile values of dtype timestamp"):
        read_column(pa.array([np.datetime64("2024-01-01", "s")]))
    with pytest.raises(InvalidInput, match="cannot profile values of dtype list"):
        count_labels(pa.array([[1], [2]]))


def test_frame_columns_of_tables_batches_frames_and_mappings():
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    for frame in (table, table.to_batches()[0], table.to_pandas(), {"a": [1, 2], "b": [0, 0]}):
        assert list(frame_columns(frame)) == ["a", "b"]
    twice = pa.table([pa.array([1]), pa.array([2])], names=["a", "a"])
    assert frame_columns(twice)["a"].to_pylist() == [2]
    with pytest.raises(InvalidInput, match="'a' appears twice"):
        frame_columns(twice, unique=True)
    with pytest.raises(InvalidInput, match="expected a DataFrame"):
        frame_columns([1, 2])
