"""How a model is retrained: its entrypoint, triggers, gate and rollout strategy.

Declared in Python (``RetrainSpec(model="churn", entrypoint="train:fit")``) or in
``watchkeeper.toml``::

    [retraining.churn]
    entrypoint = "churn_training:train"    # module:function, or command = "python train.py …"
    params = { C = 1.0 }
    window = "30d"                         # labelled logbook rows it trains on
    evaluation_window = "1d"               # the newest labelled rows, held out for the gate
    timeout = "30m"
    cooldown = "6h"
    strategy = "shadow-canary"             # shadow-canary | canary | bluegreen | none
    triggers = [
      { kind = "schedule", cron = "0 3 * * 0" },
      { kind = "drift", check = "drift" },
      { kind = "performance", metric = "accuracy", below = 0.9, windows = 3 },
    ]

    [retraining.churn.gate]
    metric = "accuracy"                    # compared with production, paired bootstrap
    tolerance = 0.01                       # may be this much worse
    minimums = { accuracy = 0.8 }          # absolute floors (maximums for errors)
    on_equal = "deploy"                    # deploy | archive, when within tolerance

The table is read into the dataclasses below by :func:`watchkeeper.config.validate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from watchkeeper.config import Duration, Settings, validate
from watchkeeper.errors import InvalidInput

TriggerKind = Literal["schedule", "drift", "performance", "manual"]
Strategy = Literal["shadow-canary", "canary", "bluegreen", "none"]
TRIGGER_KINDS: tuple[str, ...] = get_args(TriggerKind)
STRATEGIES: tuple[str, ...] = get_args(Strategy)
LOWER_IS_BETTER = ("mae", "rmse", "mape", "log_loss", "brier", "calibration_error")


@dataclass(frozen=True, kw_only=True)
class Trigger:
    kind: TriggerKind
    cron: str | None = None  # schedule
    check: str = "drift"  # drift: an open alert of this check (drift, quality, …)
    metric: str = "accuracy"  # performance
    below: float | None = None  # performance: the threshold (above, for error metrics)
    windows: int = 3  # performance: this many newest windows past the threshold

    def __post_init__(self) -> None:
        if self.kind not in TRIGGER_KINDS:
            raise InvalidInput(f"unknown trigger '{self.kind}'; choose from {list(TRIGGER_KINDS)}")
        if self.kind == "schedule":
            from watchkeeper.cron import next_time  # validates the expression

            if not self.cron:
                raise InvalidInput("a schedule trigger needs cron = '…'")
            next_time(self.cron, _epoch())
        if self.kind == "performance" and (self.below is None or self.windows < 1):
            raise InvalidInput("a performance trigger needs below = <threshold> and windows >= 1")

    @property
    def name(self) -> str:
        if self.kind == "schedule":
            return f"schedule {self.cron}"
        if self.kind == "drift":
            return f"alert {self.check}"
        if self.kind == "performance":
            return f"{self.metric} past {self.below} for {self.windows} windows"
        return "manual"


@dataclass(frozen=True, kw_only=True)
class GatePolicy:
    metric: str | None = None  # default: accuracy for classifiers, rmse for regressors
    tolerance: float = 0.01
    minimums: Mapping[str, float] = field(default_factory=dict)  # floors (caps for errors)
    on_equal: Literal["deploy", "archive"] = "deploy"
    bootstrap: int = 1000
    confidence: float = 0.95
    max_quality_failures: int = 0  # data-quality "fail" findings allowed in the training data

    def __post_init__(self) -> None:
        object.__setattr__(self, "minimums", dict(self.minimums))
        if self.on_equal not in ("deploy", "archive"):
            raise InvalidInput("on_equal must be 'deploy' or 'archive'")
        if self.tolerance < 0 or not 0 < self.confidence < 1 or self.bootstrap < 100:
            raise InvalidInput("need tolerance >= 0, 0 < confidence < 1 and bootstrap >= 100")


@dataclass(frozen=True, kw_only=True)
class RetrainSpec:
    model: str
    entrypoint: str | None = None  # "module:function"
    command: str | None = None  # a shell command; {output}, {train}, {params} are filled in
    params: Mapping[str, Any] = field(default_factory=dict)
    window: Duration = timedelta(days=30)
    evaluation_window: Duration = timedelta(days=1)
    evaluation_data: str | None = None  # a declared evaluation set (with a label column)
    label_column: str = "label"
    timeout: Duration = timedelta(minutes=30)
    cooldown: Duration = timedelta(hours=6)
    strategy: Strategy = "shadow-canary"
    triggers: tuple[Trigger, ...] = ()
    gate: GatePolicy = field(default_factory=GatePolicy)
    rollout: Mapping[str, Any] = field(default_factory=dict)  # Plan fields for the rollout

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "rollout", dict(self.rollout))
        object.__setattr__(self, "triggers", tuple(self.triggers))
        if (self.entrypoint is None) == (self.command is None):
            raise InvalidInput("declare exactly one of entrypoint = 'module:function' or command")
        if self.entrypoint is not None and ":" not in self.entrypoint:
            raise InvalidInput(f"entrypoint '{self.entrypoint}' must look like module:function")
        if self.strategy not in STRATEGIES:
            raise InvalidInput(f"strategy must be one of {list(STRATEGIES)}")
        if min(self.window, self.evaluation_window, self.timeout) <= timedelta(0):
            raise InvalidInput("window, evaluation_window and timeout must be positive")

    @classmethod
    def from_dict(
        cls, model: str, data: Mapping[str, Any], *, source: Path | None = None
    ) -> RetrainSpec:
        """A spec from a ``[retraining.MODEL]`` table (of the file ``source``); every problem
        names its key.

        >>> RetrainSpec.from_dict("churn", {"entrypoint": "train:fit", "cooldown": "1d"}).cooldown
        datetime.timedelta(days=1)
        """
        where = f"retraining.{model}"
        return validate(cls, data, where=where, source=source, named={"model": model})


def declared_retraining(settings: Settings) -> dict[str, RetrainSpec]:
    """Every retraining declared in the settings' ``[retraining.*]`` tables, by model name."""
    return {
        name: RetrainSpec.from_dict(name, table, source=settings.source)
        for name, table in settings.retraining.items()
    }


def _epoch() -> Any:
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC)
