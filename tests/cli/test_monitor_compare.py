"""``watchkeeper monitor compare`` over chunks of the current file, with policy options.

A 20 000-row reference and a 10 000-row current file in five 2 000-row chunks (or five days of
2 000 rows), the last two with the feature ``a`` shifted by 0.6 standard deviations: a clear
shift that only those two chunks may show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.monitoring.test_drift_moving_reference import N, trending
from watchkeeper.cli.main import app

ROWS, CHUNK, DRIFT_FROM = 10_000, 2000, 3


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    rng = np.random.default_rng(8)
    root = tmp_path_factory.mktemp("compare")
    reference = pd.DataFrame({"a": rng.normal(size=20_000), "b": rng.normal(size=20_000),
                              "c": rng.choice(["x", "y", "z"], 20_000)})  # fmt: skip
    current = pd.DataFrame({"a": rng.normal(size=ROWS), "b": rng.normal(size=ROWS),
                            "c": rng.choice(["x", "y", "z"], ROWS)})  # fmt: skip
    current.loc[DRIFT_FROM * CHUNK :, "a"] += 0.6
    current["ts"] = pd.date_range("2026-11-01", periods=ROWS, freq="43200ms").astype(str)
    reference.to_parquet(root / "reference.parquet")
    current.to_csv(root / "current.csv", index=False)
    return root / "reference.parquet", root / "current.csv"


def _run(*args: str | Path | int) -> Result:
    return CliRunner().invoke(app, ["monitor", "compare", *map(str, args)])


def test_one_call_compares_every_chunk(files, tmp_path: Path) -> None:
    reference, current = files
    out = _run(reference, current, "--chunk-size", CHUNK, "--json", "--html", tmp_path / "r.html")
    assert out.exit_code == 0, out.output
    found = json.loads(out.stdout)
    assert (found["reference_rows"], found["current_rows"]) == (20_000, ROWS)
    assert [c["chunk"] for c in found["chunks"]][:2] == ["rows 0-1999", "rows 2000-3999"]
    assert [c["drift"]["drifted"] for c in found["chunks"]] == [[]] * 3 + [["a"]] * 2
    quality = [c["quality"] for c in found["chunks"]]
    assert all(q is not None for q in quality)
    extra = [f for f in quality[0]["findings"] if f["check"] == "extra_column"]
    assert [(f["column"], f["status"]) for f in extra] == [("ts", "warn")]  # not a feature
    page = (tmp_path / "r.html").read_text()
    assert "rows 8000-9999 (2000 rows)</th><td>fail: drifted a; quality warn" in page


def test_policy_options_reach_every_chunk(files) -> None:
    reference, current = files
    out = _run(reference, current, "--chunks", 5, "--chunk-by", "ts:1d", "--json")
    assert out.exit_code == 1
    assert "give one of chunk_size, chunks and chunk_by" in out.output
    out = _run(reference, current, "--chunk-by", "ts:1d", "--method", "ks", "--method",
               "c=psi", "--threshold", "b=0.2", "--fit", "chi2", "--json")  # fmt: skip
    assert out.exit_code == 0, out.output
    chunks = json.loads(out.stdout)["chunks"]
    assert [c["chunk"] for c in chunks] == [f"2026-11-{d:02d}" for d in range(1, 6)]
    policy = chunks[0]["drift"]["policy"]
    assert (policy["method"], policy["threshold"], policy["fit"]) == (
        {"a": "ks", "b": "ks", "c": "psi"}, {"b": 0.2}, "chi2")  # fmt: skip
    methods = {f["name"]: f["result"]["method"] for f in chunks[0]["drift"]["features"]}
    assert methods == {"a": "ks", "b": "ks", "c": "psi"}
    assert [c["drift"]["drifted"] for c in chunks] == [[]] * 3 + [["a"]] * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chunk-by", "ts"], "chunk_by 'ts' must look like COLUMN:PERIOD"),
        (["--chunk-by", "when:1d"], "chunk_by: the current data has no column 'when'"),
        (["--chunk-by", "ts:soon"], "'soon' is not a period"),
        (["--method", "ghost=ks"], "method names features the reference lacks: ghost"),
        (["--method", "ks", "--method", "wasserstein"], "'ks' and 'wasserstein' both apply"),
        (["--threshold", "high"], "--threshold 'high' is not a number"),
        (["--threshold", "0.1", "--threshold", "0.2"], "give --threshold VALUE once"),
        (["--fit", "cauchy"], "fit must be 'lognormal', 'chi2' or 'normal'"),
    ],
)
def test_mistakes_exit_1_with_one_line(files, args: list[str], message: str) -> None:
    reference, current = files
    out = _run(reference, current, *args)
    assert out.exit_code == 1
    assert len(out.stderr.splitlines()) == 1
    assert out.stderr.startswith("error: ")
    assert message in out.stderr


def test_a_real_process_fails_on_the_drifted_days(files, tmp_path: Path) -> None:
    """The promise a CI job relies on: one process, one table, exit 3 when a chunk fails."""
    reference, current = files
    env = {**os.environ, "WATCHKEEPER_HOME": str(tmp_path), "COLUMNS": "160"}
    done = subprocess.run(
        [sys.executable, "-m", "watchkeeper", "monitor", "compare", str(reference),
         str(current), "--chunk-by", "ts:1d", "--fail-on", "fail"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    lines = [line for line in done.stdout.splitlines() if "2026-11-0" in line]
    assert len(lines) == 5
    assert ["fail" in line for line in lines] == [False] * 3 + [True] * 2
    assert "failed a check against reference.parquet in 2 of 5 chunks" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_table_says_when_the_reference_itself_moves(tmp_path: Path) -> None:
    """Promise: a reference that trends in time is named on the terminal, not only in the JSON
    and HTML, so the user knows its thresholds came from contiguous chunks."""
    pd.DataFrame(trending(0, N, 1)).to_parquet(tmp_path / "ref.parquet")
    pd.DataFrame(trending(N, 5_000, 10)).to_parquet(tmp_path / "cur.parquet")
    result = _run(tmp_path / "ref.parquet", tmp_path / "cur.parquet")
    assert result.exit_code == 0, result.output
    assert "the reference itself moves in plan, spend, visits" in result.output
