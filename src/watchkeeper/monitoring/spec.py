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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from watchkeeper.config import Settings, parse_duration, refuse_unknown
from watchkeeper.errors import Detail, InvalidInput, WatchkeeperError
from watchkeeper.monitoring.drift import DriftPolicy
from watchkeeper.monitoring.quality import QualityPolicy

CHECKS = ("quality", "drift", "prediction_drift", "performance", "estimated", "operational")
# multivariate and concept need the version's training data (its data_uri): opt in
ALL_CHECKS = (*CHECKS, "multivariate", "concept")


@dataclass(frozen=True, kw_only=True)
class MonitorSpec:
    """What to check for one model: window length, checks, thresholds and alert targets."""

    model: str
    window: timedelta = timedelta(hours=1)
    every: timedelta | None = None  # how often a scheduler runs it; None: once per window
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
    def from_dict(cls, model: str, data: Mapping[str, Any]) -> MonitorSpec:
        """A spec from a ``[monitors.MODEL]`` table; every problem names its key.

        >>> MonitorSpec.from_dict("churn", {"window": "1d", "checks": ["drift"]}).window.days
        1
        """
        where = f"monitors.{model}"
        known = {f.name for f in dataclasses.fields(cls)} - {"model"}
        refuse_unknown(where, data, known)
        values: dict[str, Any] = {}
        for key, value in data.items():
            try:
                values[key] = _convert(key, value)
            except (WatchkeeperError, TypeError, ValueError) as exc:
                problem = exc.message if isinstance(exc, WatchkeeperError) else str(exc)
                raise InvalidInput(
                    f"[{where}] {key}: {problem}", details=[Detail(f"{where}.{key}", problem)]
                ) from exc
        try:
            return cls(model=model, **values)
        except WatchkeeperError as exc:
            raise InvalidInput(f"[{where}]: {exc.message}") from exc


def _convert(key: str, value: Any) -> Any:
    if key in ("window", "every"):
        return parse_duration(value)
    if key == "version":
        return int(value)
    if key in ("checks", "webhooks"):
        if isinstance(value, str) or not isinstance(value, list):
            raise InvalidInput("must be a list of strings")
        return tuple(str(v) for v in value)
    if key == "drift":
        table = _table(value, DriftPolicy)
        if table.get("correction") == "none":  # TOML has no null
            table["correction"] = None
        return DriftPolicy(**table)
    if key == "quality":
        pairs: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in _table(value, QualityPolicy).items()
        }
        return QualityPolicy(**pairs)
    if key in ("performance_tolerance", "max_error_rate", "max_latency_p99_s",
               "price_per_cpu_hour"):  # fmt: skip
        return float(value)
    return str(value)


def _table(value: Any, kind: type) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput("must be a table")
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise InvalidInput(f"unknown key(s) {unknown}; known: {sorted(known)}")
    return dict(value)


def declared_monitors(settings: Settings) -> dict[str, MonitorSpec]:
    """Every monitor declared in the settings' ``[monitors.*]`` tables, by model name."""
    return {name: MonitorSpec.from_dict(name, table) for name, table in settings.monitors.items()}
