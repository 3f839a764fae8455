"""Value objects of performance monitoring; documented and re-exported by ``performance``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InvalidInput

Direction: TypeAlias = Literal["higher", "lower"]
Task: TypeAlias = Literal["classification", "regression"]


def _json(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class ReliabilityBin:
    """One row of a reliability diagram; means are None for an empty bin."""

    lower: float
    upper: float
    weight: float
    mean_confidence: float | None
    observed_rate: float | None

    def to_dict(self) -> dict[str, float | None]:
        return dict(vars(self))


@dataclass(frozen=True)
class MetricValue:
    """A metric's value on a window and its bootstrap interval (NaN bounds if ``n_boot=0``)."""

    name: str
    value: float
    lower: float
    upper: float
    direction: Direction

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": _json(self.value),
            "lower": _json(self.lower),
            "upper": _json(self.upper),
            "direction": self.direction,
        }


@dataclass(frozen=True)
class MetricComparison:
    """Current minus registered; ``worse`` when even the interval's best end is worse than the
    registered value by more than the tolerance."""

    name: str
    current: float
    registered: float
    difference: float
    worse: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "current": _json(self.current),
            "registered": self.registered,
            "difference": _json(self.difference),
            "worse": self.worse,
        }


def _is_worse(metric: MetricValue, baseline: float, tolerance: float) -> bool:
    if metric.direction == "higher":
        best = metric.upper if math.isfinite(metric.upper) else metric.value
        return best + tolerance < baseline
    best = metric.lower if math.isfinite(metric.lower) else metric.value
    return best - tolerance > baseline


@dataclass(frozen=True)
class PerformanceReport:
    """Metrics of one labelled window, with their intervals; see :func:`evaluate`."""

    task: Task
    n: int
    confidence: float
    n_boot: int
    metrics: Mapping[str, MetricValue]

    def __getitem__(self, name: str) -> MetricValue:
        return self.metrics[name]

    def compare_to(
        self, registered: Mapping[str, float], *, tolerance: float = 0.0
    ) -> tuple[MetricComparison, ...]:
        """Compare with the version's registered metrics (those both sides have)."""
        return tuple(
            MetricComparison(
                name,
                m.value,
                float(registered[name]),
                m.value - float(registered[name]),
                _is_worse(m, float(registered[name]), tolerance),
            )
            for name, m in self.metrics.items()
            if name in registered
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "task": self.task,
            "n": self.n,
            "confidence": self.confidence,
            "n_boot": self.n_boot,
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
        }


@dataclass(frozen=True)
class LabelLag:
    """How long labels took to arrive after their prediction, in seconds (None if no labels)."""

    count: int
    p50: float | None
    p90: float | None
    max: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return dict(vars(self))


def label_coverage(n_predictions: int, n_labelled: int) -> float:
    """Share of predictions whose label has arrived; 1.0 when there were no predictions.

    >>> label_coverage(200, 50)
    0.25
    """
    if n_predictions < 0 or not 0 <= n_labelled <= n_predictions:
        raise InvalidInput(
            f"need 0 <= n_labelled <= n_predictions, got {n_labelled}/{n_predictions}"
        )
    return 1.0 if n_predictions == 0 else n_labelled / n_predictions


def label_lag_summary(delays_seconds: npt.ArrayLike) -> LabelLag:
    """Median, 90th percentile (linear interpolation) and maximum label delay.

    >>> label_lag_summary([60, 120, 3600]).to_dict()
    {'count': 3, 'p50': 120.0, 'p90': 2904.0, 'max': 3600.0}
    """
    delays = np.asarray(delays_seconds, dtype=np.float64).ravel()
    if not np.all(np.isfinite(delays)) or np.any(delays < 0):
        raise InvalidInput("label delays must be finite and non-negative")
    if delays.size == 0:
        return LabelLag(0, None, None, None)
    p50, p90 = np.quantile(delays, [0.5, 0.9])
    return LabelLag(int(delays.size), float(p50), float(p90), float(delays.max()))
