"""Sampling by request: about rate x N kept, whole requests, the same choice every time."""

from __future__ import annotations

from pathlib import Path

from tests.logbook.conftest import make_batch, window
from watchkeeper.logbook import Logbook, LogbookConfig


def run(path: Path, rate: float, n: int) -> set[str]:
    book = Logbook(str(path), config=LogbookConfig(sample_rate={"churn": rate}))
    for i in range(n):
        assert book.log_predictions(make_batch(f"req-{i}", rows=3))
    book.log_predictions(make_batch("other-model", model="fraud"))
    book.close()
    assert book.stats.sampled_out_rows + book.stats.written_rows == 3 * n + 2
    table = book.read("churn", *window())
    per_request = table.group_by("request_id").aggregate([("row", "count")])
    assert set(per_request["row_count"].to_pylist()) <= {3}  # all rows of a request, or none
    assert book.read("fraud", *window()).num_rows == 2  # other models are not sampled
    return set(per_request["request_id"].to_pylist())


def test_sampling_keeps_about_the_rate_whole_requests_deterministically(tmp_path: Path) -> None:
    n = 2000
    kept = run(tmp_path / "a", 0.25, n)
    assert abs(len(kept) - 0.25 * n) < 4 * (n * 0.25 * 0.75) ** 0.5
    assert run(tmp_path / "b", 0.25, n) == kept
    assert kept < run(tmp_path / "c", 0.5, n)  # a higher rate keeps a superset


def test_rate_zero_keeps_nothing_and_returns_true(tmp_path: Path) -> None:
    book = Logbook(str(tmp_path), config=LogbookConfig(sample_rate={"churn": 0.0}))
    assert book.log_predictions(make_batch("r"))
    assert book.stats.sampled_out_rows == 2
    assert book.stats.buffered_rows == 0
