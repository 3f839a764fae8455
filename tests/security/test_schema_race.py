"""Parallel first starts on an empty database all succeed (issue 16, item 7).

Regression: 20 processes opening a registry on an empty PostgreSQL database raced in schema
creation and 7 failed with a raw ``UniqueViolation``. Schema creation and migrations now run
under a PostgreSQL advisory lock (SQLite: under its write lock, ``BEGIN IMMEDIATE``), and a
process that waited finds the schema made and goes on.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT
from watchkeeper.config import Settings
from watchkeeper.registry import Registry
from watchkeeper.registry.db import current_revision, head_revision

STARTS = 20
OPEN_REGISTRY = """
import sys
from pathlib import Path
from watchkeeper.config import Settings
from watchkeeper.registry import Registry

home, url = Path(sys.argv[1]), sys.argv[2]
with Registry(Settings(home=home, database_url=url)) as registry:
    assert registry.list_models() == []
print("ok")
"""


def _first_starts(tmp_path: Path, url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_REGISTRY, str(tmp_path / f"home{i}"), url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for i in range(STARTS)
    ]
    outputs = [proc.communicate(timeout=300)[0].decode(errors="replace") for proc in procs]
    failed = [(p.returncode, out) for p, out in zip(procs, outputs, strict=True) if p.returncode]
    assert not failed, f"{len(failed)} of {STARTS} first starts failed; first: {failed[0][1]}"
    with Registry(Settings(home=tmp_path / "check", database_url=url)) as registry:
        assert current_revision(registry.engine) == head_revision()


@pytest.mark.postgres
def test_parallel_first_starts_on_empty_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """20 processes opening a registry at once on an empty PostgreSQL schema all succeed and
    leave it at the head revision."""
    _first_starts(tmp_path, postgres_url)


def test_parallel_first_starts_on_empty_sqlite(tmp_path: Path) -> None:
    """20 processes opening a registry at once on a new SQLite file all succeed."""
    _first_starts(tmp_path, f"sqlite:///{tmp_path / 'watchkeeper.db'}")
