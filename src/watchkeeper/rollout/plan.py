"""What a deployment promises to do: the plan of each mode, stored as JSON in its record.

Defaults follow the field's habits: canary steps 1% → 5% → 25% → 50% → 100%, each held for a
minimum time and a minimum number of candidate requests; guards compare the candidate with
production on the same window with margins, and a statistical test where counts allow one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from watchkeeper.errors import Detail, InvalidInput

DEFAULT_STEPS = (0.01, 0.05, 0.25, 0.5, 1.0)


@dataclass(frozen=True, kw_only=True)
class Guards:
    """Limits the candidate must hold against production, on the same window.

    * ``max_error_rate_increase``: candidate 5xx share minus production's (a one-sided test at
      ``alpha`` must also say it is higher before a guard fails on few requests);
    * ``max_latency_ratio``: candidate p99 over production p99 (both from live histograms);
    * ``max_prediction_distance``: Jensen–Shannon distance between the two prediction
      distributions (classes, or binned scores) over the window;
    * ``min_agreement``: share of identical predictions on the same requests (shadow);
    * ``max_quality_increase``: share of rejected (4xx) requests, candidate minus production;
    * ``performance_margin``: labelled rows only — candidate accuracy (or minus mean absolute
      error) may be this much worse, tested one-sided at ``alpha``.
    """

    max_error_rate_increase: float = 0.01
    max_latency_ratio: float = 1.5
    max_prediction_distance: float = 0.1
    min_agreement: float | None = None
    max_quality_increase: float = 0.01
    performance_margin: float = 0.02
    alpha: float = 0.05
    min_labels: int = 100


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Every mode's settings; each mode reads the fields it needs."""

    steps: tuple[float, ...] = DEFAULT_STEPS  # canary shares
    min_step_seconds: float = 300.0
    min_step_requests: int = 100  # candidate requests (answered or shadowed) per step
    shadow_sample: float = 1.0  # share of requests copied to a shadow
    then: Literal["canary", "none"] = "none"  # after a passing shadow: start a canary
    keep_previous_seconds: float = 1800.0  # blue-green / promotion: previous stays loaded
    ab_share: float = 0.5
    ab_metric: str = "conversion"  # a feedback outcome (``outcome_conversion`` in the logbook)
    ab_mde: float | None = None  # minimum detectable effect for the sample-size figure
    routing_field: str | None = None  # else the X-Routing-Key header
    guards: Guards = field(default_factory=Guards)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(float(s) for s in self.steps))
        problems = []
        if not self.steps or any(not 0 < s <= 1 for s in self.steps):
            problems.append(Detail("steps", "each step is a share in (0, 1]"))
        elif list(self.steps) != sorted(self.steps) or self.steps[-1] != 1.0:
            problems.append(Detail("steps", "steps must increase and end at 1.0 (100%)"))
        if not 0 < self.shadow_sample <= 1:
            problems.append(Detail("shadow_sample", "must be in (0, 1]"))
        if not 0 < self.ab_share < 1:
            problems.append(Detail("ab_share", "must be in (0, 1)"))
        if self.min_step_seconds < 0 or self.min_step_requests < 0:
            problems.append(Detail("min_step", "times and counts must be >= 0"))
        if self.then not in ("canary", "none"):
            problems.append(Detail("then", "must be 'canary' or 'none'"))
        if problems:
            said = "; ".join(f"{d.field}: {d.problem}" for d in problems)
            raise InvalidInput(f"invalid deployment plan: {said}", details=problems)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["steps"] = list(self.steps)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        guard_fields = {f.name for f in dataclasses.fields(Guards)}
        guards = dict(data.get("guards") or {})
        unknown += [f"guards.{k}" for k in sorted(set(guards) - guard_fields)]
        if unknown:
            raise InvalidInput("unknown plan setting(s)",
                               details=[Detail(k, "unknown setting") for k in unknown])  # fmt: skip
        values = {k: v for k, v in data.items() if k != "guards"}
        return cls(**values, guards=Guards(**guards))
