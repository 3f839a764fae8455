"""``watchkeeper feedback`` and ``watchkeeper logbook``: labels in, maintenance of the record."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from watchkeeper.cli._common import new_app, settings
from watchkeeper.config import parse_duration
from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import FeedbackItem, Logbook
from watchkeeper.registry.registry import read_table

feedback_app = new_app("Send ground truth and business outcomes for earlier predictions.")
logbook_app = new_app("Maintain the logbook of predictions and feedback.")


@feedback_app.command("upload")
def upload(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV or Parquet with a request-id column.")],
    request_id_column: Annotated[str, typer.Option(help="Column holding request ids.")] = (
        "request_id"
    ),
    row_column: Annotated[str, typer.Option(help="Row within the request (default 0).")] = "row",
    label_column: Annotated[str, typer.Option(help="Column holding the label.")] = "label",
    timestamp_column: Annotated[str, typer.Option(help="When the outcome happened.")] = (
        "timestamp"
    ),
    outcome: Annotated[
        list[str] | None, typer.Option(help="Numeric outcome column (repeatable).")
    ] = None,
) -> None:
    """Upload labels/outcomes; they join predictions by request id and row."""
    frame = read_table(file)
    if request_id_column not in frame.columns:
        raise InvalidInput(f"{file} has no '{request_id_column}' column (--request-id-column)")
    missing = [c for c in outcome or [] if c not in frame.columns]
    if missing:
        raise InvalidInput(f"{file} has no outcome column(s) {', '.join(missing)}")
    items = [_item(record, request_id_column, row_column, label_column, timestamp_column,
                   outcome or []) for record in frame.to_dict(orient="records")]  # fmt: skip
    with Logbook(settings(ctx).resolved_logbook_url) as book:
        accepted = book.log_feedback(items)
    if accepted < len(items):
        raise InvalidInput(f"only {accepted} of {len(items)} feedback rows fit the buffer")
    typer.echo(f"uploaded {accepted} feedback rows from {file}")


def _item(record: Mapping[Hashable, Any], rid: str, row: str, label: str, ts: str,
          outcomes: list[str]) -> FeedbackItem:  # fmt: skip
    raw = record.get(ts)
    stamp = None
    if raw is not None and not pd.isna(raw):
        stamp = pd.Timestamp(raw).to_pydatetime()
        stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return FeedbackItem(
        request_id=str(record[rid]),
        row=int(record.get(row, 0) or 0),
        label=record.get(label),
        outcome={name: float(record[name]) for name in outcomes} or None,
        timestamp=stamp,
    )


@logbook_app.command()
def compact(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    day: Annotated[str | None, typer.Option(help="Only this day (YYYY-MM-DD).")] = None,
) -> None:
    """Merge the small segments of each model and day into one file."""
    removed = Logbook(settings(ctx).resolved_logbook_url).compact(model=model, day=day)
    typer.echo(f"compacted: {removed} segment files merged away")


@logbook_app.command()
def prune(
    ctx: typer.Context,
    older_than: Annotated[str, typer.Option(help="Age, e.g. 90d, 12h.")],
) -> None:
    """Delete whole days of predictions and feedback older than --older-than."""
    removed = Logbook(settings(ctx).resolved_logbook_url).prune(parse_duration(older_than))
    typer.echo(f"pruned {removed} day partitions older than {older_than}")
