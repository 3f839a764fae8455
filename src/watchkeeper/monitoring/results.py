"""What one monitoring check found in one window, and how results turn alerts on and off.

A ``CheckResult`` is the unit that is stored (so results form time series), exported to
Prometheus and shown in reports. ``alert_actions`` is the alerting rule, kept pure so the
store and the tests share it: a failing check opens an alert for its key unless one is open
(deduplication), a passing check closes the open one (recovery), and anything else leaves the
alert as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from watchkeeper.errors import InvalidInput

Status = Literal["ok", "warn", "fail", "skipped"]
STATUSES: tuple[str, ...] = ("ok", "warn", "fail", "skipped")


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """One statistic of one check, for one model (version) and window.

    ``check`` is the family (``drift``, ``prediction_drift``, ``quality``, ``performance``,
    ``operational``); ``feature`` is ``""`` for dataset-level results; ``statistic`` names the
    method or metric (``wasserstein``, ``null_rate``, ``accuracy``...).
    """

    model: str
    version: int | None
    window_start: datetime
    window_end: datetime
    check: str
    feature: str
    statistic: str
    value: float | None
    threshold: float | None
    status: Status

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise InvalidInput(f"status must be one of {STATUSES}, not {self.status!r}")
        if self.window_end < self.window_start:
            raise InvalidInput("window_end is before window_start")
        if self.value is not None and math.isnan(self.value):
            object.__setattr__(self, "value", None)  # stored as "no value", never NaN

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What an alert is about: the same key is the same alert."""
        return (self.model, self.check, self.feature, self.statistic)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["window_start"] = self.window_start.isoformat()
        out["window_end"] = self.window_end.isoformat()
        return out


@dataclass(frozen=True)
class AlertActions:
    """What a batch of results does to alerts."""

    open: tuple[CheckResult, ...]
    update: tuple[CheckResult, ...]
    close: tuple[CheckResult, ...]


def alert_actions(
    results: Iterable[CheckResult], open_keys: Iterable[tuple[str, str, str, str]]
) -> AlertActions:
    """Which alerts to open, keep (with the new value) and close.

    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> r = CheckResult(model="m", version=1, window_start=t, window_end=t, check="drift",
    ...                 feature="age", statistic="wasserstein", value=0.3, threshold=0.1,
    ...                 status="fail")
    >>> [len(x) for x in (alert_actions([r], []).open, alert_actions([r], [r.key]).update)]
    [1, 1]
    """
    already = set(open_keys)
    latest: dict[tuple[str, str, str, str], CheckResult] = {}
    for result in results:  # the last result for a key wins
        latest[result.key] = result
    opened: list[CheckResult] = []
    updated: list[CheckResult] = []
    closed: list[CheckResult] = []
    for key, result in latest.items():
        if result.status == "fail":
            (updated if key in already else opened).append(result)
        elif result.status == "ok" and key in already:
            closed.append(result)
    return AlertActions(tuple(opened), tuple(updated), tuple(closed))


def describe(result: CheckResult) -> str:
    """A one-line human description of a failing result, for alert messages."""
    where = f" feature '{result.feature}'" if result.feature else ""
    value = "n/a" if result.value is None else f"{result.value:.4g}"
    limit = "n/a" if result.threshold is None else f"{result.threshold:.4g}"
    version = f" v{result.version}" if result.version is not None else ""
    return (
        f"{result.model}{version}: {result.check}{where} {result.statistic} = {value} "
        f"(threshold {limit}) in {result.window_start:%Y-%m-%d %H:%M}–{result.window_end:%H:%M}"
    )


def by_status(results: Iterable[CheckResult]) -> Mapping[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for result in results:
        counts[result.status] += 1
    return counts
