"""Commands imported on first use: the root group knows their names and one-line help only.

A command group's module imports what its commands need (the registry, pandas, the server...);
importing all of them made ``watchkeeper --help`` take seconds. ``LazyGroup`` holds a stand-in
per command and imports the real one when it is run or its own help is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand

from watchkeeper.cli._common import Group


@dataclass(frozen=True)
class Lazy:
    """Where a command lives (``"package.module:attribute"``: a ``typer.Typer`` or a command
    function) and its first sentence, shown in the parent's command list."""

    target: str
    help: str

    def load(self, name: str) -> Any:
        module, _, attribute = self.target.partition(":")
        found = getattr(importlib.import_module(module), attribute)
        if isinstance(found, typer.Typer):  # a group, even of one command
            command: Any = typer.main.get_group(found)
        else:
            single = typer.Typer(
                pretty_exceptions_enable=False, rich_markup_mode=None, add_completion=False
            )
            single.command(name)(found)
            command = typer.main.get_command(single)
        command.name = name
        return command


class _NotLoaded(TyperCommand):
    """Stands in for a command until it is used; it can only describe itself."""

    def __init__(self, name: str, lazy: Lazy) -> None:
        super().__init__(name=name, help=lazy.help, rich_markup_mode=None)
        self.lazy = lazy


class LazyGroup(Group):
    """A group whose commands (``lazy``, set by a subclass) are imported when first used."""

    lazy: ClassVar[Mapping[str, Lazy]] = {}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, lazy in self.lazy.items():
            self.commands.setdefault(name, _NotLoaded(name, lazy))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if isinstance(found, _NotLoaded):
            found = self.commands[cmd_name] = found.lazy.load(cmd_name)
        return found

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list from each command's help, without importing any of them."""
        rows = [(name, cmd) for name, cmd in self.commands.items() if not cmd.hidden]
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])
