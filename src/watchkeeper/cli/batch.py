"""``watchkeeper batch``: score a dataset, list runs, and schedule jobs."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from watchkeeper.batch.job import BatchSpec, run_batch
from watchkeeper.batch.schedule import OPTIONS
from watchkeeper.cli._common import new_app, open_registry, print_json, settings, table
from watchkeeper.cron import next_time
from watchkeeper.errors import InvalidInput
from watchkeeper.registry.batch import BatchStore

app = new_app("Score datasets with a registered model, on one machine or on Ray.")
schedule_app = new_app("Run batch jobs on a cron schedule (by `watchkeeper scheduler`).")
app.add_typer(schedule_app, name="schedule")

Ref = Annotated[str, typer.Argument(help="NAME or NAME@REF (default: the production version).")]
Input = Annotated[str, typer.Argument(help="Parquet/CSV file, folder or glob (any fsspec URL), "
                                           "or sql://<SQLAlchemy URL> with --query.")]  # fmt: skip
Output = Annotated[str, typer.Argument(help="*.parquet, *.csv, a folder, or sql://<URL> with "
                                            "--table.")]  # fmt: skip


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int | None], None]]:
    """A bar with rows/s and ETA on a terminal; a log line every 10 s otherwise."""
    if enabled and sys.stderr.isatty():
        columns = (TextColumn("scoring"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn(),
                   TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task("rows", total=None, rate="-")
            started = time.perf_counter()

            def update(done: int, total: int | None) -> None:
                rate = done / max(time.perf_counter() - started, 1e-9)
                bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")

            yield update
        return
    last = [time.monotonic()]

    def lines(done: int, total: int | None) -> None:
        if time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            of = f" of {total:,}" if total else ""
            typer.echo(f"{datetime.now(UTC):%T} scored {done:,}{of} rows", err=True)

    yield lines


def _options(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None and k in OPTIONS}


@app.command()
def score(
    ctx: typer.Context, model: Ref, input: Input, output: Output,
    engine: Annotated[str, typer.Option(help="local (processes) or ray.")] = "local",
    workers: Annotated[int, typer.Option(help="Processes or Ray actors.")] = 1,
    chunk_rows: Annotated[int, typer.Option(help="Rows per model call.")] = 100_000,
    id_column: Annotated[str | None, typer.Option(help="Carried into every output row.")] = None,
    columns: Annotated[
        list[str] | None, typer.Option("--columns", help="Read only these input columns.")
    ] = None,
    passthrough: Annotated[
        list[str] | None, typer.Option("--passthrough", help="Input column copied to the output.")
    ] = None,
    query: Annotated[str | None, typer.Option(help="SQL query for a sql:// input.")] = None,
    table_name: Annotated[str | None, typer.Option("--table", help="Output table (sql://).")]
    = None,
    if_exists: Annotated[str, typer.Option(help="fail, replace, or append (tables).")] = "fail",
    rejects: Annotated[str | None, typer.Option(help="Where rejected rows go (Parquet).")] = None,
    max_reject_rate: Annotated[float, typer.Option(help="Fail the job above this share.")] = 0.05,
    log_sample: Annotated[float, typer.Option(help="Share of rows recorded in the logbook.")]
    = 0.1,
    probabilities: Annotated[bool, typer.Option(help="Add proba_<class> columns.")] = True,
    resume: Annotated[bool, typer.Option(help="Skip the parts an interrupted run finished.")]
    = False,
    ray_address: Annotated[str | None, typer.Option(help="Join this Ray cluster.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")]
    = False,
) -> None:  # fmt: skip
    """Score INPUT with MODEL into OUTPUT: streamed, validated, committed at the end."""
    spec = BatchSpec(
        model=model, input=input, output=output, query=query, table=table_name,
        if_exists=if_exists, rejects=rejects, engine=engine, workers=workers,
        chunk_rows=chunk_rows, id_column=id_column, columns=tuple(columns or ()),
        passthrough=tuple(passthrough or ()), probabilities=probabilities,
        max_reject_rate=max_reject_rate, log_sample=log_sample, resume=resume,
        ray_address=ray_address,
    )  # fmt: skip
    with _progress(not as_json) as progress:
        outcome = run_batch(settings(ctx), spec, progress=progress)
    run = outcome.run
    if as_json:
        print_json(run.to_dict())
        return
    typer.echo(f"{run.model}@{run.version}: {run.rows_in:,} rows in, {run.rows_out:,} scored, "
               f"{run.rows_rejected:,} rejected, {run.seconds or 0:.1f} s "
               f"({run.rows_per_second or 0:,.0f} rows/s) -> {output}")  # fmt: skip
    if outcome.out_of_range:
        typer.echo(f"note: {outcome.out_of_range:,} values were outside the training range",
                   err=True)  # fmt: skip


@app.command()
def runs(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recent batch runs: version, rows in/out/rejected, duration, rows/s, status."""
    with open_registry(ctx) as registry:
        found = BatchStore(registry.engine).runs(name, limit=limit)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    table("batch runs", ["id", "model", "version", "status", "rows in", "out", "rejected",
                         "seconds", "rows/s", "started"],
          [(r.id, r.model, r.version, r.status, r.rows_in, r.rows_out, r.rows_rejected,
            f"{r.seconds:.1f}" if r.seconds else "", f"{r.rows_per_second or 0:,.0f}",
            f"{r.started_at:%F %T}") for r in found])  # fmt: skip


def _absolute(location: str) -> str:
    """A local path made absolute; URLs (``s3://``, ``sql://`` …) as given."""
    return location if "://" in location else str(Path(location).absolute())


@schedule_app.command("add")
def schedule_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name (production at run time).")],
    input: Input, output: Output,
    cron: Annotated[str, typer.Option(help="When, in cron syntax: '0 2 * * *'.")] = "0 2 * * *",
    max_attempts: Annotated[int, typer.Option(help="Tries per run before alerting.")] = 3,
    engine: Annotated[str | None, typer.Option(help="local or ray.")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes or Ray actors.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Carried into every output row.")] = None,
    passthrough: Annotated[list[str] | None, typer.Option("--passthrough")] = None,
    query: Annotated[str | None, typer.Option(help="SQL query for a sql:// input.")] = None,
    table_name: Annotated[str | None, typer.Option("--table")] = None,
    max_reject_rate: Annotated[float | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:  # fmt: skip
    """Score INPUT into OUTPUT on a schedule; each run replaces OUTPUT (tables: appends)."""
    if "@" in name:
        raise InvalidInput("a schedule always uses the production version: give NAME only")
    when = next_time(cron, datetime.now(UTC))
    options = _options(engine=engine, workers=workers, id_column=id_column, query=query,
                       passthrough=list(passthrough) if passthrough else None, table=table_name,
                       max_reject_rate=max_reject_rate)  # fmt: skip
    # the scheduler may run elsewhere: a relative local path would be read from its folder
    input, output = _absolute(input), _absolute(output)
    BatchSpec(model=name, input=input, output=output, **options)  # check the options now
    with open_registry(ctx) as registry:
        registry.get_model(name)
        added = BatchStore(registry.engine).add_schedule(
            model=name, cron=cron, input=input, output=output, options=options,
            next_run_at=when, actor=registry.actor, max_attempts=max_attempts,
        )  # fmt: skip
    if as_json:
        print_json(added.to_dict())
        return
    typer.echo(f"schedule {added.id}: {name} '{cron}', next run {when:%F %T} UTC")


@schedule_app.command("list")
def schedule_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every batch schedule with its next run and last outcome."""
    with open_registry(ctx) as registry:
        found = BatchStore(registry.engine).schedules()
    if as_json:
        print_json([s.to_dict() for s in found])
        return
    table("batch schedules", ["id", "model", "cron", "input", "output", "next run", "last"],
          [(s.id, s.model, s.cron, s.input, s.output, f"{s.next_run_at:%F %T}",
            s.last_status) for s in found])  # fmt: skip


@schedule_app.command("remove")
def schedule_remove(
    ctx: typer.Context, schedule_id: Annotated[int, typer.Argument(help="Schedule id.")]
) -> None:
    """Stop running a schedule."""
    with open_registry(ctx) as registry:
        BatchStore(registry.engine).remove_schedule(schedule_id)
    typer.echo(f"removed schedule {schedule_id}")
