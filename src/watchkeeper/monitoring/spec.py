"""A monitor's declaration: which checks run on a model, how often, with which thresholds.

Declared in Python (``MonitorSpec(model="churn", window=timedelta(hours=1))``) or in
``watchkeeper.toml``, one table per model::

    [monitors.churn]
    window = "1h"                       # each run checks the last hour of the logbook
    every = "15m"                       # how often the scheduler runs it (default: the window)
    checks = ["quality", "drift", "prediction_drift", "performance", "operational"]
    webhooks = ["https://hooks.example.com/watchkeeper"]
    max_error_rate = 0.02
    max_latency_p99_s = 0.25

    [monitors.churn.drift]              # DriftPolicy fields
    correction = "bh"
    method = { tenure = "ks" }

    [monitors.churn.quality]            # QualityPolicy fields: (warn, fail) pairs
    null_rate = [0.05, 0.2]

The table is read into the dataclasses below by :func:`watchkeeper.config.validate`, so their
fields are the one statement of what a table may hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from watchkeeper.config import Duration, Settings, validate
from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.drift import DriftPolicy
from watchkeeper.monitoring.quality import QualityPolicy

CHECKS = ("quality", "drift", "prediction_drift", "performance", "estimated", "operational")
# multivariate and concept need the version's training data (its data_uri): opt in
ALL_CHECKS = (*CHECKS, "multivariate", "concept")


@dataclass(frozen=True, kw_only=True)
class MonitorSpec:
    """What to check for one model: window length, checks, thresholds and alert targets."""

    model: str
    window: Duration = timedelta(hours=1)
    every: Duration | None = None  # how often a scheduler runs it; None: once per window
    version: int | None = None  # default: the production version
    checks: tuple[str, ...] = CHECKS
    drift: DriftPolicy = field(default_factory=DriftPolicy)
    quality: QualityPolicy = field(default_factory=QualityPolicy)
    performance_tolerance: float = 0.0
    max_error_rate: float = 0.01  # operational: share of 5xx answers that fails the check
    max_latency_p99_s: float | None = None
    price_per_cpu_hour: float = 0.05  # operational: the estimated cost of the window
    label_column: str = "label"  # concept: the label column of the training data
    webhooks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", tuple(self.checks))
        object.__setattr__(self, "webhooks", tuple(self.webhooks))
        unknown = sorted(set(self.checks) - set(ALL_CHECKS))
        if unknown:
            raise InvalidInput(f"unknown check(s) {unknown}; choose from {list(ALL_CHECKS)}")
        if self.window <= timedelta(0):
            raise InvalidInput("the window must be longer than zero")
        if self.every is not None and self.every <= timedelta(0):
            raise InvalidInput("'every' must be longer than zero")
        if not 0 <= self.max_error_rate <= 1 or self.price_per_cpu_hour < 0:
            raise InvalidInput("max_error_rate must be in [0, 1] and price_per_cpu_hour >= 0")

    @property
    def interval(self) -> timedelta:
        """How often the monitor runs: ``every``, else once per window."""
        return self.every or self.window

    @classmethod
    def from_dict(
        cls, model: str, data: Mapping[str, Any], *, source: Path | None = None
    ) -> MonitorSpec:
        """A spec from a ``[monitors.MODEL]`` table (of the file ``source``); every problem
        names its key.

        >>> MonitorSpec.from_dict("churn", {"window": "1d", "checks": ["drift"]}).window.days
        1
        """
        where = f"monitors.{model}"
        if isinstance(data, Mapping):
            drift = data.get("drift")
            if isinstance(drift, Mapping) and drift.get("correction") == "none":  # TOML: no null
                data = {**data, "drift": {**drift, "correction": None}}
        return validate(cls, data, where=where, source=source, named={"model": model})


def declared_monitors(settings: Settings) -> dict[str, MonitorSpec]:
    """Every monitor declared in the settings' ``[monitors.*]`` tables, by model name."""
    return {
        name: MonitorSpec.from_dict(name, table, source=settings.source)
        for name, table in settings.monitors.items()
    }
