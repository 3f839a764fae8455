"""What callers hand to the logbook: one request's predictions, and labels that come back.

Both are cheap to build on a request path: the checks below only look at shapes and types.
The logbook keeps references to the arrays until they are written: do not mutate them after
logging.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from watchkeeper.errors import InvalidInput
from watchkeeper.models.signature import Signature

# An outcome name becomes the Parquet column ``outcome_<name>``: a short identifier.
OUTCOME_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
OUTCOME_NAME_RULE = (
    "expected a name of letters, digits and _ (at most 64, not starting with a digit)"
)
ROLES = frozenset({"primary", "canary", "shadow", "arm-a", "arm-b", "batch"})


@dataclass(frozen=True, kw_only=True, eq=False, slots=True)
class PredictionBatch:
    """The rows of one request as one version answered them.

    ``features`` is a 2-D float64 array in ``feature_names`` order or a DataFrame holding those
    columns; ``predictions`` is 1-D (numbers or labels); ``probabilities`` is 2-D, its columns
    in ``classes`` order. ``timestamp`` is when the request arrived (UTC; a naive value is taken
    as UTC). ``signature`` (the answering version's) gives the features' types: a ``bool``
    feature is stored as booleans even when ``features`` carries it as 0.0/1.0.
    """

    request_id: str
    model: str
    version: int
    role: str
    timestamp: datetime
    features: np.ndarray | pd.DataFrame
    feature_names: list[str]
    predictions: np.ndarray
    probabilities: np.ndarray | None
    classes: list[str] | None
    latency_s: float
    routing_key: str | None = None
    metadata: dict[str, str] | None = None
    signature: Signature | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidInput(f"unknown role {self.role!r}; expected one of {sorted(ROLES)}")
        if not self.request_id or not self.model:
            raise InvalidInput("a prediction batch needs a request_id and a model")
        n = len(self.predictions)
        if self.predictions.ndim != 1:
            raise InvalidInput(f"predictions must be 1-D, got shape {self.predictions.shape}")
        if self.features.ndim != 2 or len(self.features) != n:
            raise InvalidInput(
                f"features must be 2-D with one row per prediction ({n}), "
                f"got shape {self.features.shape}"
            )
        if isinstance(self.features, np.ndarray) and self.features.shape[1] != len(
            self.feature_names
        ):
            raise InvalidInput(
                f"features have {self.features.shape[1]} columns "
                f"but {len(self.feature_names)} feature names"
            )
        probs = self.probabilities
        if probs is not None and (probs.ndim != 2 or len(probs) != n):
            raise InvalidInput(f"probabilities must be 2-D with {n} rows, got {probs.shape}")

    @property
    def n_rows(self) -> int:
        return len(self.predictions)

    @property
    def feature_types(self) -> tuple[str | None, ...]:
        """The signature's type of each of ``feature_names`` (None: not in a signature)."""
        if self.signature is None:
            return (None,) * len(self.feature_names)
        types = {c.name: c.dtype for c in self.signature.columns}
        return tuple(types.get(name) for name in self.feature_names)


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """A label or outcome for one row of an earlier request.

    ``label`` is a number or a boolean (stored in ``label``, booleans as 0/1) or a string
    (stored in ``label_text``); NaN counts as no label. ``outcome`` holds named numbers (stored
    as ``outcome_<name>``). ``timestamp`` is when the outcome happened; ``None`` means now.
    """

    request_id: str
    row: int = 0
    label: Any = None
    outcome: dict[str, float] | None = None
    timestamp: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.request_id, str) or not self.request_id:
            raise InvalidInput("feedback needs a non-empty request_id")
        problem = label_problem(self.label)
        if problem is not None:
            raise InvalidInput(f"feedback label {self.label!r}: {problem}")
        row = self.row
        if isinstance(row, bool) or not isinstance(row, int | np.integer) or row < 0:
            raise InvalidInput(f"feedback row must be an integer >= 0, got {row!r}")
        for name, value in (self.outcome or {}).items():
            if not isinstance(name, str) or not OUTCOME_NAME.match(name):
                raise InvalidInput(f"feedback outcome {name!r}: {OUTCOME_NAME_RULE}")
            if not isinstance(value, int | float | np.number):
                raise InvalidInput(f"feedback outcome {name!r} must be a number, got {value!r}")
        if self.timestamp is None:
            object.__setattr__(self, "timestamp", datetime.now(UTC))


_LABEL_TYPES = (str, bool, int, float, np.bool_, np.integer, np.floating)


def label_problem(label: object) -> str | None:
    """Why ``label`` cannot be a label (None when it can): a label is a string, a number or a
    boolean, the types a model predicts; infinities are refused.

    >>> label_problem("churned"), label_problem(True), label_problem([1])
    (None, None, 'expected a string, a number or a boolean, got list')
    """
    if is_missing(label):
        return None
    if not isinstance(label, _LABEL_TYPES):
        return f"expected a string, a number or a boolean, got {type(label).__name__}"
    if isinstance(label, float | np.floating) and math.isinf(label):
        return "expected a finite number"
    return None


def is_missing(label: object) -> bool:
    """No label: None, NaN, ``pd.NA`` or ``NaT``."""
    if label is None or label is pd.NA or label is pd.NaT:
        return True
    return isinstance(label, float | np.floating) and math.isnan(label)
