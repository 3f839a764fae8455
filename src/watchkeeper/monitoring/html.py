"""A self-contained HTML monitoring report: one file that opens anywhere, with no network.

:func:`render_report` only builds a string, from the Jinja template ``templates/report.html``
(autoescaped, see :mod:`watchkeeper.templating`). The charts are drawn by plotly.js, embedded
once from the bundle shipped in :mod:`watchkeeper._vendor` (never a CDN); the figures travel
as one JSON block read by a short script. Every user string (model, feature, category names)
is escaped: in the page by the template, and in chart labels here (plotly decodes the entities
back for display).
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from watchkeeper.monitoring.drift.report import DriftReport
from watchkeeper.monitoring.profile import DatasetProfile
from watchkeeper.monitoring.quality import QualityReport
from watchkeeper.monitoring.report_data import Series, distribution, order_features, series_of
from watchkeeper.monitoring.results import CheckResult
from watchkeeper.templating import environment

__all__ = ["MAX_FEATURES", "render_report"]

MAX_FEATURES = 30
"""Features drawn per section; drifted ones come first."""

_RANK = {"fail": 0, "warn": 1, "skipped": 2, "ok": 3}
_COLOUR = {"fail": "#c62828", "warn": "#ef6c00", "ok": "#2e7d32", "skipped": "#757575"}
_LABEL_STATS = ("labelled_rows", "label_coverage", "label_lag_p50_s")
_SUMMARY_KEYS = {"model": "Model", "version": "Version", "window": "Window", "rows": "Rows",
                 "labelled_rows": "Labelled rows"}  # fmt: skip

Figure = dict[str, Any]
Rows = list[list[Any]]  # table rows; the first cell is a status
_LEGEND = {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"}


def render_report(
    *, title: str, summary: Mapping[str, Any], results: Sequence[CheckResult],
    reference: DatasetProfile | None = None, current_counts: Mapping[str, Any] | None = None,
    drift: DriftReport | None = None, quality: QualityReport | None = None,
    history: Sequence[CheckResult] = (),
) -> str:  # fmt: skip
    """The report as one HTML document (about 1.3 MB, almost all of it plotly.js).

    ``current_counts`` is the window counted on the reference's bins
    (:func:`~watchkeeper.monitoring.drift.count_window`); ``history`` holds stored results,
    the latest window's included, for the charts over time.
    """
    figures: list[Figure] = []  # filled in page order by the sections below
    drifted = _drifted(results, drift)
    page = _templates().get_template("report.html")
    return page.render(
        title=title,
        summary=_summary(summary, results, drifted),
        distributions=_distributions(reference, current_counts, drift, results, drifted, figures),
        drift_history=_drift_history(history, figures),
        quality=_quality(quality, results),
        performance=_performance(history, figures),
        results=_results(results),
        figures=figures,
        plotly_js=_plotly_js(),
    )


@functools.cache
def _templates() -> Environment:
    env = environment("watchkeeper.monitoring")
    env.globals.update(rank=_RANK, colours=_COLOUR)
    env.filters["fmt"] = _fmt
    return env


# ----------------------------------------------------------------------------- sections


def _summary(
    summary: Mapping[str, Any], results: Sequence[CheckResult], drifted: list[str]
) -> dict[str, Any]:
    worst = min((r.status for r in results), key=_RANK.__getitem__, default="ok")
    failed = sum(r.status == "fail" for r in results)
    rows = [(label, summary[key]) for key, label in _SUMMARY_KEYS.items() if key in summary]
    rows += [(str(k), v) for k, v in summary.items() if k not in _SUMMARY_KEYS]
    rows += [("Failed checks", failed), ("Drifted features", ", ".join(drifted) or "none")]
    return {"status": worst, "rows": rows}


def _distributions(
    reference: DatasetProfile | None, counts: Mapping[str, Any] | None,
    drift: DriftReport | None, results: Sequence[CheckResult], drifted: list[str],
    figures: list[Figure],
) -> dict[str, Any] | None:  # fmt: skip
    if reference is None:
        return None
    names = order_features(reference.features, [d for d in drifted if d in reference.features],
                           MAX_FEATURES)  # fmt: skip
    cards = []
    for name in names:
        dist = distribution(reference.features[name], (counts or {}).get(name))
        if not dist.labels:
            continue
        traces = [_bar("reference", dist.labels, dist.reference, "#9e9e9e")]
        if dist.current is not None:
            traces.append(_bar("current", dist.labels, dist.current, "#1565c0"))
        axis = {"type": "category", "automargin": True, "tickangle": -45, "nticks": 16}
        layout = _layout("", barmode="group", yaxis={"tickformat": ".0%"}, xaxis=axis)
        cards.append({"name": name, "drifted": name in drifted,
                      "verdict": _verdict(name, drift, results),
                      "plot": _plot(figures, traces, layout)})  # fmt: skip
    return {"cards": cards, "more": len(reference.features) - len(names)}


def _drift_history(history: Sequence[CheckResult], figures: list[Figure]) -> list[str]:
    series = series_of(history, ("drift", "prediction_drift"))
    series.sort(key=lambda s: (s.feature != "", _RANK.get(s.last_status, 3)))
    plots = []
    for s in series[: MAX_FEATURES + 1]:  # the dataset's drift share, then features
        name = s.feature or "drift share (dataset)"
        traces = [_line(s.statistic, s.times, s.values)]
        traces.append(_line("threshold", s.times, s.thresholds, dash="dash", colour="#c62828"))
        plots.append(_plot(figures, traces, _layout(_e(f"{name} · {s.check} · {s.statistic}"))))
    return plots


def _quality(quality: QualityReport | None, results: Sequence[CheckResult]) -> Rows:
    if quality is not None:
        return [[f.status, f.check, f.column or "*", f.value, f.reference, f.threshold, f.message]
                for f in quality.findings]  # fmt: skip
    return [[r.status, r.statistic, r.feature or "*", r.value, None, r.threshold, ""]
            for r in results if r.check == "quality"]  # fmt: skip


def _performance(history: Sequence[CheckResult], figures: list[Figure]) -> dict[str, Any] | None:
    series = series_of(history, ("performance",))
    if not series:
        return None
    metrics = [s for s in series if s.statistic not in _LABEL_STATS]
    labels = {s.statistic: s for s in series if s.statistic in _LABEL_STATS}
    plots = []
    if metrics:
        traces = []
        for s in metrics:
            traces.append(_line(s.statistic, s.times, s.values))
            if any(t is not None for t in s.thresholds):
                traces.append(_line(f"{s.statistic} (registered)", s.times, s.thresholds,
                                    dash="dash"))  # fmt: skip
        plots.append(_plot(figures, traces, _layout("metrics")))
    coverage, lag = labels.get("label_coverage"), labels.get("label_lag_p50_s")
    if coverage is not None or lag is not None:
        traces = []
        if coverage is not None:
            traces.append(_line("label coverage", coverage.times, coverage.values))
        if lag is not None:
            hours = tuple(None if v is None else v / 3600 for v in lag.values)
            traces.append({**_line("median label lag (h)", lag.times, hours), "yaxis": "y2"})
        layout = _layout(
            "labels",
            yaxis={"tickformat": ".0%", "rangemode": "tozero"},
            yaxis2={
                "overlaying": "y",
                "side": "right",
                "title": {"text": "h"},
                "rangemode": "tozero",
            },
        )
        plots.append(_plot(figures, traces, layout))
    return {"note": _label_note(coverage, lag), "plots": plots}


def _results(results: Sequence[CheckResult]) -> Rows:
    ordered = sorted(results, key=lambda r: (_RANK[r.status], r.check, r.feature, r.statistic))
    return [[r.status, r.check, r.feature or "*", r.statistic, r.value, r.threshold, r.version,
             f"{r.window_start:%Y-%m-%d %H:%M} – {r.window_end:%Y-%m-%d %H:%M}"]
            for r in ordered]  # fmt: skip


# ----------------------------------------------------------------------------- pieces


def _drifted(results: Sequence[CheckResult], drift: DriftReport | None) -> list[str]:
    if drift is not None:
        return drift.drifted
    found = [r.feature for r in results if r.check == "drift" and r.feature and
             r.status == "fail"]  # fmt: skip
    return list(dict.fromkeys(found))


def _verdict(name: str, drift: DriftReport | None, results: Sequence[CheckResult]) -> str:
    if drift is not None:
        feature = next((f for f in drift.features if f.name == name), None)
        if feature is not None and feature.result is not None:
            test = feature.result
            value = test.statistic if test.p_value is None else test.p_value
            word = "p-value" if test.p_value is not None else "statistic"
            text = f"{test.method} {word} {value:.4g}, threshold {test.threshold:.4g}"
            return f"{text} (the reference itself moves)" if feature.reference_moves else text
        if feature is not None:
            return feature.note or "not tested"
    for r in results:
        if r.check == "drift" and r.feature == name:
            return f"{r.statistic} {_fmt(r.value)}, threshold {_fmt(r.threshold)} ({r.status})"
    return "no drift result"


def _label_note(coverage: Series | None, lag: Series | None) -> str:
    cov = coverage.values[-1] if coverage is not None else None
    delay = lag.values[-1] if lag is not None else None
    text = "Latest window: label coverage " + ("n/a" if cov is None else f"{cov:.1%}")
    return text + ("" if delay is None else f", median label lag {delay / 3600:.3g} h")


def _bar(name: str, labels: Sequence[str], shares: Sequence[float], colour: str) -> Figure:
    return {"type": "bar", "name": name, "x": [_e(x) for x in labels], "y": list(shares),
            "marker": {"color": colour}}  # fmt: skip


def _line(
    name: str, times: Sequence[str], values: Sequence[float | None], *, dash: str = "solid",
    colour: str | None = None,
) -> Figure:  # fmt: skip
    line: dict[str, Any] = {"dash": dash} | ({"color": colour} if colour else {})
    mode = "lines+markers" if dash == "solid" else "lines"  # a limit is drawn as a plain line
    return {"type": "scatter", "mode": mode, "name": _e(name), "x": list(times),
            "y": [_finite(v) for v in values], "line": line}  # fmt: skip


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _layout(title: str, **extra: Any) -> Figure:
    heading = {"text": title, "font": {"size": 13}, "x": 0.02, "xanchor": "left"}
    return {"title": heading, "height": 280,
            "margin": {"l": 50, "r": 40, "t": 40, "b": 60}, "legend": _LEGEND,
            **extra}  # fmt: skip


def _plot(figures: list[Figure], data: list[Figure], layout: Figure) -> str:
    plot_id = f"wk-plot-{len(figures)}"
    figures.append({"id": plot_id, "data": data, "layout": layout})
    return plot_id


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S %Z}".strip()
    return str(value)


def _e(text: str) -> str:
    """A label inside a chart's JSON (plotly draws the entities as the characters)."""
    return html.escape(text, quote=True)


def _plotly_js() -> Markup:
    from watchkeeper._vendor import plotly_js

    script = plotly_js().decode()
    return Markup(script.replace("</script", "<\\/script"))  # script text, never a closing tag


def report_summary(
    model: str, version: int | None, latest: Sequence[CheckResult], rows: int | None
) -> dict[str, Any]:
    """The summary block of a model's report, from its latest stored results."""
    summary: dict[str, Any] = {"model": model, "version": version}
    if latest:
        end = max(r.window_end for r in latest)
        start = min(r.window_start for r in latest if r.window_end == end)
        summary["window"] = f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"
    labelled = next((r.value for r in latest if r.statistic == "labelled_rows"), None)
    summary |= {"rows": rows, "labelled_rows": None if labelled is None else int(labelled)}
    return summary
