"""The import contract (``[tool.importlinter]`` in pyproject.toml, run by ``make lint``) covers
the whole package: import-linter's layers contract only judges the modules it lists, so a new
top-level module left out of the list could import anything."""

from __future__ import annotations

import pkgutil
import re
import tomllib
from pathlib import Path

import watchkeeper

ROOT = Path(__file__).resolve().parents[1]
NOT_LAYERED = {"__main__"}  # `python -m watchkeeper`: the entry point, above everything


def contract(contract_id: str) -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    found: dict[str, object] = next(c for c in config["contracts"] if c["id"] == contract_id)
    return found


def layered_names(layers: list[str]) -> list[str]:
    """Every module a layers list names, without the optional-layer parentheses."""
    return [name.strip("() ") for layer in layers for name in re.split(r"[|:]", layer)]


def test_every_top_level_module_has_a_layer() -> None:
    modules = {m.name for m in pkgutil.iter_modules(watchkeeper.__path__)} - NOT_LAYERED
    names = layered_names(contract("layers")["layers"])  # type: ignore[arg-type]
    assert len(names) == len(set(names)), "a module is listed twice"
    assert sorted(modules - set(names)) == [], "add it to [tool.importlinter] and docs/layout.md"


def test_the_layers_page_lists_the_same_layers() -> None:
    page = (ROOT / "docs" / "layout.md").read_text()
    drawn = page.split("## The layers", 1)[1].split("```", 2)[1]
    layers = [re.split(r"\s{2,}", line)[0] for line in drawn.splitlines() if line.strip()]
    names = layered_names(contract("layers")["layers"])  # type: ignore[arg-type]
    # the page leaves out private modules (underscore), which the contract lists as optional
    assert layered_names(layers) == [n for n in names if not n.startswith("_")]


def test_cycles_are_checked_at_every_depth() -> None:
    acyclic = contract("acyclic")
    assert acyclic["type"] == "acyclic_siblings"
    assert acyclic["ancestors"] == ["watchkeeper"]
