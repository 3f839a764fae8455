"""``watchkeeper serve``: options that cannot work are refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from watchkeeper.cli.main import app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shadow-queue", "0"], "--shadow-queue must be at least 1, not 0"),
        (["--shadow-batch-rows", "0"], "--shadow-batch-rows must be at least 1, not 0"),
        (["--shadow-linger-ms", "-1"], "--shadow-linger-ms must be >= 0, not -1"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--out-of-range", "clip"], "--out-of-range must be 'count' or 'reject', not 'clip'"),
    ],
)
def test_impossible_options_get_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.setenv("WATCHKEEPER_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: {message}"]
    assert not (tmp_path / "watchkeeper.db").exists()  # refused before touching anything
