"""One encoding per signature type in the logbook: bool features are stored as booleans, and
segments that held them as 0.0/1.0 (before issue 19) read back as booleans too; labels of any
type are kept by type."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tests.logbook.conftest import make_batch, window
from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import FeedbackItem, Logbook
from watchkeeper.logbook.records import as_booleans, merged_values, typed_features
from watchkeeper.models.signature import ColumnSpec, Signature

SIGNATURE = Signature((ColumnSpec(name="age", dtype="float"),
                       ColumnSpec(name="member", dtype="bool", nullable=True)))  # fmt: skip
SERVED = np.array([[31.0, 1.0], [45.0, 0.0], [52.0, np.nan]])  # serving's float64 batch
NAMES = ["age", "member"]


def test_a_bool_feature_is_stored_as_booleans_whatever_the_batch_carried(book: Logbook) -> None:
    book.log_predictions(
        make_batch("served", rows=3, features=SERVED, feature_names=NAMES, signature=SIGNATURE)
    )
    frame = pd.DataFrame({"age": [1.0, 2.0],
                          "member": pd.array([False, None], dtype="boolean")})  # fmt: skip
    book.log_predictions(make_batch("frame", rows=2, features=frame, feature_names=NAMES))
    book.flush()
    table = book.read("churn", *window())
    assert table.schema.field("feature_member").type == pa.bool_()
    assert table.schema.field("feature_age").type == pa.float64()
    by_id = {}
    for rid, member in zip(table["request_id"].to_pylist(), table["feature_member"].to_pylist(),
                           strict=True):  # fmt: skip
        by_id.setdefault(rid, []).append(member)
    assert by_id == {"served": [True, False, None], "frame": [False, None]}


def test_old_float_segments_and_new_bool_ones_read_back_as_booleans(book: Logbook) -> None:
    # the old writer: no signature, the bool column as 0.0/1.0 floats
    book.log_predictions(make_batch("old", rows=3, features=SERVED, feature_names=NAMES))
    book.flush()
    book.log_predictions(
        make_batch("new", rows=3, features=SERVED, feature_names=NAMES, signature=SIGNATURE)
    )
    book.flush()
    table = book.read("churn", *window(), columns=["request_id", "feature_member"])
    assert table.schema.field("feature_member").type == pa.float64()  # unified losslessly
    typed = typed_features(table, {"feature_member": "bool"})
    assert typed.schema.field("feature_member").type == pa.bool_()
    pairs = zip(typed["request_id"].to_pylist(), typed["feature_member"].to_pylist(), strict=True)
    expected = [(rid, value) for rid in ("old", "new") for value in (True, False, None)]
    assert sorted(pairs, key=str) == sorted(expected, key=str)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (pa.array([1.0, 0.0, None]), [True, False, None]),
        (pa.array([1, 0, None], type=pa.int64()), [True, False, None]),
        (
            pa.array(["true", "0", "False", " 1 ", None, "x"]),
            [True, False, False, True, None, None],
        ),
        (pa.array([None, None], type=pa.null()), [None, None]),
        (pa.array([True, None]), [True, None]),
    ],
)
def test_as_booleans_reads_every_form_a_bool_feature_was_stored_in(stored, expected) -> None:
    assert as_booleans(stored).to_pylist() == expected


def test_labels_are_kept_by_type_and_a_nan_label_is_no_label(book: Logbook) -> None:
    book.log_predictions(make_batch("r", rows=5))
    labels = ["churned", True, 2, math.nan, pd.NA]
    book.log_feedback([FeedbackItem("r", row=i, label=label) for i, label in enumerate(labels)])
    book.flush()
    joined = book.join_feedback("churn", *window())
    merged = merged_values(joined, "label", "label_text").tolist()
    assert merged == ["churned", 1.0, 2.0, None, None]
    assert joined["label"].null_count == 3  # NaN is stored as null, not as a NaN label


@pytest.mark.parametrize(("label", "problem"), [([1], "got list"), ({"a": 1}, "got dict"),
                                               (math.inf, "finite")])  # fmt: skip
def test_a_label_that_no_model_predicts_is_refused_when_it_arrives(label, problem) -> None:
    with pytest.raises(InvalidInput, match=problem):
        FeedbackItem("r", label=label)
