"""The root command: global options and the command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from watchkeeper.cli import (
    batch,
    db,
    demo,
    deploy,
    logbook,
    models,
    monitor,
    retrain,
    scheduler,
    serve,
    tokens,
    ui,
)
from watchkeeper.cli._common import new_app
from watchkeeper.config import Settings

app = new_app("watchkeeper: deploy ML models and keep them working as data shifts.")
app.add_typer(models.app, name="models")
app.add_typer(db.app, name="db")
app.add_typer(monitor.app, name="monitor")
app.add_typer(logbook.feedback_app, name="feedback")
app.add_typer(logbook.logbook_app, name="logbook")
app.add_typer(deploy.app, name="deploy")
app.add_typer(batch.app, name="batch")
app.add_typer(retrain.app, name="retrain")
app.add_typer(tokens.app, name="tokens")
app.command()(serve.serve)
app.command()(demo.demo)
app.command()(scheduler.scheduler)
app.command()(ui.ui)


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(help="State folder (default: $WATCHKEEPER_HOME or ./.watchkeeper)."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="SQLAlchemy URL of the metadata store.")
    ] = None,
    artifact_url: Annotated[
        str | None, typer.Option("--artifact-url", help="fsspec URL of the artifact store.")
    ] = None,
) -> None:
    ctx.obj = Settings.load(home=home, database_url=database_url, artifact_url=artifact_url)


def main() -> None:
    app(prog_name="watchkeeper")
