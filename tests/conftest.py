"""Shared fixtures: every registry test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``WATCHKEEPER_TEST_POSTGRES_URL`` (default: the local test database).
Each test gets its own schema there, dropped afterwards. When the server is unreachable the
PostgreSQL cases are skipped with the reason, unless ``WATCHKEEPER_REQUIRE_POSTGRES=1`` (set in
CI), which turns that into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from watchkeeper.config import Settings
from watchkeeper.registry import Registry

POSTGRES_URL = os.environ.get(
    "WATCHKEEPER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("WATCHKEEPER_REQUIRE_POSTGRES") == "1"


def _postgres_problem() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except (OperationalError, ImportError) as exc:
        return f"PostgreSQL at {POSTGRES_URL} unreachable: {str(exc).splitlines()[0]}"
    return None


_PG_PROBLEM: list[str | None] = []


def postgres_problem() -> str | None:
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_postgres_problem())
    return _PG_PROBLEM[0]


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a new schema, dropped on exit (skips the test, or
    fails it under ``WATCHKEEPER_REQUIRE_POSTGRES=1``, when PostgreSQL is unreachable)."""
    problem = postgres_problem()
    if problem:
        if REQUIRE_POSTGRES:
            pytest.fail(f"WATCHKEEPER_REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    schema = f"wk_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    with fresh_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'watchkeeper.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url, user="tester")


@pytest.fixture
def two_versions(settings: Settings) -> Iterator[Registry]:
    """A registry (SQLite and PostgreSQL) with model ``m``: v1 in production, v2 beside it."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "b"])
    model = LogisticRegression().fit(X, X["a"] > 0)
    with Registry(settings) as registry:
        registry.register("m", model, input_example=X, stage="production")
        registry.register("m", model, input_example=X)
        yield registry


# The files that take longest (`make test` prints the slowest tests), started first: under
# `--dist loadfile` a worker takes whole files in collection order, so a long file collected
# last ran alone at the end and set the suite's wall time. Order only; nothing is skipped.
LONG_FILES = (
    "tests/rollout/test_rollout_e2e.py",
    "tests/test_replicas.py",
    "tests/retraining/test_retrain.py",
    "tests/faults/test_logbook_storage.py",
    "tests/test_demo.py",
    "tests/monitoring/test_drift_multivariate.py",
    "tests/batch/test_ray.py",
    "tests/ui/test_scale.py",
    "tests/cli/test_mlflow_import_cli.py",
    "tests/security/test_readiness.py",
    "tests/monitoring/test_concept.py",
    "tests/faults/test_leader.py",
    "tests/cli/test_models_cli.py",
    "tests/watch/test_runner.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    root = Path(__file__).resolve().parent.parent

    def key(item: pytest.Item) -> int:
        path = Path(str(item.fspath)).resolve()
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else ""
        return rank.get(name, len(LONG_FILES))

    items.sort(key=key)  # stable: every file keeps its own order
