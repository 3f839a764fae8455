"""A throwaway PostgreSQL schema for a benchmark (shared by the benches that time the registry)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text


@contextmanager
def postgres_schema(url: str) -> Iterator[str | None]:
    schema = f"wk_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(url, connect_args={"connect_timeout": 3})
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # report and carry on with SQLite only
        print(f"PostgreSQL skipped: {str(exc).splitlines()[0]}")
        yield None
        return
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
