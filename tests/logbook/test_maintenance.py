"""Compaction and pruning."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from tests.logbook.conftest import DAY, FAST, make_batch, window
from watchkeeper.logbook import FeedbackItem, Logbook
from watchkeeper.logbook.store import SegmentStore

ORDER = [("request_id", "ascending"), ("row", "ascending")]


def segments(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def fill(book: Logbook) -> None:
    for i in range(4):
        book.log_predictions(make_batch(f"a{i}", rows=3, seed=i))
        book.log_predictions(make_batch(f"b{i}", version=2, feature_names=["age", "city"], seed=i))
        book.log_predictions(make_batch(f"o{i}", timestamp=DAY - timedelta(days=3)))
        book.log_feedback([FeedbackItem(f"a{i}", label=i)])
        book.flush()


def test_compaction_keeps_the_rows_in_fewer_files(tmp_path: Path) -> None:
    book = Logbook(str(tmp_path), config=FAST)
    fill(book)
    before = book.read("churn", *window(5)).sort_by(
        [("request_id", "ascending"), ("row", "ascending")]
    )
    joined = book.join_feedback("churn", *window(5))["label"].drop_null()
    files = len(segments(tmp_path))
    removed = book.compact()
    assert removed == files == 12  # 4 flushes x (2 prediction days + 1 feedback day)
    assert len(segments(tmp_path)) == 3
    after = book.read("churn", *window(5)).sort_by(
        [("request_id", "ascending"), ("row", "ascending")]
    )
    assert after.equals(before.select(after.column_names))
    assert sorted(
        book.join_feedback("churn", *window(5))["label"].drop_null().to_pylist()
    ) == sorted(joined.to_pylist())
    assert book.compact() == 0


def test_a_compaction_cut_short_before_its_deletes_shows_no_duplicates(tmp_path: Path) -> None:
    book = Logbook(str(tmp_path), config=FAST)
    fill(book)
    day_dir = tmp_path / "predictions" / "model=churn" / "date=2024-03-05"
    parts = sorted(day_dir.glob("*.parquet"))
    saved = tmp_path / "saved"
    saved.mkdir()
    for part in parts:
        shutil.copy(part, saved / part.name)
    book.compact(model="churn", day="2024-03-05")
    for part in parts:  # as if the process died between the rename and the deletes
        shutil.copy(saved / part.name, part)
    assert book.read("churn", *window()).num_rows == 4 * (3 + 2)
    assert book.compact(model="churn", day=DAY.date()) == len(parts)  # the leftovers
    assert book.read("churn", *window()).num_rows == 4 * (3 + 2)


def test_prune_removes_only_old_days(tmp_path: Path) -> None:
    book = Logbook(str(tmp_path), config=FAST)
    fill(book)
    removed = book.prune(timedelta(days=2), now=DAY)
    assert removed == 1
    assert book.read("churn", *window(5)).num_rows == 4 * (3 + 2)
    assert not (tmp_path / "predictions" / "model=churn" / "date=2024-03-02").exists()
    assert book.read_feedback().num_rows == 4  # received today: kept


def test_a_segment_vanishing_between_listing_and_reading_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = Logbook(str(tmp_path), config=FAST)
    fill(book)
    listed = SegmentStore.segments
    calls: list[str] = []

    def stale_once(self: SegmentStore, directory: str) -> list[str]:
        calls.append(directory)
        paths = listed(self, directory)
        return [*paths, f"{directory}/part-gone.parquet"] if len(calls) == 1 else paths

    monkeypatch.setattr(SegmentStore, "segments", stale_once)
    assert book.read("churn", *window()).num_rows == 4 * (3 + 2)
    assert len(calls) == 2
