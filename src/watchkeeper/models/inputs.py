"""Which signature a package gets: what the caller gave, met with what the model itself carries.

The rule (the only place it lives):

1. An explicit ``signature``, else one inferred from the ``input_example``, else one inferred
   from the ``reference_data`` (training data: columns the model does not take, such as the
   target, are left out when the model names its inputs).
2. Otherwise what the model carries (``Carried``): an MLflow ``MLmodel`` signature, an ONNX
   graph's inputs, a booster's feature names and types, a scikit-learn estimator's
   ``feature_names_in_`` (``n_features_in_`` alone gives ``f0 .. f{n-1}``), recorded by each
   flavor in the manifest option ``model_inputs``. Types the model does not record are
   ``float``.
3. Otherwise none: the version is served without validation (and flagged as such).

When both exist they must agree: the model's named inputs are exactly the columns given (for
reference data: among them), or, for a model that only knows how many inputs it takes, the
number of columns matches. A disagreement is ``InvalidInput`` naming the columns. The columns
keep the model's order, since that is the order it is fed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from watchkeeper.errors import Detail, InvalidInput
from watchkeeper.models.signature import ColumnSpec, ColumnType, Signature, infer_signature

MODEL_INPUTS = "model_inputs"  # the manifest option where flavors record what the model knows
Example = pd.DataFrame | Mapping[str, Any] | np.ndarray[Any, Any]
SignatureLike = Signature | Mapping[str, Any]


@dataclass(frozen=True)
class Carried:
    """The inputs a model knows by itself; ``named=False``: only their number (``f0`` ..).

    ``spaces_as_underscores``: the model stored its names with each space as ``_`` (LightGBM),
    so a given column ``"petal length"`` is its input ``"petal_length"``.
    """

    signature: Signature
    named: bool
    spaces_as_underscores: bool = False

    def to_option(self) -> dict[str, Any]:
        loose = {"spaces_as_underscores": True} if self.spaces_as_underscores else {}
        return {"named": self.named, **loose, **self.signature.to_dict()}

    @classmethod
    def from_option(cls, value: Any) -> Carried | None:
        if not isinstance(value, Mapping) or not value.get("columns"):
            return None
        return cls(
            Signature.from_dict(value),
            named=bool(value.get("named", True)),
            spaces_as_underscores=bool(value.get("spaces_as_underscores", False)),
        )

    def match(self, given: Sequence[Any]) -> tuple[list[Any], list[str], list[str]]:
        """The ``given`` names in the model's order, the model's inputs not among them, and
        the given names the model does not take."""
        key = (lambda n: str(n).replace(" ", "_")) if self.spaces_as_underscores else str
        by_key = {key(n): n for n in given}
        wanted = self.signature.names
        missing = [n for n in wanted if n not in by_key]
        taken = set(wanted)
        extra = [str(n) for n in given if key(n) not in taken]
        return [by_key[n] for n in wanted if n in by_key], missing, extra


def carried_option(
    names: Sequence[str] | None,
    types: Sequence[ColumnType],
    *,
    nullable: bool | Sequence[bool],
    spaces_as_underscores: bool = False,
) -> dict[str, Any] | None:
    """The ``model_inputs`` option for inputs ``names`` (None: unnamed) of these ``types``;
    None when they do not make a signature (no inputs, duplicate names)."""
    labels = [str(n) for n in names] if names is not None else [f"f{i}" for i in range(len(types))]
    nulls = [nullable] * len(types) if isinstance(nullable, bool) else list(nullable)
    if not types or len(labels) != len(types) or len(set(labels)) != len(labels):
        return None
    columns = tuple(
        ColumnSpec(name=n, dtype=t, nullable=z)
        for n, t, z in zip(labels, types, nulls, strict=True)
    )
    named = names is not None
    return Carried(Signature(columns), named, spaces_as_underscores).to_option()


def carried_inputs(options: Mapping[str, Any]) -> Carried | None:
    """What a package's model carries, from its manifest options."""
    return Carried.from_option(options.get(MODEL_INPUTS))


@dataclass(frozen=True, kw_only=True)
class Given:
    """What the caller said about the inputs."""

    signature: Signature | None = None
    example: Example | None = None
    reference: pd.DataFrame | None = None

    @classmethod
    def of(
        cls,
        signature: SignatureLike | None = None,
        example: Example | None = None,
        reference: pd.DataFrame | None = None,
    ) -> Given:
        if isinstance(signature, Mapping):
            signature = Signature.from_dict(signature)
        elif signature is not None and not isinstance(signature, Signature):
            raise InvalidInput(f"signature must be a Signature, not a {type(signature).__name__}")
        return cls(signature=signature, example=example, reference=reference)

    @property
    def empty(self) -> bool:
        return self.signature is None and self.example is None and self.reference is None


def decide(given: Given, carried: Carried | None) -> Signature | None:
    """The package's signature (see the module docstring for the rule)."""
    if given.signature is not None:
        return _agreed(given.signature, carried, "the signature given")
    if given.example is not None:
        example = given.example
        if isinstance(example, np.ndarray) and carried is not None and carried.named:
            example = _named_array(example, carried.signature.names)
        return _agreed(infer_signature(example), carried, "the input example")
    if given.reference is not None:
        return _agreed(_from_reference(given.reference, carried), carried, "the reference data")
    return carried.signature if carried is not None else None


def _named_array(example: np.ndarray[Any, Any], names: list[str]) -> Any:
    if example.ndim == 2 and example.shape[1] == len(names):
        return pd.DataFrame(example, columns=names)
    return example


def _from_reference(frame: pd.DataFrame, carried: Carried | None) -> Signature:
    if carried is not None and carried.named:
        columns, missing, _ = carried.match(list(frame.columns))
        if missing:
            raise _disagree("the reference data", missing, [])
        return infer_signature(frame[columns])
    return infer_signature(frame)


def _agreed(signature: Signature, carried: Carried | None, source: str) -> Signature:
    if carried is None:
        return signature
    if not carried.named:
        if len(signature) != len(carried.signature):
            raise InvalidInput(
                f"{source} has {len(signature)} column(s) but the model takes "
                f"{len(carried.signature)} input(s)",
                details=[Detail(field="columns", problem=f"expected {len(carried.signature)}")],
            )
        return signature
    columns, missing, extra = carried.match(signature.names)
    if missing or extra:
        raise _disagree(source, missing, extra)
    by_name = {c.name: c for c in signature.columns}
    return Signature(tuple(by_name[n] for n in columns))


def _disagree(source: str, missing: list[str], extra: list[str]) -> InvalidInput:
    parts = [f"lacks the model's input(s) {', '.join(missing)}"] if missing else []
    parts += [f"has column(s) the model does not take: {', '.join(extra)}"] if extra else []
    details = [Detail(field=n, problem="the model takes it; missing") for n in missing]
    details += [Detail(field=n, problem="not an input of the model") for n in extra]
    return InvalidInput(
        f"{source} disagrees with the model's own input names: {'; '.join(parts)}",
        details=details,
    )
