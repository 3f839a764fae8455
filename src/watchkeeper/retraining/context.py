"""What a training function receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True, kw_only=True)
class TrainingContext:
    """The training window of labelled logbook rows, and where things are.

    ``data`` holds ``features`` and the ``label`` column; ``X``/``y`` are the two halves.
    Return the fitted model, or ``(model, {"metric": value, …})``.
    """

    model: str
    data: pd.DataFrame
    features: list[str]
    label: str
    params: dict[str, Any] = field(default_factory=dict)
    reference_uri: str | None = None
    parent_version: int | None = None
    output_dir: Path = Path(".")
    train_window: tuple[str, ...] = ()

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 - the usual name
        return self.data[self.features]

    @property
    def y(self) -> pd.Series:
        return self.data[self.label]
