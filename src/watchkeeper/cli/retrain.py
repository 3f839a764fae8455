"""``watchkeeper retrain NAME`` (train, gate, hand over) and ``watchkeeper retrain runs NAME``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from watchkeeper.cli._common import (
    Group,
    open_registry,
    print_json,
    progress_steps,
    settings,
    table,
)
from watchkeeper.errors import CheckFailed, NotFound
from watchkeeper.registry.retraining import RetrainRun, RetrainStore
from watchkeeper.retraining.runner import retrain
from watchkeeper.retraining.spec import declared_retraining


class _RetrainGroup(Group):
    """``retrain NAME`` is short for ``retrain now NAME``; ``retrain runs NAME`` lists runs."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["now", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_RetrainGroup, help="Retrain a model through the evaluation gate: "
                  "'retrain NAME [--dry-run]' is short for 'retrain now NAME [--dry-run]'.",
                  no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  add_completion=False)  # fmt: skip

Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("now")
def now(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name (declared in [retraining.NAME]).")],
    dry_run: Annotated[bool, typer.Option(help="Train and gate; register nothing.")] = False,
    as_json: Json = False,
) -> None:
    """Train NAME now (trigger: manual), gate it, and register and roll out what passes."""
    declared = declared_retraining(settings(ctx))
    if name not in declared:
        raise NotFound(f"no retraining declared for '{name}': add [retraining.{name}] to "
                       "watchkeeper.toml")  # fmt: skip
    with progress_steps(f"retraining {name}") as step:
        step("training and gating")
        run = retrain(settings(ctx), declared[name], trigger="manual", dry_run=dry_run)
    if as_json:
        print_json(run.to_dict())
    else:
        _print(run)
    if run.status == "failed":
        raise typer.Exit(1)
    if run.verdict == "fail":
        raise CheckFailed(f"{name}: the candidate failed the evaluation gate ({run.outcome})")


def _print(run: RetrainRun) -> None:
    if run.status == "failed":
        typer.echo(f"error: {run.model}: retraining failed: {run.error}", err=True)
        return
    gate = run.gate
    low, high = gate.get("interval", [None, None])
    typer.echo(f"{run.model}: gate {run.verdict} ({gate.get('comparison')}; {gate.get('metric')} "
               f"gain {gate.get('gain', 0):+.4g}, interval [{low:+.4g}, {high:+.4g}]) — "
               f"{run.outcome}")  # fmt: skip
    for reason in gate.get("reasons", []):
        typer.echo(f"  - {reason}")


@app.command()
def runs(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N runs.")] = 20,
    as_json: Json = False,
) -> None:
    """Runs with trigger, duration, gate verdict and what happened next."""
    with open_registry(ctx) as registry:
        found = RetrainStore(registry.engine).runs(name, limit=limit)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    table("retraining runs", ["id", "model", "trigger", "status", "seconds", "gate", "outcome"],
          [(r.id, r.model, r.trigger, r.status, f"{r.seconds:.0f}" if r.seconds else "",
            r.verdict or "-", r.outcome or r.error) for r in found])  # fmt: skip
