"""What every command group shares: error handling, settings, and output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from watchkeeper.config import Settings
from watchkeeper.errors import EXIT_DENIED, InvalidInput, WatchkeeperError

if TYPE_CHECKING:
    from watchkeeper.registry import Registry


class Group(TyperGroup):
    """Shows any ``WatchkeeperError`` a command raises as one line on stderr, with its exit code
    (``errors.EXIT_CODE``); so too a file or folder the operating system does not let us use."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except WatchkeeperError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(exc.exit_code) from exc
        except PermissionError as exc:
            typer.echo(f"error: permission denied: {exc.filename or exc}", err=True)
            raise typer.Exit(EXIT_DENIED) from exc


def new_app(help_text: str) -> typer.Typer:
    return typer.Typer(
        cls=Group,
        help=help_text,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        add_completion=False,
    )


def settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings.load()
    return root.obj


@contextmanager
def open_registry(ctx: typer.Context) -> Iterator[Registry]:
    from watchkeeper.registry import Registry

    registry = Registry(settings(ctx))
    try:
        yield registry
    finally:
        registry.close()


def console() -> Console:
    # Piped output is read by people too: do not squeeze tables into 80 columns.
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)


@contextmanager
def progress_steps(title: str) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr naming the current step, on a terminal only; a no-op when piped."""
    if not sys.stderr.isatty():
        yield lambda _step: None
        return
    with Console(stderr=True).status(title) as status:
        yield lambda step: status.update(f"{title}: {step}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    out = Table(title=title, header_style="bold")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(out)


def parse_pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a malformed item is a user error."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--{what} '{item}' must look like KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def parse_metrics(items: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in parse_pairs(items, "metric").items():
        try:
            out[key] = float(value)
        except ValueError as exc:
            raise InvalidInput(f"--metric {key}={value}: '{value}' is not a number") from exc
    return out
