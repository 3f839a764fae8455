"""The feature page's data: reference vs live distribution, drift statistic, null and
out-of-range rates over time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from watchkeeper.monitoring.profile import CategoricalProfile, FeatureProfile, NumericProfile
from watchkeeper.monitoring.report_data import distribution
from watchkeeper.ui import charts
from watchkeeper.ui.charts import PALETTE, Figure
from watchkeeper.ui.series import by_statistic, points, stamp
from watchkeeper.ui.sources import Sources
from watchkeeper.ui.status import COLOURS
from watchkeeper.ui.timerange import TimeRange

QUALITY_STATISTICS = ("null_rate", "out_of_range", "unseen")


def live_counts(feature: FeatureProfile, counts: Sequence[int] | None) -> list[int] | None:
    """Live histogram counts on the reference's bins, as the report's ``distribution`` reads
    them: numeric ``[below, bins..., above]`` (live values outside the edges are already in the
    first and last bins), categorical ``[categories..., unseen]`` (live nulls left out).

    >>> from watchkeeper.monitoring.profile import profile_numeric
    >>> live_counts(profile_numeric([1.0, 2.0, 3.0, 4.0], bins=2), [3, 5])
    [0, 3, 5, 0]
    """
    if not counts or not sum(counts):
        return None
    if isinstance(feature, NumericProfile):
        return [0, *counts[: len(feature.counts)], 0]
    return list(counts[: len(feature.frequencies) + 1])


def width(feature: FeatureProfile) -> int:
    """How many counts the live ``feature:<name>`` histogram of this profile has."""
    if isinstance(feature, NumericProfile):
        return max(len(feature.edges) - 1, 0)
    assert isinstance(feature, CategoricalProfile)
    return len(feature.frequencies) + 2  # categories, unseen, nulls


def distribution_chart(feature: FeatureProfile, counts: Sequence[int] | None) -> Figure:
    dist = distribution(feature, live_counts(feature, counts))
    if not dist.labels:
        return charts.empty("distribution", "the reference has no values")
    traces = [charts.bars("reference", dist.labels, dist.reference, colour="#9e9e9e")]
    if dist.current is not None:
        traces.append(charts.bars("live (this range)", dist.labels, dist.current,
                                  colour=PALETTE[0]))  # fmt: skip
    axis = {"type": "category", "automargin": True, "tickangle": -45, "nticks": 16}
    return charts.figure("reference vs live distribution", traces, barmode="group",
                         yaxis={"tickformat": ".0%"}, xaxis=axis)  # fmt: skip


@dataclass(frozen=True)
class FeatureSummary:
    kind: str
    facts: tuple[tuple[str, str], ...]


def summary(feature: FeatureProfile) -> FeatureSummary:
    facts: tuple[tuple[str, str], ...]
    if isinstance(feature, NumericProfile):
        q = feature.quantiles
        facts = (("rows", f"{feature.count}"), ("null rate", f"{feature.null_rate:.2%}"),
                 ("min", f"{feature.min:.4g}"), ("median", f"{q.get('p50', float('nan')):.4g}"),
                 ("max", f"{feature.max:.4g}"), ("mean", f"{feature.mean:.4g}"),
                 ("std", f"{feature.std:.4g}"))  # fmt: skip
        return FeatureSummary("numeric", facts)
    assert isinstance(feature, CategoricalProfile)
    top = sorted(feature.frequencies.items(), key=lambda kv: -kv[1])[:5]
    facts = (("rows", f"{feature.count}"), ("null rate", f"{feature.null_rate:.2%}"),
             ("categories", f"{len(feature.frequencies)}"),
             ("most frequent", ", ".join(str(k) for k, _ in top)))  # fmt: skip
    return FeatureSummary("categorical", facts)


def feature_charts(
    sources: Sources, model: str, name: str, tr: TimeRange, feature: FeatureProfile | None,
    version: int | None,
) -> dict[str, Figure]:  # fmt: skip
    out: dict[str, Figure] = {}
    if feature is not None and version is not None:
        sums = sources.live.sums(tr.start, tr.end, kind=f"feature:{name}", width=width(feature),
                                 model=model)  # fmt: skip
        counts = sums.get((model, version, None))
        out["chart-distribution"] = distribution_chart(feature, counts)
    else:
        out["chart-distribution"] = charts.empty("distribution", "no reference profile")
    drift = sources.monitoring.series(model, check="drift", feature=name, since=tr.start,
                                      until=tr.end)  # fmt: skip
    traces: list[Figure] = []
    for i, (stat, items) in enumerate(by_statistic(drift).items()):
        how = "min" if stat.endswith("p_value") else "max"
        p = points(items, tr, how=how)
        traces += charts.with_threshold(stat, p, colour=PALETTE[i % len(PALETTE)])
    out["chart-feature-drift"] = (
        charts.figure("drift statistic", traces, yaxis={"rangemode": "tozero"})
        if traces else charts.empty("drift statistic", "no drift results")
    )  # fmt: skip
    quality = [r for r in sources.monitoring.series(model, check="quality", feature=name,
                                                    since=tr.start, until=tr.end)
               if r.statistic in QUALITY_STATISTICS]  # fmt: skip
    traces = []
    colours = {"null_rate": PALETTE[0], "out_of_range": COLOURS["warn"], "unseen": PALETTE[1]}
    for stat, items in by_statistic(quality).items():
        p = points(items, tr, how="max")
        traces.append(charts.line(stat.replace("_", " "), p.times, p.values,
                                  colour=colours.get(stat)))  # fmt: skip
    title = "null and out-of-range rates"
    out["chart-feature-quality"] = (
        charts.figure(title, traces, yaxis={"tickformat": ".1%", "rangemode": "tozero"})
        if traces else charts.empty(title, "no data-quality results")
    )  # fmt: skip
    return charts.over(out, stamp(tr.start), stamp(tr.end))
