"""``feedback upload``, ``logbook compact`` and ``logbook prune`` through the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from watchkeeper.cli.logbook import parse_duration
from watchkeeper.cli.main import app
from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import Logbook, PredictionBatch

NOW = datetime.now(UTC)


def _batch(request_id: str, when: datetime, n: int = 2) -> PredictionBatch:
    return PredictionBatch(
        request_id=request_id, model="m", version=1, role="primary", timestamp=when,
        features=np.arange(n * 2, dtype=np.float64).reshape(n, 2), feature_names=["a", "b"],
        predictions=np.zeros(n), probabilities=None, classes=None, latency_s=0.001,
    )  # fmt: skip


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WATCHKEEPER_HOME", str(tmp_path))
    return tmp_path


def _run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_feedback_upload_joins(home: Path) -> None:
    with Logbook(str(home / "logbook")) as book:
        book.log_predictions(_batch("r1", NOW))
    labels = home / "labels.csv"
    pd.DataFrame({"request_id": ["r1", "r1"], "row": [0, 1], "label": [1, 0],
                  "revenue": [3.5, 0.0]}).to_csv(labels, index=False)  # fmt: skip
    result = _run("feedback", "upload", str(labels), "--outcome", "revenue")
    assert result.exit_code == 0, result.output
    assert "uploaded 2 feedback rows" in result.output
    joined = (
        Logbook(str(home / "logbook"))
        .join_feedback("m", NOW - timedelta(hours=1), NOW + timedelta(hours=1))
        .to_pandas()
        .sort_values("row")
    )
    assert joined["label"].tolist() == [1, 0]
    assert joined["outcome_revenue"].tolist() == [3.5, 0.0]


def test_feedback_upload_needs_the_request_id_column(home: Path) -> None:
    labels = home / "labels.csv"
    pd.DataFrame({"id": ["r1"], "label": [1]}).to_csv(labels, index=False)
    result = _run("feedback", "upload", str(labels))
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert "request_id" in result.output


def test_compact_and_prune(home: Path) -> None:
    with Logbook(str(home / "logbook")) as book:
        for i in range(3):
            book.log_predictions(_batch(f"new{i}", NOW))
            book.flush()
        book.log_predictions(_batch("old", NOW - timedelta(days=120)))
    assert "merged away" in _run("logbook", "compact").output
    result = _run("logbook", "prune", "--older-than", "90d")
    assert result.exit_code == 0, result.output
    assert "pruned 1 day" in result.output
    book = Logbook(str(home / "logbook"))
    assert book.read("m", NOW - timedelta(days=200), NOW - timedelta(days=100)).num_rows == 0
    assert book.read("m", NOW - timedelta(hours=1), NOW + timedelta(hours=1)).num_rows == 6
    bad = _run("logbook", "prune", "--older-than", "ninety days")
    assert bad.exit_code == 1
    assert "not a duration" in bad.output


def test_parse_duration() -> None:
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("12h") == timedelta(hours=12)
    with pytest.raises(InvalidInput, match="not a duration"):
        parse_duration("3 days")
