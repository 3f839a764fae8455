"""``watchkeeper models import-mlflow``: bring an MLflow model registry over."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from watchkeeper.cli._common import open_registry, print_json, table

if TYPE_CHECKING:
    from watchkeeper.registry.mlflow_import import ImportReport, RefOutcome
    from watchkeeper.registry.mlflow_import import Progress as OnProgress

# MLflow retries an unreachable server for minutes by default, and draws its own download bars.
_MLFLOW_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def import_mlflow(
    ctx: typer.Context,
    tracking_uri: Annotated[
        str,
        typer.Option(
            "--tracking-uri",
            envvar="MLFLOW_TRACKING_URI",
            help="MLflow tracking server or store: http(s)://HOST:PORT, sqlite:///mlflow.db, "
            "postgresql://… (default: $MLFLOW_TRACKING_URI).",
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Only this MLflow registered model.")
    ] = None,
    as_name: Annotated[
        str | None,
        typer.Option("--as", metavar="NEW", help="Store --name here under another name."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be imported; change nothing.")
    ] = False,
    with_stages: Annotated[
        bool,
        typer.Option(
            "--with-stages",
            help="Also put versions in MLflow's Production/Staging/Archived stage in that "
            "stage here (only versions not staged here yet).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Copy registered models, their versions and aliases from MLflow into this registry.

    Each version keeps its MLflow signature, metrics, parameters (as mlflow.param.* tags),
    tags, description, run id and run link, and is tagged mlflow.source=models:/NAME/VERSION:
    running the command again adds only what is new. Versions are imported without promoting
    them unless --with-stages is given. Needs MLflow: pip install 'watchkeeper[mlflow]'.
    """
    from watchkeeper.registry.mlflow_import import import_mlflow as run_import

    for key, value in _MLFLOW_DEFAULTS.items():
        os.environ.setdefault(key, value)
    with open_registry(ctx) as registry, _progress() as progress:
        report = run_import(
            registry,
            tracking_uri,
            name=name,
            target=as_name,
            dry_run=dry_run,
            with_stages=with_stages,
            progress=progress,
        )
    if as_json:
        print_json(report.to_dict())
    else:
        _print(report)
    if not report.ok:
        raise typer.Exit(1)


@contextmanager
def _progress() -> Iterator[OnProgress | None]:
    """A progress bar on stderr, on a terminal only."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    if not sys.stderr.isatty():
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("importing", total=None)

        def update(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=f"importing {label}")

        yield update


def _print(report: ImportReport) -> None:
    verb = "would import" if report.dry_run else "imported"
    typer.echo(
        f"MLflow at {report.tracking_uri}: {report.count(verb)} version(s) {verb}, "
        f"{report.count('present')} already here, {report.count('failed')} failed"
        + (" (dry run: nothing changed)" if report.dry_run else "")
    )
    rows = [(v.model, v.mlflow_version, f"{v.target}@{v.version}" if v.version else "-",
             v.action, v.note) for v in report.versions]  # fmt: skip
    if rows:
        table(None, ["MLflow model", "MLflow version", "here", "action", "note"], rows)
    for ref in report.refs:
        typer.echo(_ref_line(ref))
    if not report.with_stages and any(r.action == "not applied" for r in report.refs):
        typer.echo(
            "versions were imported as registered versions, not promoted: rerun with "
            "--with-stages to apply MLflow's stages, or promote them here yourself"
        )
    for problem in report.problems:
        typer.echo(f"error: {problem}", err=True)


def _ref_line(ref: RefOutcome) -> str:
    here = f"version {ref.version}" if ref.version is not None else "-"
    if ref.kind == "alias":
        line = f"alias {ref.target}@{ref.value} -> {here} (MLflow version {ref.mlflow_version})"
    else:
        line = f"MLflow stage {ref.value} of version {ref.mlflow_version} -> {here}"
        if ref.action == "not applied" and ref.version is not None:
            line += f" (watchkeeper models promote {ref.target} {ref.version} --to {ref.value})"
    note = f": {ref.note}" if ref.note and ref.action != "not applied" else ""
    return f"{line}: {ref.action}{note}"
