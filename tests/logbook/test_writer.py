"""The write path: concurrency, the bound, flush triggers, failures and recovery."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.logbook.conftest import DAY, FAST, InstrumentedFS, make_batch, window
from watchkeeper.errors import InvalidInput, StoreUnavailable
from watchkeeper.logbook import FeedbackItem, Logbook, LogbookConfig


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_rows_logged_from_many_threads_are_all_read_back(tmp_path: Path) -> None:
    book = Logbook(str(tmp_path), config=LogbookConfig(flush_rows=500, flush_interval=0.05))
    book.start()
    roles = ["primary", "canary", "shadow", "arm-a"]

    def worker(t: int) -> None:
        for i in range(200):
            book.log_predictions(
                make_batch(f"t{t}-{i}", version=t + 1, role=roles[t], rows=1 + i % 3, seed=i)
            )

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    book.close()
    table = book.read("churn", *window())
    expected_rows = 4 * sum(1 + i % 3 for i in range(200))
    assert table.num_rows == expected_rows == book.stats.written_rows
    frame = table.to_pandas()
    for t, role in enumerate(roles):
        mine = frame[frame["request_id"].str.startswith(f"t{t}-")]
        assert set(mine["version"]) == {t + 1}
        assert set(mine["role"]) == {role}
    one = frame[frame["request_id"] == "t2-7"].sort_values("row")
    batch = make_batch("t2-7", rows=2, seed=7)
    np.testing.assert_allclose(one["feature_income"], batch.features[:, 1])
    assert batch.probabilities is not None
    np.testing.assert_allclose(np.stack(one["probabilities"]), batch.probabilities, rtol=1e-6)
    assert book.stats.buffered_rows == 0
    assert book.stats.dropped_rows == 0


def test_a_full_buffer_drops_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dropped: list[int] = []
    config = LogbookConfig(max_buffer_rows=5, flush_rows=100, flush_interval=60)
    book = Logbook(str(tmp_path), config=config, on_drop=dropped.append)
    assert book.log_predictions(make_batch("a", rows=3))
    assert book.log_predictions(make_batch("b", rows=2))
    assert not book.log_predictions(make_batch("c", rows=2))
    assert not book.log_predictions(make_batch("d", rows=1))
    assert dropped == [2, 1]
    assert book.stats.dropped_rows == 3
    assert book.stats.buffered_rows == 5
    assert sum("dropped 2 prediction rows" in r.message for r in caplog.records) == 1  # limited
    book.flush()
    assert book.log_predictions(make_batch("e", rows=5))  # room again once written
    book.close()
    assert book.stats.written_rows == 10


def test_flusher_writes_when_enough_rows_are_buffered(tmp_path: Path) -> None:
    book = Logbook(str(tmp_path), config=LogbookConfig(flush_rows=10, flush_interval=60))
    book.start()
    for i in range(4):
        book.log_predictions(make_batch(f"r{i}", rows=2))
    time.sleep(0.1)
    assert book.stats.written_rows == 0
    book.log_predictions(make_batch("r4", rows=2))
    wait_for(lambda: book.stats.written_rows == 10)
    book.close()


def test_flusher_writes_when_the_oldest_row_is_old_enough(tmp_path: Path) -> None:
    book = Logbook(str(tmp_path), config=LogbookConfig(flush_interval=0.2))
    book.start()
    logged = time.monotonic()
    book.log_predictions(make_batch("r"))
    wait_for(lambda: book.stats.written_rows == 2)
    assert time.monotonic() - logged >= 0.19
    book.close()


def test_close_flushes_and_refuses_later_batches(tmp_path: Path) -> None:
    dropped: list[int] = []
    book = Logbook(str(tmp_path), config=FAST, on_drop=dropped.append)
    book.start()
    book.log_predictions(make_batch("r", rows=3))
    book.close()
    assert book.read("churn", *window()).num_rows == 3
    assert not book.log_predictions(make_batch("late"))
    assert dropped == [2]
    assert book.stats.dropped_rows == 2


def test_a_failing_store_is_retried_then_recovers(instrumented: type[InstrumentedFS]) -> None:
    errors: list[BaseException] = []
    book = Logbook("wktest://failing", config=FAST, on_flush_error=errors.append)
    instrumented.fail_writes = True
    book.start()
    book.log_predictions(make_batch("a", rows=3))
    book.log_feedback([])
    with pytest.raises(StoreUnavailable, match="injected failure"):
        book.flush()
    wait_for(lambda: book.stats.flush_failures >= 3)  # the thread keeps retrying
    stats = book.stats
    assert stats.buffered_rows == 3
    assert stats.written_rows == 0
    assert stats.last_flush_error is not None
    assert "injected" in stats.last_flush_error
    assert len(errors) >= 3
    assert all(isinstance(e, OSError) for e in errors)
    book.log_predictions(make_batch("b", rows=2))  # still counted against the bound
    assert book.stats.buffered_rows == 5
    instrumented.fail_writes = False
    wait_for(lambda: book.stats.written_rows == 5, timeout=2)
    book.close()
    assert book.read("churn", *window()).num_rows == 5
    assert book.stats.last_flush_error is None


def test_a_directory_replaced_by_a_file_fails_then_recovers(tmp_path: Path) -> None:
    root = tmp_path / "logbook"
    book = Logbook(str(root), config=FAST)
    book.log_predictions(make_batch("a"))
    book.flush()
    segments = root / "predictions"
    for path in sorted(segments.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    segments.rmdir()
    segments.write_text("not a directory")
    book.log_predictions(make_batch("b"))
    with pytest.raises(StoreUnavailable, match="logbook flush failed"):
        book.flush()
    assert book.stats.flush_failures == 1
    assert book.stats.buffered_rows == 2
    segments.unlink()
    book.flush()
    assert book.read("churn", *window())["request_id"].to_pylist() == ["b", "b"]


def test_close_gives_up_on_a_dead_store_and_counts_the_loss(
    instrumented: type[InstrumentedFS],
) -> None:
    dropped: list[int] = []
    book = Logbook("wktest://dead", config=FAST, on_drop=dropped.append)
    instrumented.fail_writes = True
    book.log_predictions(make_batch("a", rows=4))
    book.close(timeout=0.1)
    assert book.stats.dropped_rows == 4
    assert book.stats.buffered_rows == 0
    assert dropped == [4]


def test_a_batch_that_cannot_be_recorded_does_not_block_the_others(tmp_path: Path) -> None:
    import pandas as pd

    book = Logbook(str(tmp_path), config=FAST)
    bad = make_batch("bad", features=pd.DataFrame({"age": [1.0, 2.0]}), rows=2)  # 2 names lack
    book.log_predictions(make_batch("good"))
    book.log_predictions(bad)
    book.flush()
    assert book.read("churn", *window())["request_id"].to_pylist() == ["good", "good"]
    assert book.stats.dropped_rows == 2
    assert book.stats.buffered_rows == 0


def test_batches_of_one_flush_go_to_their_own_day_and_model(tmp_path: Path) -> None:
    from datetime import timedelta

    book = Logbook(str(tmp_path), config=FAST)
    book.log_predictions(make_batch("d1"))
    book.log_predictions(make_batch("d2", timestamp=DAY + timedelta(days=1)))
    book.log_predictions(make_batch("other", model="fraud"))
    book.flush()
    dirs = sorted(p.parent.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert dirs == [
        "predictions/model=churn/date=2024-03-05",
        "predictions/model=churn/date=2024-03-06",
        "predictions/model=fraud/date=2024-03-05",
    ]


def test_outcome_names_beyond_the_bound_are_refused_whole(tmp_path: Path) -> None:
    """An outcome name becomes a Parquet column: past ``max_outcome_names`` distinct names,
    feedback bringing a new one is refused whole, nothing buffered (issue 16, item 5)."""
    book = Logbook(str(tmp_path), config=LogbookConfig(max_outcome_names=3))
    assert book.log_feedback([FeedbackItem("r1", outcome={"a": 1.0, "b": 2.0})]) == 1
    flood = [FeedbackItem("r2", label=1), FeedbackItem("r3", outcome={"c": 1.0, "d": 1.0})]
    with pytest.raises(InvalidInput, match="at most 3 distinct outcome names") as info:
        book.log_feedback(flood)
    assert [d.field for d in info.value.details] == ["outcome.c", "outcome.d"]
    assert book.stats.feedback_buffered == 1
    assert book.log_feedback([FeedbackItem("r4", outcome={"a": 3.0, "c": 1.0})]) == 1
    with pytest.raises(InvalidInput, match="d"):
        book.log_feedback([FeedbackItem("r5", outcome={"d": 1.0})])
    book.flush()
    names = [c for c in book.read_feedback().column_names if c.startswith("outcome_")]
    assert sorted(names) == ["outcome_a", "outcome_b", "outcome_c"]


@pytest.mark.parametrize("name", ["", "1st", "a b", "a\n", "x" * 65, "é"])
def test_outcome_names_are_short_identifiers(name: str) -> None:
    with pytest.raises(InvalidInput, match="letters, digits and _"):
        FeedbackItem("r", outcome={name: 1.0})
