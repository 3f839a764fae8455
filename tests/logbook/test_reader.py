"""Reading: the record layout, pruning, schema unification, invisible partial files."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.logbook.conftest import DAY, FAST, FEATURES, InstrumentedFS, make_batch, window
from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import Logbook, LogbookConfig


def test_records_follow_the_documented_layout(book: Logbook) -> None:
    book.log_predictions(
        make_batch("r1", rows=2, routing_key="user-7", metadata={"b": "2", "a": "1"})
    )
    book.log_predictions(
        make_batch(
            "r2",
            rows=1,
            predictions=np.array(["yes"]),
            probabilities=None,
            classes=None,
            latency_s=0.25,
        )
    )
    book.flush()
    table = book.read("churn", *window())
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    types = {f.name: str(f.type) for f in table.schema}
    assert types["row"] == "int32"
    assert types["version"] == "int32"
    assert types["latency_ms"] == "float"
    assert types["probabilities"] == "list<item: float>"
    assert [types[f"feature_{n}"] for n in FEATURES] == ["double"] * 3
    rows = sorted(table.to_pylist(), key=lambda r: (r["request_id"], r["row"]))
    first, text = rows[0], rows[2]
    assert (first["model"], first["date"], first["row"]) == ("churn", "2024-03-05", 0)
    assert first["metadata"] == '{"a":"1","b":"2"}'
    assert first["routing_key"] == "user-7"
    assert json.loads(first["classes"]) == ["no", "yes"]
    assert first["prediction"] in (0.0, 1.0)
    assert first["prediction_label"] is None
    assert text["prediction"] is None
    assert text["prediction_label"] == "yes"
    assert text["probabilities"] is None
    assert text["latency_ms"] == pytest.approx(250.0)
    assert rows[1]["row"] == 1
    assert first["timestamp"] == DAY


def test_pandas_reads_the_store_without_watchkeeper(book: Logbook, tmp_path: Path) -> None:
    book.log_predictions(make_batch("r1", rows=3))
    book.log_predictions(make_batch("r2", model="fraud", rows=2))
    book.flush()
    frame = pd.read_parquet(tmp_path / "logbook" / "predictions")
    assert len(frame) == 5
    assert sorted(frame["model"].astype(str).unique()) == ["churn", "fraud"]


def test_reading_a_day_opens_only_that_days_files(instrumented: type[InstrumentedFS]) -> None:
    book = Logbook("wktest://pruning", config=FAST)
    for offset in range(4):
        for model in ("churn", "fraud"):
            stamp = DAY + timedelta(days=offset)
            book.log_predictions(make_batch(f"{model}{offset}", model=model, timestamp=stamp))
    book.flush()
    instrumented.opened.clear()
    instrumented.listed.clear()
    start = DAY.replace(hour=0) + timedelta(days=1)
    table = book.read("churn", start, start + timedelta(days=1))
    assert table["request_id"].to_pylist() == ["churn1", "churn1"]
    assert instrumented.opened
    assert all("/model=churn/date=2024-03-06/" in p for p in instrumented.opened)
    assert not any("fraud" in p or "2024-03-05" in p for p in instrumented.listed)
    book.close()


def test_the_window_is_start_inclusive_end_exclusive(book: Logbook) -> None:
    for minute in range(5):
        book.log_predictions(make_batch(f"m{minute}", timestamp=DAY + timedelta(minutes=minute)))
    book.flush()
    table = book.read("churn", DAY + timedelta(minutes=1), DAY + timedelta(minutes=3))
    assert sorted(set(table["request_id"].to_pylist())) == ["m1", "m2"]
    naive = DAY.replace(tzinfo=None)
    assert book.read("churn", naive, naive + timedelta(minutes=1)).num_rows == 2


def test_versions_with_different_features_read_together(book: Logbook) -> None:
    book.log_predictions(make_batch("v1", version=1, feature_names=["age", "income"]))
    book.flush()
    frame = pd.DataFrame({"age": [30.0, 40.0], "city": ["Oslo", None]})
    book.log_predictions(make_batch("v2", version=2, feature_names=["age", "city"], features=frame))
    book.flush()
    table = book.read("churn", *window())
    assert {"feature_age", "feature_income", "feature_city"} <= set(table.column_names)
    rows = {(r["request_id"], r["row"]): r for r in table.to_pylist()}
    assert rows["v1", 0]["feature_city"] is None
    assert rows["v2", 0]["feature_income"] is None
    assert rows["v2", 0]["feature_city"] == "Oslo"
    assert rows["v2", 1]["feature_city"] is None
    assert book.read("churn", *window(), version=2)["feature_age"].to_pylist() == [30.0, 40.0]


def test_columns_select_and_unknown_ones_are_refused(book: Logbook) -> None:
    book.log_predictions(make_batch("r", role="canary"))
    book.log_predictions(make_batch("s", role="shadow"))
    book.flush()
    table = book.read("churn", *window(), role="canary", columns=["role", "feature_gone"])
    assert table.column_names == ["role", "feature_gone"]
    assert table["role"].to_pylist() == ["canary"] * 2
    assert table["feature_gone"].null_count == 2
    with pytest.raises(InvalidInput, match="unknown logbook column"):
        book.read("churn", *window(), columns=["rol"])


def test_half_written_segments_are_never_read(book: Logbook, tmp_path: Path) -> None:
    book.log_predictions(make_batch("done"))
    book.flush()
    directory = next((tmp_path / "logbook").rglob("*.parquet")).parent
    whole = pq.read_table(next(directory.glob("part-*.parquet")))
    sink = pa.BufferOutputStream()
    pq.write_table(whole, sink)
    data = sink.getvalue().to_pybytes()
    (directory / ".abc.parquet.tmp").write_bytes(data[: len(data) // 2])  # truncated
    (directory / ".def.parquet.tmp").write_bytes(data)  # complete but not yet renamed
    assert book.read("churn", *window())["request_id"].to_pylist() == ["done", "done"]
    assert len(pd.read_parquet(tmp_path / "logbook" / "predictions")) == 2


def test_dropped_and_hashed_fields(tmp_path: Path) -> None:
    config = LogbookConfig(drop_fields=("income",), hash_fields=("age", "city"), hash_salt="s")
    book = Logbook(str(tmp_path), config=config)
    frame = pd.DataFrame({"age": [31.0], "income": [5.0], "city": ["Oslo"]})
    book.log_predictions(
        make_batch("r", rows=1, features=frame, feature_names=["age", "income", "city"])
    )
    book.flush()
    row = book.read("churn", *window()).to_pylist()[0]
    assert "feature_income" not in row
    assert row["feature_age"] == hashlib.sha256(b"s31.0").hexdigest()
    assert row["feature_city"] == hashlib.sha256(b"sOslo").hexdigest()


def test_a_memory_url_works(memory_url: str) -> None:
    book = Logbook(memory_url, config=FAST)
    book.log_predictions(make_batch("r", rows=4))
    book.flush()
    assert book.read("churn", *window()).num_rows == 4
    assert book.read("other", *window()).num_rows == 0


def test_an_empty_store_reads_as_an_empty_table(book: Logbook) -> None:
    table = book.read("churn", *window())
    assert table.num_rows == 0
    assert "request_id" in table.column_names
    assert book.read_feedback().num_rows == 0
    assert book.join_feedback("churn", *window()).num_rows == 0
