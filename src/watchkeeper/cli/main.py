"""The root command: global options, and the commands, each imported only when it is used.

``watchkeeper --help`` lists the commands from ``COMMANDS`` without importing them, and
``watchkeeper models list`` imports the ``models`` group alone: neither pays for scikit-learn,
the server or the demo (``tests/cli/test_startup.py`` keeps it so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from watchkeeper.cli._lazy import Lazy, LazyGroup
from watchkeeper.config import Settings

# In the order ``--help`` lists them. Each help is the command's own first sentence (a test
# compares them), so the list reads the same as it would with every command imported.
COMMANDS: dict[str, Lazy] = {
    "serve": Lazy(
        "watchkeeper.cli.serve:serve",
        "Serve every model that has a production version (KServe V1, MLflow, v2 protocols).",
    ),
    "demo": Lazy(
        "watchkeeper.cli.demo:demo",
        "Train, serve, drift, alert, retrain, gate, roll out and catch a bad release — in a few "
        "minutes, with everything in the state folder afterwards for you to explore.",
    ),
    "scheduler": Lazy(
        "watchkeeper.cli.scheduler:scheduler",
        "Run rollouts and monitors until stopped; only one scheduler acts at a time (a lease in "
        "the database), and another takes over within --lease-ttl if it dies.",
    ),
    "ui": Lazy(
        "watchkeeper.cli.ui:ui",
        "Serve the dashboard (overview, models, features, alerts, audit) at /ui.",
    ),
    "models": Lazy(
        "watchkeeper.cli.models:app", "Register model versions and move them between stages."
    ),
    "db": Lazy("watchkeeper.cli.db:app", "Manage the metadata database: schema and retention."),
    "monitor": Lazy(
        "watchkeeper.cli.monitor:app", "Monitor models: data quality, drift, performance; alerts."
    ),
    "feedback": Lazy(
        "watchkeeper.cli.logbook:feedback_app",
        "Send ground truth and business outcomes for earlier predictions.",
    ),
    "logbook": Lazy(
        "watchkeeper.cli.logbook:logbook_app", "Maintain the logbook of predictions and feedback."
    ),
    "deploy": Lazy(
        "watchkeeper.cli.deploy:app",
        "Deploy a candidate beside production: shadow, canary, blue-green, A/B.",
    ),
    "batch": Lazy(
        "watchkeeper.cli.batch:app",
        "Score datasets with a registered model, on one machine or on Ray.",
    ),
    "retrain": Lazy(
        "watchkeeper.cli.retrain:app",
        "Retrain a model through the evaluation gate: 'retrain NAME [--dry-run]' is short for "
        "'retrain now NAME [--dry-run]'.",
    ),
    "tokens": Lazy(
        "watchkeeper.cli.tokens:app",
        "API and dashboard tokens: once one exists, the API and dashboard require one.",
    ),
}


class RootGroup(LazyGroup):
    lazy = COMMANDS


app = typer.Typer(
    cls=RootGroup,
    help="watchkeeper: deploy ML models and keep them working as data shifts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from watchkeeper import __version__

        typer.echo(f"watchkeeper {__version__}")
        raise typer.Exit()


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
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    ctx.obj = Settings.load(home=home, database_url=database_url, artifact_url=artifact_url)


def main() -> None:
    app(prog_name="watchkeeper")
