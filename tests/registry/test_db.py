"""Schema migrations, version checks and unreachable databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from watchkeeper.config import Settings
from watchkeeper.errors import SchemaOutdated, StoreUnavailable
from watchkeeper.registry import Registry, db
from watchkeeper.registry.schema import Base


def test_upgrade_from_empty_matches_the_models(database_url: str) -> None:
    engine = db.create_db_engine(database_url)
    try:
        assert db.current_revision(engine) is None
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_old_schema_asks_for_db_upgrade(settings: Settings) -> None:
    Registry(settings).close()  # creates the schema
    engine = db.create_db_engine(settings.resolved_database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    engine.dispose()
    with pytest.raises(SchemaOutdated, match="run `watchkeeper db upgrade`"):
        Registry(settings)


def test_tables_without_version_are_not_touched(settings: Settings) -> None:
    Registry(settings).close()
    engine = db.create_db_engine(settings.resolved_database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    with pytest.raises(SchemaOutdated, match="no schema version"):
        Registry(settings)


def test_unreachable_database_is_a_clear_error(tmp_path) -> None:
    url = "postgresql+psycopg://nobody:secret@127.0.0.1:1/none"
    with pytest.raises(
        StoreUnavailable, match=r"cannot reach the database .*127\.0\.0\.1:1"
    ) as err:
        Registry(Settings(home=tmp_path, database_url=url))
    assert "secret" not in str(err.value)


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_the_revision_commands_check_against_is_alembics_head() -> None:
    """Promise: every command's one-query schema check (``HEAD_REVISION``, no Alembic import)
    names the newest migration script: a new migration that forgets it fails here."""
    assert db.HEAD_REVISION == db.head_revision()
