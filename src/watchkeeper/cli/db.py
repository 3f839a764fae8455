"""``watchkeeper db``: schema migrations of the metadata database."""

from __future__ import annotations

import typer

from watchkeeper.cli._common import new_app, settings
from watchkeeper.registry import db

app = new_app("Manage the metadata database schema.")


@app.command()
def upgrade(ctx: typer.Context) -> None:
    """Bring the database schema up to this watchkeeper's version."""
    url = settings(ctx).resolved_database_url
    engine = db.create_db_engine(url)
    try:
        before = db.current_revision(engine)
        db.upgrade(engine)
        after = db.current_revision(engine)
    finally:
        engine.dispose()
    typer.echo(f"{db.safe_url(url)}: schema {before or 'empty'} -> {after}")


@app.command()
def current(ctx: typer.Context) -> None:
    """Show the database's schema revision and the one this watchkeeper needs."""
    url = settings(ctx).resolved_database_url
    engine = db.create_db_engine(url)
    try:
        revision = db.current_revision(engine)
    finally:
        engine.dispose()
    typer.echo(f"{db.safe_url(url)}: schema {revision or 'empty'} (needs {db.head_revision()})")
