"""``watchkeeper db``: schema migrations and retention of the metadata database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from watchkeeper.cli._common import new_app, open_registry, progress_steps, settings
from watchkeeper.registry import db, retention

app = new_app("Manage the metadata database: schema and retention.")


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


@app.command()
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str | None,
        typer.Option(help="Delete rows whose window started longer ago than this (30d, 12h, "
                     "2w). Default: the retention setting (35d)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Count what would go; delete nothing.")] = False,
) -> None:  # fmt: skip
    """Delete old live statistics and monitor results, in small batches."""
    config = settings(ctx)
    if older_than is not None:
        period = retention.older_than(older_than)
    else:
        found = retention.retention_period(config.retention)
        if found is None:
            typer.echo("retention is off (the retention setting): nothing pruned; pass "
                       "--older-than to prune anyway")  # fmt: skip
            return
        period = found
    if period < retention.LONGEST_DASHBOARD_RANGE:
        typer.echo(f"note: the dashboard's {retention.LONGEST_DASHBOARD_RANGE.days}-day range "
                   "will show only what is left", err=True)  # fmt: skip
    with open_registry(ctx) as registry, progress_steps("pruning") as step:
        report = retention.prune(registry.engine, datetime.now(UTC) - period, dry_run=dry_run,
                                 on_batch=lambda table, n: step(f"{table}: {n} rows"))  # fmt: skip
    verb = "would delete" if dry_run else "deleted"
    before = report.cutoff.strftime("%Y-%m-%d %H:%M UTC")
    for table, rows in report.deleted.items():
        typer.echo(f"{table}: {verb} {rows} rows (windows before {before})")
    rate = report.total / report.seconds if report.seconds > 0 else 0.0
    typer.echo(f"{report.total} rows in {report.seconds:.1f} s ({rate:,.0f} rows/s)")
