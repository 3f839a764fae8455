"""``watchkeeper models``: register, inspect, promote, alias, roll back and delete versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from watchkeeper.cli._common import (
    new_app,
    open_registry,
    parse_metrics,
    parse_pairs,
    print_json,
    table,
)
from watchkeeper.cli.mlflow_import import import_mlflow
from watchkeeper.errors import WatchkeeperError
from watchkeeper.registry import ModelRef, ModelVersion
from watchkeeper.registry.refs import canonical_ref

app = new_app("Register model versions and move them between stages.")
app.command("import-mlflow")(import_mlflow)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command()
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name, e.g. churn.")],
    path: Annotated[Path, typer.Argument(help="Model file, package folder or MLflow model.")],
    flavor: Annotated[
        str, typer.Option(help="auto, sklearn, lightgbm, xgboost, onnx, python or mlflow.")
    ] = "auto",
    metric: Annotated[list[str] | None, typer.Option(help="KEY=NUMBER, repeatable.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    run_id: Annotated[str | None, typer.Option(help="Training run id.")] = None,
    run_url: Annotated[str | None, typer.Option(help="Link to the training run.")] = None,
    data: Annotated[str | None, typer.Option(help="URI of the training data.")] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Training data (Parquet or CSV) to profile for drift monitoring; also the "
            "signature's source when no --input-example is given."
        ),
    ] = None,
    input_example: Annotated[
        Path | None,
        typer.Option(
            "--input-example",
            metavar="FILE",
            help="Rows of model input (.csv, .parquet or .json) whose columns and types become "
            "the signature requests are validated against.",
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    stage: Annotated[str, typer.Option(help="Initial stage.")] = "none",
    trust: Annotated[
        list[str] | None,
        typer.Option(
            "--trust",
            metavar="TYPE",
            help="A type a skops file may hold beyond the default allow-list, by full dotted "
            "name; repeatable. Only for files whose author you trust: it is recorded with "
            "the version and trusted at every load.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a new version of NAME from PATH.

    The signature comes from --input-example, else --reference, else the model itself (MLflow
    signature, ONNX inputs, booster or estimator feature names); a version without one is
    served unvalidated, and said so here.

    A skops file holding any type outside the default allow-list is refused, naming the type,
    unless that type is given with --trust.
    """
    metrics = parse_metrics(metric or [])
    tags = parse_pairs(tag or [], "tag")
    with open_registry(ctx) as registry:
        version = registry.register(
            name,
            path,
            flavor=flavor,
            input_example=input_example,
            metrics=metrics,
            tags=tags,
            run_id=run_id,
            run_url=run_url,
            data_uri=data,
            reference_data=reference,
            description=description,
            stage=stage,
            trusted_types=trust,
        )
        trusted = registry.trusted_types(version) if trust else ()
    if as_json:
        print_json({**version.to_dict(), "trusted_types": list(trusted)})
    else:
        typer.echo(f"registered {version.ref} ({version.flavor}, stage {version.stage})")
        typer.echo(f"signature: {signature_summary(version)}")
        if trusted:
            typer.echo(f"trusted types recorded with it: {', '.join(trusted)}")


@app.command("list")
def list_models(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List registered models with their production version and aliases."""
    with open_registry(ctx) as registry:
        models = registry.list_models()
    if as_json:
        print_json([m.to_dict() for m in models])
        return
    rows = [
        (
            m.name,
            m.latest_version,
            m.production_version or "-",
            ", ".join(f"{a}→{v}" for a, v in m.aliases.items()),
            m.updated_at.strftime("%F %T"),
        )
        for m in models
    ]
    table("models", ["name", "versions", "production", "aliases", "updated"], rows)


@app.command()
def show(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(
            help="NAME (all versions), NAME@VERSION|STAGE|ALIAS, models:/NAME/VERSION or "
            "models:/NAME@ALIAS."
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Show a model's versions, or one version in full."""
    with open_registry(ctx) as registry:
        if "@" in canonical_ref(ref):
            version = registry.get(ref)
            try:
                trusted: tuple[str, ...] | str = registry.trusted_types(version)
            except WatchkeeperError as exc:  # the files are unreadable: show the rest anyway
                trusted = f"unknown: {exc.message}"
            if as_json:
                listed = list(trusted) if isinstance(trusted, tuple) else trusted
                print_json({**version.to_dict(), "trusted_types": listed})
            else:
                _show_version(version, trusted)
            return
        model = registry.get_model(ModelRef.parse(ref).name)
        versions = registry.list_versions(model.name)
    if as_json:
        print_json({**model.to_dict(), "versions": [v.to_dict() for v in versions]})
        return
    _versions_table(model.name, versions)


@app.command()
def search(
    ctx: typer.Context,
    filters: Annotated[
        list[str],
        typer.Argument(
            help="Conditions, all must hold: 'metrics.auc>=0.8' 'tags.team=risk' 'stage=production'"
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Find versions by metric, tag, stage or flavor."""
    with open_registry(ctx) as registry:
        versions = registry.search(filters, name=name)
    if as_json:
        print_json([v.to_dict() for v in versions])
    else:
        _versions_table("matching versions", versions)


@app.command()
def promote(
    ctx: typer.Context,
    name: str,
    version: int,
    to: Annotated[str, typer.Option("--to", help="staging, production, archived or none.")],
    reason: Annotated[str, typer.Option(help="Recorded in the audit log.")] = "",
) -> None:
    """Move VERSION of NAME to a stage (production archives the current one)."""
    with open_registry(ctx) as registry:
        result = registry.promote(name, version, to, reason=reason)
    typer.echo(f"{result.ref} is now {result.stage}")


@app.command()
def alias(
    ctx: typer.Context,
    name: str,
    version: int,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. champion.")],
) -> None:
    """Point ALIAS of NAME at VERSION (moving it if it pointed elsewhere)."""
    with open_registry(ctx) as registry:
        result = registry.set_alias(name, version, alias_name)
    typer.echo(f"{name}@{alias_name} -> version {result.version}")


@app.command()
def unalias(
    ctx: typer.Context, name: str, alias_name: Annotated[str, typer.Argument(metavar="ALIAS")]
) -> None:
    """Remove ALIAS from NAME."""
    with open_registry(ctx) as registry:
        registry.remove_alias(name, alias_name)
    typer.echo(f"removed alias {name}@{alias_name}")


@app.command()
def rollback(
    ctx: typer.Context,
    name: str,
    reason: Annotated[str, typer.Option(help="Recorded in the audit log.")] = "",
) -> None:
    """Re-point production at the previous production version, at once."""
    with open_registry(ctx) as registry:
        result = registry.rollback(name, reason=reason)
    typer.echo(f"rolled back: {name}@production is now version {result.version}")


@app.command()
def history(
    ctx: typer.Context,
    name: str,
    limit: Annotated[int | None, typer.Option(help="Only the newest N events.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The audit trail of NAME, newest first."""
    with open_registry(ctx) as registry:
        events = registry.history(name, limit=limit)
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    rows = [
        (e.at.strftime("%F %T"), e.actor, e.action, e.version, e.from_value, e.to_value, e.reason)
        for e in events
    ]
    table(f"history of {name}", ["at", "actor", "action", "version", "from", "to", "reason"], rows)


@app.command()
def delete(
    ctx: typer.Context,
    name: str,
    version: int,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete VERSION of NAME and its files (refused while it is in production)."""
    if not yes:
        typer.confirm(f"delete {name}@{version} and its files?", abort=True)
    with open_registry(ctx) as registry:
        registry.delete_version(name, version)
    typer.echo(f"deleted {name}@{version}")


NO_SIGNATURE = "none (unvalidated)"


def signature_summary(v: ModelVersion) -> str:
    """One line saying whether requests to ``v`` are validated."""
    if not v.signature:
        return (
            "NONE: requests are passed to the model unvalidated (register again with "
            "--input-example FILE or --reference FILE)"
        )
    return f"{len(v.signature['columns'])} input column(s); requests are validated against it"


def _inputs(v: ModelVersion) -> str:
    columns = (v.signature or {}).get("columns", [])
    return ", ".join(f"{c['name']} ({c['dtype']})" for c in columns) or "-"


def _versions_table(title: str, versions: list[ModelVersion]) -> None:
    rows = [
        (
            v.name,
            v.version,
            v.stage,
            ", ".join(v.aliases),
            v.flavor,
            len(v.signature["columns"]) if v.signature else NO_SIGNATURE,
            " ".join(f"{k}={val:.4g}" for k, val in v.metrics.items()),
            v.created_at.strftime("%F %T"),
            v.created_by,
        )
        for v in versions
    ]
    table(
        title,
        ["model", "version", "stage", "aliases", "flavor", "inputs", "metrics", "created", "by"],
        rows,
    )


def _show_version(v: ModelVersion, trusted: tuple[str, ...] | str) -> None:
    if not isinstance(trusted, str):
        trusted = ", ".join(trusted) or "- (default allow-list only)"
    fields = [
        ("version", v.ref),
        ("stage", v.stage),
        ("aliases", ", ".join(v.aliases) or "-"),
        ("flavor", v.flavor),
        ("metrics", ", ".join(f"{k}={x:.4g}" for k, x in v.metrics.items()) or "-"),
        ("tags", ", ".join(f"{k}={x}" for k, x in v.tags.items()) or "-"),
        ("run", v.run_id or "-"),
        ("run url", v.run_url or "-"),
        ("data", v.data_uri or "-"),
        ("data sha256", v.data_hash or "-"),
        ("reference profile", "yes" if v.has_profile else "no"),
        ("signature", signature_summary(v)),
        ("inputs", _inputs(v)),
        ("artifacts", v.artifact_uri),
        ("manifest sha256", v.manifest_digest),
        ("trusted types", trusted),
        ("created", f"{v.created_at:%F %T} by {v.created_by}"),
        ("description", v.description or "-"),
    ]
    table(None, ["field", "value"], fields)
