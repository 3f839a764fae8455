"""``watchkeeper db prune`` through typer's runner and one real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from watchkeeper.cli.main import app
from watchkeeper.config import Settings
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.registry import Registry
from watchkeeper.registry.live import LiveCounts, LiveStatsStore
from watchkeeper.registry.monitoring import MonitoringStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WATCHKEEPER_HOME", str(tmp_path))
    monkeypatch.delenv("WATCHKEEPER_DATABASE_URL", raising=False)
    monkeypatch.delenv("WATCHKEEPER_RETENTION", raising=False)
    monkeypatch.chdir(tmp_path)  # no watchkeeper.toml of the caller's
    return tmp_path


def _fill(home: Path, days: list[int]) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with Registry(Settings(home=home)) as registry:
        LiveStatsStore(registry.engine).write(
            LiveCounts("m", 1, "r1", now - timedelta(days=d), "rows", (d,)) for d in days
        )
        MonitoringStore(registry.engine).record([
            CheckResult(model="m", version=1, window_start=now - timedelta(days=d),
                        window_end=now - timedelta(days=d) + timedelta(minutes=5),
                        check="drift", feature="a", statistic="psi", value=0.1,
                        threshold=0.2, status="ok")
            for d in days
        ])  # fmt: skip


def _run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_prune_dry_run_then_prune(home: Path) -> None:
    _fill(home, [1, 20, 40, 90])
    dry = _run("db", "prune", "--dry-run")  # the default retention: 35 days
    assert dry.exit_code == 0, dry.output
    assert "live_stats: would delete 2 rows" in dry.output
    assert "monitor_results: would delete 2 rows" in dry.output
    done = _run("db", "prune", "--older-than", "10d")
    assert done.exit_code == 0, done.output
    assert "live_stats: deleted 3 rows" in done.output
    assert "monitor_results: deleted 3 rows" in done.output
    assert "6 rows in" in done.output
    assert "note: the dashboard's 30-day range will show only what is left" in done.output
    assert "deleted 0 rows" in _run("db", "prune", "--older-than", "10d").output


def test_prune_with_retention_off_prunes_only_when_asked(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(home, [90])
    monkeypatch.setenv("WATCHKEEPER_RETENTION", "off")
    off = _run("db", "prune")
    assert off.exit_code == 0
    assert "retention is off" in off.output
    assert "live_stats: deleted 1 rows" in _run("db", "prune", "--older-than", "60d").output


def test_a_bad_duration_is_one_line_over_a_real_subprocess(home: Path) -> None:
    env = {**os.environ, "WATCHKEEPER_HOME": str(home)}
    env.pop("WATCHKEEPER_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "watchkeeper", "db", "prune", "--older-than", "3 days"],
        env=env, cwd=home, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip() == (
        "error: --older-than: '3 days' is not a duration: use e.g. 90d, 12h, 30m"
    )
    assert done.stdout == ""
