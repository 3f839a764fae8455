"""Model references: ``churn``, ``churn@3``, ``churn@production``, ``churn@champion``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from watchkeeper.errors import InvalidInput, InvalidReference, InvalidStage
from watchkeeper.registry.schema import STAGES

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
RESERVED_REFS = frozenset({*STAGES, "latest"})


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference. ``kind`` is ``version``, ``stage``, ``alias`` or ``latest``.

    >>> ModelRef.parse("churn@3")
    ModelRef(name='churn', kind='version', value='3')
    >>> ModelRef.parse("churn").kind
    'stage'
    """

    name: str
    kind: str
    value: str

    @classmethod
    def parse(cls, text: str, *, default: str = "production") -> ModelRef:
        name, sep, ref = text.partition("@")
        check_name(name)
        if sep and not ref:
            raise InvalidReference(f"'{text}' has nothing after '@' (try {name}@production)")
        ref = ref if sep else default
        if ref.isdigit():
            return cls(name, "version", str(int(ref)))
        if ref == "latest":
            return cls(name, "latest", ref)
        if ref in STAGES:
            return cls(name, "stage", ref)
        if not _ALIAS.match(ref):
            raise InvalidReference(
                f"'{ref}' in '{text}' is not a version number, a stage or an alias"
            )
        return cls(name, "alias", ref)

    def __str__(self) -> str:
        return f"{self.name}@{self.value}"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput(
            f"invalid model name '{name}': use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit, at most 128 characters"
        )
    return name


def check_alias(alias: str) -> str:
    if alias in RESERVED_REFS or not _ALIAS.match(alias):
        raise InvalidInput(
            f"invalid alias '{alias}': use letters, digits, '_' or '-', starting with a letter, "
            f"and not one of {', '.join(sorted(RESERVED_REFS))}"
        )
    return alias


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise InvalidStage(f"unknown stage '{stage}': choose one of {', '.join(STAGES)}")
    return stage
