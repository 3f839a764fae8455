"""Feedback: joins in either order, de-duplication, unknown ids, label delays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.logbook.conftest import DAY, make_batch, window
from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import FeedbackItem, Logbook

NOW = datetime.now(UTC)


def labelled(book: Logbook) -> dict[tuple[str, int], dict[str, object]]:
    table = book.join_feedback("churn", *window())
    return {(r["request_id"], r["row"]): r for r in table.to_pylist()}


def test_feedback_flushed_before_its_prediction_still_joins(book: Logbook) -> None:
    book.log_feedback([FeedbackItem("early", row=1, label="yes", timestamp=DAY)])
    book.flush()
    book.log_predictions(make_batch("early"))
    book.flush()
    rows = labelled(book)
    assert rows["early", 1]["label_text"] == "yes"
    assert rows["early", 0]["label_text"] is None


def test_feedback_after_the_prediction_joins_with_its_delay(book: Logbook) -> None:
    book.log_predictions(make_batch("r", rows=3))
    book.flush()
    later = DAY + timedelta(hours=2, milliseconds=500)
    book.log_feedback(
        [FeedbackItem("r", row=2, label=1, outcome={"revenue": 9.5}, timestamp=later)]
    )
    book.flush()
    rows = labelled(book)
    hit = rows["r", 2]
    assert hit["label"] == 1.0
    assert hit["outcome_revenue"] == 9.5
    assert hit["feedback_timestamp"] == later
    assert hit["label_delay_s"] == pytest.approx(7200.5)
    assert rows["r", 0]["label"] is None
    assert rows["r", 0]["label_delay_s"] is None
    assert len(rows) == 3


def test_duplicates_keep_the_latest_received(book: Logbook) -> None:
    book.log_predictions(make_batch("r", rows=1))
    book.log_feedback([FeedbackItem("r", label=0), FeedbackItem("r", label=1)])
    book.flush()
    book.log_feedback([FeedbackItem("r", label=2), FeedbackItem("other", label=5)])
    book.log_feedback([FeedbackItem("r", label=3)])
    book.flush()
    feedback = book.read_feedback()
    assert sorted(feedback["request_id"].to_pylist()) == ["other", "r"]
    assert labelled(book)["r", 0]["label"] == 3.0


def test_feedback_for_unknown_ids_is_accepted_and_counted(book: Logbook) -> None:
    book.log_predictions(make_batch("known", rows=2))
    book.log_predictions(make_batch("elsewhere", rows=1, model="fraud"))
    accepted = book.log_feedback(
        [FeedbackItem("known", row=1, label=1), FeedbackItem("ghost"), FeedbackItem("elsewhere")]
    )
    book.flush()
    assert accepted == 3
    now = datetime.now(UTC)  # feedback is dated when received: now, not at the module's import
    span = (now - timedelta(minutes=5), now + timedelta(minutes=5))
    assert book.unmatched_feedback(None, *span, lookback=timedelta(days=400 * 50)) == 1
    assert book.unmatched_feedback("churn", *span, lookback=timedelta(days=400 * 50)) == 2
    assert book.join_feedback("churn", *window())["label"].drop_null().to_pylist() == [1.0]


def test_the_feedback_bound_refuses_what_does_not_fit(tmp_path: object) -> None:
    from watchkeeper.logbook import LogbookConfig

    book = Logbook(str(tmp_path), config=LogbookConfig(max_buffer_rows=2))
    assert book.log_feedback(FeedbackItem(f"r{i}") for i in range(3)) == 2
    assert book.stats.feedback_dropped == 1
    assert book.stats.feedback_buffered == 2
    book.close()
    assert book.stats.feedback_written == 2


def test_feedback_items_are_checked_when_made() -> None:
    with pytest.raises(InvalidInput, match="row must be an integer"):
        FeedbackItem("r", row=-1)
    with pytest.raises(InvalidInput, match="must be a number"):
        FeedbackItem("r", outcome={"revenue": "high"})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput, match="non-empty request_id"):
        FeedbackItem("")
    assert FeedbackItem("r").timestamp is not None


def test_predictions_without_any_feedback_join_to_nulls(book: Logbook) -> None:
    book.log_predictions(make_batch("r", rows=2))
    book.flush()
    table = book.join_feedback("churn", *window(), columns=["version"])
    assert table.column_names[:4] == ["request_id", "row", "timestamp", "version"]
    assert table["label"].null_count == 2
    assert table["label_delay_s"].null_count == 2


def test_the_feedback_window_is_when_it_was_received(book: Logbook) -> None:
    book.log_feedback([FeedbackItem("r", label=1, timestamp=DAY)])  # happened long ago
    book.flush()
    now = datetime.now(UTC)  # when it was received
    assert book.read_feedback(now - timedelta(minutes=5)).num_rows == 1
    assert book.read_feedback(now + timedelta(minutes=5)).num_rows == 0
    assert book.read_feedback(None, now - timedelta(minutes=5)).num_rows == 0
