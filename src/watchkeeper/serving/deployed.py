"""What the model table holds: a loaded version (:class:`Deployed`), a model's deployment as a
replica applies it (:class:`Route`), a version that could not be loaded (:class:`Problem`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from watchkeeper.models import LoadedModel
from watchkeeper.monitoring.profile import DatasetProfile
from watchkeeper.registry import ModelVersion
from watchkeeper.serving.batcher import MicroBatcher
from watchkeeper.serving.row_plan import RowPlan
from watchkeeper.serving.validation import Validator


@dataclass
class Deployed:
    """One loaded version, ready to answer."""

    version: ModelVersion
    model: LoadedModel
    validator: Validator | None
    batcher: MicroBatcher
    profile: DatasetProfile | None = None
    class_names: list[str] | None = None
    role: str = "production"  # the role it was loaded for (its model_info label)
    last_used: float = 0.0  # time.monotonic() when a request last picked it
    # without a signature: the column order keyed rows take (serving/row_plan.py); None until
    # settled, False when settled on "no plan" (the model names no columns, nor did a request)
    row_plan: RowPlan | Literal[False] | None = None

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def number(self) -> str:
        return str(self.version.version)


@dataclass(frozen=True)
class Route:
    """A model's deployment as this replica applies it: the candidate beside production."""

    mode: str  # shadow | canary | bluegreen | ab
    candidate: Deployed
    share: float  # answered share (canary, ab, bluegreen) or copied share (shadow)
    routing_field: str | None = None
    same_signature: bool = False  # the candidate takes production's validated batch as it is

    @property
    def answers(self) -> bool:
        """Whether the candidate answers some requests (a shadow only receives copies)."""
        return self.mode != "shadow" and self.share > 0


@dataclass(frozen=True)
class Problem:
    """Why one version of a model (in one role) is not loaded here."""

    model: str
    role: str  # production | candidate | standby
    version: int
    error: str

    @property
    def text(self) -> str:
        return f"{self.role} version {self.version} failed to load: {self.error}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "role": self.role, "version": self.version,
                "reason": self.text}  # fmt: skip


@dataclass
class TableState:
    live: dict[str, Deployed] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    pool: dict[tuple[str, int], Deployed] = field(default_factory=dict)  # loaded, by version
    standby_until: dict[str, datetime] = field(default_factory=dict)
    loading: dict[tuple[str, int], asyncio.Task[Deployed]] = field(default_factory=dict)
    ref_cache: dict[str, int] = field(default_factory=dict)  # "name@latest" -> version
    ref_epoch: dict[str, int] = field(default_factory=dict)  # bumped when name's refs move
    revisions: dict[str, int] = field(default_factory=dict)
    problems: dict[tuple[str, str], Problem] = field(default_factory=dict)  # (model, role)
    production: dict[str, int] = field(default_factory=dict)  # tried to load: must be served
    retry: dict[str, tuple[float, float]] = field(default_factory=dict)  # (due, delay) seconds
    reported: dict[str, tuple[int, int]] = field(default_factory=dict)  # (revision, candidate)
