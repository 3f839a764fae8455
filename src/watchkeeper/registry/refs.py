"""Model references: ``churn``, ``churn@3``, ``churn@production``, ``churn@champion``, and
MLflow's spelling of the same: ``models:/churn/3``, ``models:/churn@champion``,
``models:/churn/Production``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from watchkeeper.errors import InvalidInput, InvalidReference, InvalidStage
from watchkeeper.registry.schema import STAGES

# Patterns are matched with fullmatch: "$" would also accept a name ending in a newline.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")
_DIGITS = re.compile(r"[0-9]+")
RESERVED_REFS = frozenset({*STAGES, "latest"})
# Version numbers are 32-bit integers in the schema (PostgreSQL INTEGER); a larger one can
# name no version, and would overflow the database driver if it reached a query.
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference. ``kind`` is ``version``, ``stage``, ``alias`` or ``latest``.

    >>> ModelRef.parse("churn@3")
    ModelRef(name='churn', kind='version', value='3')
    >>> ModelRef.parse("churn").kind
    'stage'
    >>> ModelRef.parse("models:/churn@champion")
    ModelRef(name='churn', kind='alias', value='champion')
    """

    name: str
    kind: str
    value: str

    @classmethod
    def parse(cls, text: str, *, default: str = "production") -> ModelRef:
        text = canonical_ref(text)
        name, sep, ref = text.partition("@")
        check_name(name)
        if sep and not ref:
            raise InvalidReference(f"'{text}' has nothing after '@' (try {name}@production)")
        ref = ref if sep else default
        if _DIGITS.fullmatch(ref):
            return cls(name, "version", str(parse_version(ref)))
        if ref == "latest":
            return cls(name, "latest", ref)
        if ref in STAGES:
            return cls(name, "stage", ref)
        if not _ALIAS.fullmatch(ref):
            raise InvalidReference(
                f"'{ref}' in '{text}' is not a version number, a stage or an alias"
            )
        return cls(name, "alias", ref)

    def __str__(self) -> str:
        return f"{self.name}@{self.value}"


MLFLOW_PREFIX = "models:/"


def canonical_ref(text: str) -> str:
    """MLflow's ``models:/NAME/VERSION``, ``models:/NAME/STAGE`` (any case, or ``latest``) and
    ``models:/NAME@ALIAS`` in our spelling, ``NAME@REF``; any other text is returned unchanged.

    >>> canonical_ref("models:/churn/3"), canonical_ref("models:/churn/Production")
    ('churn@3', 'churn@production')
    >>> canonical_ref("churn@champion")
    'churn@champion'
    """
    if not text.startswith(MLFLOW_PREFIX):
        return text
    rest = text[len(MLFLOW_PREFIX) :]
    name, sep, ref = rest.partition("@")
    if sep and "/" not in name:
        return f"{name}@{ref}"
    name, sep, ref = rest.partition("/")
    if not sep or not ref or "/" in ref or "@" in rest:
        raise InvalidReference(
            f"'{text}' is not an MLflow model reference: use models:/NAME/VERSION, "
            "models:/NAME/STAGE or models:/NAME@ALIAS"
        )
    if _DIGITS.fullmatch(ref):
        return f"{name}@{ref}"
    if ref.lower() not in RESERVED_REFS:
        raise InvalidReference(
            f"'{ref}' in '{text}' is not a version number or a stage "
            f"(an alias is written models:/{name}@{ref})"
        )
    return f"{name}@{ref.lower()}"


def parse_version(text: str) -> int:
    """A version number from text (ASCII digits only), within the range the schema stores."""
    if not _DIGITS.fullmatch(text):
        raise InvalidReference(f"{text!r} is not a version number")
    if len(text.lstrip("0")) > len(str(MAX_VERSION)):
        return check_version(MAX_VERSION + 1)  # too long to convert cheaply, and out of range
    return check_version(int(text))


def check_version(version: int) -> int:
    """Refuse a version number no version can have before it reaches a query."""
    if not 0 <= version <= MAX_VERSION:
        shown = str(version) if abs(version) < 10**30 else "a number this large"
        raise InvalidReference(f"version {shown} is out of range (0 to {MAX_VERSION})")
    return version


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid model name {name!r}: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit, at most 128 characters"
        )
    return name


def check_alias(alias: str) -> str:
    if alias in RESERVED_REFS or not _ALIAS.fullmatch(alias):
        raise InvalidInput(
            f"invalid alias {alias!r}: use letters, digits, '_' or '-', starting with a letter, "
            f"and not one of {', '.join(sorted(RESERVED_REFS))}"
        )
    return alias


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise InvalidStage(f"unknown stage '{stage}': choose one of {', '.join(STAGES)}")
    return stage
