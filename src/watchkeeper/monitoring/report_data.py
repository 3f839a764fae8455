"""What an HTML report draws, as plain data: distribution shares and time series.

Pure helpers for :mod:`watchkeeper.monitoring.html`: a reference profile and a window's counts
(:func:`~watchkeeper.monitoring.drift.count_window`) become bars of shares on the same bins,
and stored results become one series per (check, feature, statistic).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from watchkeeper.monitoring.profile import FeatureProfile, NumericProfile
from watchkeeper.monitoring.results import CheckResult

__all__ = ["Distribution", "Series", "distribution", "order_features", "series_of"]

MAX_CATEGORIES = 30
"""Categories drawn per feature; the rarer ones are summed into one bar."""


@dataclass(frozen=True)
class Distribution:
    """Bars of one feature: a label per bin, the reference's and the window's shares."""

    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...] | None


@dataclass(frozen=True)
class Series:
    """One statistic over time, oldest window first."""

    check: str
    feature: str
    statistic: str
    times: tuple[str, ...]
    values: tuple[float | None, ...]
    thresholds: tuple[float | None, ...]
    last_status: str


def distribution(feature: FeatureProfile, counts: Any = None) -> Distribution:
    """Reference and current shares of one feature on the reference's bins.

    ``counts`` is the window's ``BinnedColumn`` (or its counts array): ``[below, bins...,
    above]`` for a numeric feature, ``[categories..., unseen]`` for a categorical one.

    >>> from watchkeeper.monitoring.profile import profile_numeric
    >>> d = distribution(profile_numeric([1.0, 2.0, 3.0, 4.0], bins=2), [0, 1, 1, 2])
    >>> d.labels, d.reference, d.current
    (('< 1', '[1, 2.5)', '[2.5, 4]', '> 4'), (0.0, 0.5, 0.5, 0.0), (0.0, 0.25, 0.25, 0.5))
    """
    current = None if counts is None else np.asarray(getattr(counts, "counts", counts), float)
    if isinstance(feature, NumericProfile):
        return _numeric(feature, current)
    names = list(feature.frequencies)
    ref = [float(n) for n in feature.frequencies.values()] + [float(feature.other_count)]
    cur = None if current is None else current.tolist()
    if len(names) > MAX_CATEGORIES:  # keep the most frequent, fold the rest into "other"
        ref = ref[:MAX_CATEGORIES] + [sum(ref[MAX_CATEGORIES:])]
        cur = None if cur is None else cur[:MAX_CATEGORIES] + [sum(cur[MAX_CATEGORIES:])]
        names = names[:MAX_CATEGORIES]
    labels = (*names, "(other)")
    return Distribution(labels, _shares(ref), None if cur is None else _shares(cur))


def _numeric(feature: NumericProfile, current: Any) -> Distribution:
    edges = feature.edges
    if not edges:
        return Distribution((), (), None)
    inner = [f"[{edges[i]:.4g}, {edges[i + 1]:.4g})" for i in range(len(edges) - 1)]
    inner[-1] = inner[-1][:-1] + "]"
    labels = (f"< {edges[0]:.4g}", *inner, f"> {edges[-1]:.4g}")
    ref = _shares([0.0, *map(float, feature.counts), 0.0])
    if current is not None and current.size != len(labels):
        current = None  # counts on other bins: draw the reference alone
    return Distribution(labels, ref, None if current is None else _shares(current.tolist()))


def _shares(counts: Sequence[float]) -> tuple[float, ...]:
    total = float(sum(counts))
    return tuple(float(c) / total if total > 0 else 0.0 for c in counts)


def order_features(names: Iterable[str], drifted: Iterable[str], limit: int) -> list[str]:
    """Drifted features first (in their order), then the rest; at most ``limit``.

    >>> order_features(["a", "b", "c"], ["c"], 2)
    ['c', 'a']
    """
    first = list(drifted)
    seen = set(first)
    rest = [n for n in names if n not in seen]
    return (first + rest)[:limit]


def series_of(results: Iterable[CheckResult], checks: Sequence[str]) -> list[Series]:
    """Group ``results`` of the given checks into series, in order of first appearance."""
    grouped: dict[tuple[str, str, str], list[CheckResult]] = {}
    for result in results:
        if result.check in checks:
            grouped.setdefault((result.check, result.feature, result.statistic), []).append(result)
    out = []
    for (check, feature, statistic), items in grouped.items():
        items.sort(key=lambda r: r.window_end)
        out.append(
            Series(
                check=check,
                feature=feature,
                statistic=statistic,
                times=tuple(r.window_end.isoformat() for r in items),
                values=tuple(r.value for r in items),
                thresholds=tuple(r.threshold for r in items),
                last_status=items[-1].status,
            )
        )
    return out
