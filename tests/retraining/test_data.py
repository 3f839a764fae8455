"""The rows retraining learns from: labels of any type the model predicts join their rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import FeedbackItem, Logbook, PredictionBatch
from watchkeeper.retraining.data import LABEL, labelled

NOW = datetime.now(UTC).replace(microsecond=0)
FEATURES = ["a", "b"]


def _book(tmp_path: Path, labels: list[object]) -> Logbook:
    book = Logbook(str(tmp_path / "logbook"))
    features = np.arange(2 * len(labels), dtype=float).reshape(-1, 2)
    book.log_predictions(PredictionBatch(
        request_id="r", model="m", version=1, role="primary", timestamp=NOW - timedelta(hours=1),
        features=features, feature_names=FEATURES, predictions=np.zeros(len(labels)),
        probabilities=None, classes=None, latency_s=0.001,
    ))  # fmt: skip
    book.log_feedback(FeedbackItem(request_id="r", row=i, label=label, timestamp=NOW)
                      for i, label in enumerate(labels) if label is not None)  # fmt: skip
    book.flush()
    return book


def test_text_labels_join_their_rows(tmp_path: Path) -> None:
    """Promise: labels sent as text ("churned") are training labels, not dropped rows."""
    with _book(tmp_path, ["churned", None, "stayed", "churned"]) as book:
        frame = labelled(book, "m", NOW - timedelta(days=1), NOW + timedelta(hours=1), FEATURES)
    assert frame[LABEL].tolist() == ["churned", "stayed", "churned"]
    assert frame["a"].tolist() == [0.0, 4.0, 6.0]  # rows 0, 2 and 3: row 1 has no label


def test_numeric_labels_stay_numbers(tmp_path: Path) -> None:
    with _book(tmp_path, [1, 0, None, 1]) as book:
        frame = labelled(book, "m", NOW - timedelta(days=1), NOW + timedelta(hours=1), FEATURES)
    assert frame[LABEL].tolist() == [1.0, 0.0, 1.0]
    assert frame[LABEL].dtype == np.float64


def test_labels_mixing_text_and_numbers_are_refused(tmp_path: Path) -> None:
    with (
        _book(tmp_path, ["churned", 1, "stayed"]) as book,
        pytest.raises(InvalidInput, match="mix text and numbers"),
    ):
        labelled(book, "m", NOW - timedelta(days=1), NOW + timedelta(hours=1), FEATURES)
