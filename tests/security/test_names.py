"""Names match whole strings: none may end in a newline (issue 16, item 7).

Regression: the patterns used ``re.match`` with ``$``, which also matches just before a final
``\\n``, so ``"churn\\n"`` was accepted as a model name (and alias, filter, import path).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from watchkeeper.cli.main import app
from watchkeeper.errors import InvalidInput, InvalidReference
from watchkeeper.models import save_model
from watchkeeper.registry import ModelRef, Registry
from watchkeeper.registry.search import Filter
from watchkeeper.registry.tokens import TokenStore

NEWLINE_NAMES = ["churn\n", "churn\r\n", "\nchurn", "ch\nurn", "churn\x00"]


@pytest.mark.parametrize("name", NEWLINE_NAMES)
def test_register_refuses_a_name_with_a_newline(
    registry: Registry, model: LogisticRegression, name: str
) -> None:
    """A model name with a newline (even a trailing one) is refused and nothing is stored."""
    with pytest.raises(InvalidInput, match="invalid model name"):
        registry.register(name, model)
    assert registry.list_models() == []


@pytest.mark.parametrize("alias", ["champion\n", "champion\r\n", "cham\npion"])
def test_alias_refuses_a_newline(registry: Registry, model: LogisticRegression, alias: str) -> None:
    """An alias with a newline is refused."""
    registry.register("churn", model)
    with pytest.raises(InvalidInput, match="invalid alias"):
        registry.set_alias("churn", 1, alias)


@pytest.mark.parametrize("text", ["churn\n", "churn\n@1", "churn@champion\n", "churn@1\n"])
def test_references_refuse_a_newline(text: str) -> None:
    """A reference whose name or alias ends in a newline does not parse."""
    with pytest.raises(InvalidInput):
        ModelRef.parse(text)


def test_token_name_refuses_a_newline(registry: Registry) -> None:
    """A token name with a newline is refused."""
    with pytest.raises(InvalidInput, match="token name"):
        TokenStore(registry.engine).create("ci\n", "reader", actor="tester")


@pytest.mark.parametrize("text", ["metrics.a\nuc >= 0.8", "stagee = production", "tags.\n = x"])
def test_search_filters_match_whole_text(text: str) -> None:
    """A filter is read as a whole; a newline inside it is not skipped over."""
    with pytest.raises(InvalidInput, match="cannot read filter"):
        Filter.parse(text)


def test_import_path_refuses_a_trailing_newline(tmp_path: Path) -> None:
    """A python-flavor import path ending in a newline is refused."""
    with pytest.raises(InvalidInput, match="import"):
        save_model(None, tmp_path / "m", import_path="tests.models.helpers:DOUBLER\n")


def test_cli_refuses_a_name_with_a_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: LogisticRegression
) -> None:
    """``models register`` and ``models alias`` refuse such names in one line, exit code 1."""
    monkeypatch.setenv("WATCHKEEPER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("WATCHKEEPER_DATABASE_URL", raising=False)
    save_model(model, tmp_path / "pkg")
    runner = CliRunner()
    result = runner.invoke(app, ["models", "register", "churn\n", str(tmp_path / "pkg")])
    assert result.exit_code == 1
    assert result.output.startswith("error: invalid model name")
    ok = runner.invoke(app, ["models", "register", "churn", str(tmp_path / "pkg")])
    assert ok.exit_code == 0, ok.output
    result = runner.invoke(app, ["models", "alias", "churn", "1", "champion\n"])
    assert result.exit_code == 1
    assert result.output.startswith("error: invalid alias")


def test_the_reference_error_is_an_invalid_reference() -> None:
    """An alias-shaped reference with a newline is an InvalidReference (a 400), not a lookup."""
    with pytest.raises(InvalidReference):
        ModelRef.parse("churn@champion\n")
