"""The metadata database: engine factory, transactions, and schema version checks.

SQLite and PostgreSQL share one code path. SQLite runs in WAL mode with a busy timeout, and
write transactions start with ``BEGIN IMMEDIATE`` so concurrent writers queue instead of
failing half-way; PostgreSQL serialises writers per model with ``SELECT ... FOR UPDATE``.

Creating the schema and migrating it happen in one transaction holding the schema lock (a
PostgreSQL advisory lock on the schema's name; on SQLite the database write lock), so processes
starting together on an empty database take turns: the first creates it, the others find it
made.
"""

from __future__ import annotations

import sqlite3
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session

from watchkeeper.errors import InvalidInput, SchemaOutdated, StoreUnavailable, missing_dependency

if TYPE_CHECKING:
    from alembic.config import Config

SQLITE_BUSY_TIMEOUT_S = 60.0
# The newest migration's revision (tests/registry/test_db.py checks it against Alembic's head).
# Commands compare the database with it in one query, and import Alembic only to migrate: Alembic
# costs a fifth of a second of every CLI command's start-up.
HEAD_REVISION = "0009"
_VERSION_TABLE = "alembic_version"
# pg_advisory_xact_lock(int, int): the first key says "watchkeeper schema", the second names the
# schema (several watchkeeper schemas may share one database).
_SCHEMA_LOCK_CLASS = 0x7768_6B01


def create_db_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created on demand."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"invalid database URL '{url}': {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}
    if parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 5}
    try:
        return create_engine(url, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        if parsed.get_backend_name() == "postgresql":
            raise missing_dependency("psycopg", "postgres") from exc
        raise InvalidInput(f"unsupported database URL '{safe_url(url)}': {exc}") from exc


def _journal_wal(cursor: Any) -> None:
    """WAL mode, waiting like any write for as long as the busy timeout: on a new database
    file, a process switching it to WAL while others connect makes SQLite refuse them at once
    ("database is locked") without calling its busy handler (seen: 1 of 20 first starts)."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN IMMEDIATE can be issued.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        _journal_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("watchkeeper_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def safe_url(url: str) -> str:
    """The URL with any password masked, fit for an error message."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid url>"


@contextmanager
def session_scope(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """One session per operation: commit on success, roll back on any error."""
    with _connect(engine) as connection:
        if write:
            connection = connection.execution_options(watchkeeper_write=True)
        try:
            with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                yield session
        except OperationalError as exc:
            raise StoreUnavailable(
                f"database {safe_url(str(engine.url))} failed: {_first_line(exc)}"
            ) from exc


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


# --- schema versions -------------------------------------------------------------------------


def _alembic_config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    location = resources.files("watchkeeper.registry") / "migrations"
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision among the migration scripts, as Alembic finds it."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("watchkeeper.registry") / "migrations")
    )
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _revision(connection: Connection) -> str | None:
    """The revision recorded in ``alembic_version`` (the table Alembic keeps), None if none."""
    if not inspect(connection).has_table(_VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalar()


def current_revision(engine: Engine) -> str | None:
    with _connect(engine) as connection:
        return _revision(connection)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (``watchkeeper db upgrade``)."""
    from alembic import command

    with _migrating(engine) as connection:
        command.upgrade(_alembic_config(connection), revision)


def ensure_schema(engine: Engine) -> None:
    """Create the schema in an empty database; refuse one that is older or newer than the code."""
    current = current_revision(engine)
    head = HEAD_REVISION
    if current == head:
        return
    if current is None:
        with _migrating(engine) as connection:
            # Under the lock: another process may have created it while we waited.
            current = _revision(connection)
            if current is None:
                from alembic import command

                _refuse_unversioned_tables(engine, connection)
                command.upgrade(_alembic_config(connection), "head")
                return
        if current == head:
            return
    raise SchemaOutdated(
        f"database {safe_url(str(engine.url))} is at schema revision {current}, this watchkeeper "
        f"needs {head}: run `watchkeeper db upgrade` (or upgrade watchkeeper if the database is "
        "newer)"
    )


def _refuse_unversioned_tables(engine: Engine, connection: Connection) -> None:
    existing = set(inspect(connection).get_table_names())
    if existing & {"registered_models", "model_versions"}:
        raise SchemaOutdated(
            f"database {safe_url(str(engine.url))} has watchkeeper tables but no schema "
            "version; run `watchkeeper db upgrade` after checking it is a watchkeeper database"
        )


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the schema lock, committed when the block succeeds.

    PostgreSQL: a transaction-scoped advisory lock keyed by the schema's name (DDL is
    transactional, so the lock is held until the schema is committed). SQLite: ``BEGIN
    IMMEDIATE`` takes the database write lock; others wait for it (busy timeout).
    """
    with _connect(engine) as connection:
        if connection.dialect.name == "sqlite":
            connection = connection.execution_options(watchkeeper_write=True)
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    schema = connection.execute(text("SELECT current_schema()")).scalar() or ""
                    key = zlib.crc32(str(schema).encode()) - 2**31  # a signed int4
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:class, :key)"),
                        {"class": _SCHEMA_LOCK_CLASS, "key": key},
                    )
                yield connection
        except OperationalError as exc:
            raise StoreUnavailable(
                f"database {safe_url(str(engine.url))} failed: {_first_line(exc)}"
            ) from exc


@contextmanager
def _connect(engine: Engine) -> Iterator[Connection]:
    try:
        connection = engine.connect()
    except OperationalError as exc:
        raise StoreUnavailable(
            f"cannot reach the database {safe_url(str(engine.url))}: {_first_line(exc)}"
        ) from exc
    try:
        yield connection
    finally:
        connection.close()
