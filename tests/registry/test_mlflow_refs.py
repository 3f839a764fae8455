"""MLflow's spelling of model references, parsed wherever a reference is."""

from __future__ import annotations

import pytest

from watchkeeper.errors import InvalidInput, InvalidReference
from watchkeeper.registry.refs import ModelRef, canonical_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:/churn/3", ModelRef("churn", "version", "3")),
        ("models:/churn@champion", ModelRef("churn", "alias", "champion")),
        ("models:/churn/Production", ModelRef("churn", "stage", "production")),
        ("models:/churn/staging", ModelRef("churn", "stage", "staging")),
        ("models:/churn/latest", ModelRef("churn", "latest", "latest")),
        ("models:/churn@3", ModelRef("churn", "version", "3")),
    ],
)
def test_mlflow_references_parse_as_ours(text: str, expected: ModelRef) -> None:
    """models:/NAME/VERSION, models:/NAME/STAGE (any case) and models:/NAME@ALIAS mean what
    NAME@VERSION, NAME@stage and NAME@ALIAS mean."""
    assert ModelRef.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("models:/churn", "not an MLflow model reference"),
        ("models:/churn/", "not an MLflow model reference"),
        ("models:/churn/3/4", "not an MLflow model reference"),
        ("models:/churn/champion", r"not a version number or a stage .*models:/churn@champion"),
        ("models:/a/b@c", "not an MLflow model reference"),
    ],
)
def test_malformed_mlflow_references_say_how_to_write_them(text: str, problem: str) -> None:
    """A malformed models:/ reference is an InvalidReference (a 400) naming the right forms."""
    with pytest.raises(InvalidReference, match=problem):
        ModelRef.parse(text)


def test_other_references_are_unchanged() -> None:
    """Text that is not a models:/ URI passes through, and the name rules still hold."""
    assert canonical_ref("churn@3") == "churn@3"
    assert canonical_ref("churn") == "churn"
    with pytest.raises(InvalidInput, match="invalid model name"):
        ModelRef.parse("models:/bad name@x")
