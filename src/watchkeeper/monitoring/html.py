"""A self-contained HTML monitoring report: one file that opens anywhere, with no network.

:func:`render_report` only builds a string. The charts are drawn by plotly.js, embedded once
from the installed ``plotly`` package (never a CDN); the figures travel as one JSON block read
by a short script. Every user string (model, feature, category names) is HTML-escaped, both in
the page and in chart labels (plotly decodes the entities back for display).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from watchkeeper.monitoring.drift.report import DriftReport
from watchkeeper.monitoring.profile import DatasetProfile
from watchkeeper.monitoring.quality import QualityReport
from watchkeeper.monitoring.report_data import Series, distribution, order_features, series_of
from watchkeeper.monitoring.results import CheckResult

__all__ = ["MAX_FEATURES", "render_report"]

MAX_FEATURES = 30
"""Features drawn per section; drifted ones come first."""

_RANK = {"fail": 0, "warn": 1, "skipped": 2, "ok": 3}
_COLOUR = {"fail": "#c62828", "warn": "#ef6c00", "ok": "#2e7d32", "skipped": "#757575"}
_LABEL_STATS = ("labelled_rows", "label_coverage", "label_lag_p50_s")
_SUMMARY_KEYS = {"model": "Model", "version": "Version", "window": "Window", "rows": "Rows",
                 "labelled_rows": "Labelled rows"}  # fmt: skip

Figure = dict[str, Any]
_LEGEND = {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"}


def render_report(
    *, title: str, summary: Mapping[str, Any], results: Sequence[CheckResult],
    reference: DatasetProfile | None = None, current_counts: Mapping[str, Any] | None = None,
    drift: DriftReport | None = None, quality: QualityReport | None = None,
    history: Sequence[CheckResult] = (),
) -> str:  # fmt: skip
    """The report as one HTML document (about 5 MB, almost all of it plotly.js).

    ``current_counts`` is the window counted on the reference's bins
    (:func:`~watchkeeper.monitoring.drift.count_window`); ``history`` holds stored results,
    the latest window's included, for the charts over time.
    """
    figures: list[Figure] = []
    drifted = _drifted(results, drift)
    body = "\n".join([
        _summary(summary, results, drifted),
        _distributions(reference, current_counts, drift, results, drifted, figures),
        _drift_history(history, figures),
        _quality(quality, results),
        _performance(history, figures),
        _results(results),
    ])  # fmt: skip
    return _page(title, body, figures)


# ----------------------------------------------------------------------------- sections


def _summary(summary: Mapping[str, Any], results: Sequence[CheckResult], drifted: list[str]) -> str:
    worst = min((r.status for r in results), key=_RANK.__getitem__, default="ok")
    failed = sum(r.status == "fail" for r in results)
    rows = [(label, summary[key]) for key, label in _SUMMARY_KEYS.items() if key in summary]
    rows += [(str(k), v) for k, v in summary.items() if k not in _SUMMARY_KEYS]
    rows += [("Failed checks", failed), ("Drifted features", ", ".join(drifted) or "none")]
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in rows)
    return (f'<section id="summary"><p class="status" style="background:{_COLOUR[worst]}">'
            f"{_e(worst.upper())}</p><table class=\"kv\">{cells}</table></section>")  # fmt: skip


def _distributions(
    reference: DatasetProfile | None, counts: Mapping[str, Any] | None,
    drift: DriftReport | None, results: Sequence[CheckResult], drifted: list[str],
    figures: list[Figure],
) -> str:  # fmt: skip
    if reference is None:
        return _section("distributions", "Distributions", "<p>No reference profile given.</p>")
    names = order_features(reference.features, [d for d in drifted if d in reference.features],
                           MAX_FEATURES)  # fmt: skip
    parts = []
    for name in names:
        dist = distribution(reference.features[name], (counts or {}).get(name))
        if not dist.labels:
            continue
        traces = [_bar("reference", dist.labels, dist.reference, "#9e9e9e")]
        if dist.current is not None:
            traces.append(_bar("current", dist.labels, dist.current, "#1565c0"))
        axis = {"type": "category", "automargin": True, "tickangle": -45, "nticks": 16}
        layout = _layout("", barmode="group", yaxis={"tickformat": ".0%"}, xaxis=axis)
        badge = '<span class="badge">drifted</span>' if name in drifted else ""
        parts.append(f'<div class="card"><h3>{_e(name)} {badge}</h3>'
                     f"<p>{_e(_verdict(name, drift, results))}</p>"
                     f"{_plot(figures, traces, layout)}</div>")  # fmt: skip
    more = len(reference.features) - len(names)
    note = f"<p>{more} more features not drawn.</p>" if more > 0 else ""
    return _section("distributions", "Reference vs current", f'<div class="grid">{"".join(parts)}'
                    f"</div>{note}")  # fmt: skip


def _drift_history(history: Sequence[CheckResult], figures: list[Figure]) -> str:
    series = series_of(history, ("drift", "prediction_drift"))
    if not series:
        return _section("drift-history", "Drift over time", "<p>No stored history.</p>")
    series.sort(key=lambda s: (s.feature != "", _RANK.get(s.last_status, 3)))
    parts = []
    for s in series[: MAX_FEATURES + 1]:  # the dataset's drift share, then features
        name = s.feature or "drift share (dataset)"
        traces = [_line(s.statistic, s.times, s.values)]
        traces.append(_line("threshold", s.times, s.thresholds, dash="dash", colour="#c62828"))
        layout = _layout(_e(f"{name} · {s.check} · {s.statistic}"))
        parts.append(f'<div class="card">{_plot(figures, traces, layout)}</div>')
    return _section("drift-history", "Drift over time", f'<div class="grid">{"".join(parts)}</div>')


def _quality(quality: QualityReport | None, results: Sequence[CheckResult]) -> str:
    head = ["status", "check", "column", "value", "reference", "threshold", "message"]
    if quality is not None:
        rows = [[f.status, f.check, f.column or "*", f.value, f.reference, f.threshold, f.message]
                for f in quality.findings]  # fmt: skip
    else:
        rows = [[r.status, r.statistic, r.feature or "*", r.value, None, r.threshold, ""]
                for r in results if r.check == "quality"]  # fmt: skip
    content = _table(head, rows) if rows else "<p>No data-quality checks.</p>"
    return _section("quality", "Data quality", content)


def _performance(history: Sequence[CheckResult], figures: list[Figure]) -> str:
    series = series_of(history, ("performance",))
    if not series:
        return _section("performance", "Performance over time", "<p>No labelled windows.</p>")
    metrics = [s for s in series if s.statistic not in _LABEL_STATS]
    labels = {s.statistic: s for s in series if s.statistic in _LABEL_STATS}
    parts = []
    if metrics:
        traces = []
        for s in metrics:
            traces.append(_line(s.statistic, s.times, s.values))
            if any(t is not None for t in s.thresholds):
                traces.append(_line(f"{s.statistic} (registered)", s.times, s.thresholds,
                                    dash="dash"))  # fmt: skip
        parts.append(_plot(figures, traces, _layout("metrics")))
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
        parts.append(_plot(figures, traces, layout))
    text = f"<p>{_e(_label_note(coverage, lag))}</p>"
    return _section("performance", "Performance over time",
                    f'{text}<div class="grid">{"".join(parts)}</div>')  # fmt: skip


def _results(results: Sequence[CheckResult]) -> str:
    ordered = sorted(results, key=lambda r: (_RANK[r.status], r.check, r.feature, r.statistic))
    rows = [[r.status, r.check, r.feature or "*", r.statistic, r.value, r.threshold,
             r.version, f"{r.window_start:%Y-%m-%d %H:%M} – {r.window_end:%Y-%m-%d %H:%M}"]
            for r in ordered]  # fmt: skip
    head = ["status", "check", "feature", "statistic", "value", "threshold", "version", "window"]
    return _section("results", f"All results ({len(rows)})", _table(head, rows))


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
            return f"{test.method} {word} {value:.4g}, threshold {test.threshold:.4g}"
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
    return f'<div class="plot" id="{plot_id}"></div>'


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(_cell(c, i == 0) for i, c in enumerate(row)) + "</tr>"
                   for row in rows)  # fmt: skip
    return f'<table class="sortable"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _cell(value: Any, is_status: bool) -> str:
    if is_status:
        colour = _COLOUR.get(str(value), "#757575")
        return (f'<td data-sort="{_RANK.get(str(value), 9)}"><span class="dot" '
                f'style="background:{colour}"></span>{_e(str(value))}</td>')  # fmt: skip
    return f"<td>{_e(_fmt(value))}</td>"


def _section(anchor: str, heading: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(heading)}</h2>{content}</section>'


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S %Z}".strip()
    return str(value)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` characters."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

    script: str = get_plotlyjs()
    return script.replace("</script", "<\\/script")


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:16px;
color:#212121}h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-top:8px}
h3{font-size:14px;margin:4px 0}.status{display:inline-block;color:#fff;padding:4px 12px;
border-radius:4px;font-weight:bold}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #e0e0e0;padding:3px 8px;text-align:left}
.sortable th{cursor:pointer;background:#f5f5f5}.kv th{background:#fafafa}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
.card{border:1px solid #eee;border-radius:4px;padding:6px}.card p{margin:2px 0;color:#555}
.badge{background:#c62828;color:#fff;border-radius:3px;padding:0 6px;font-size:11px}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:5px}"""

_BOOT = """(function(){var figs=JSON.parse(document.getElementById("wk-figures").textContent);
var cfg={displaylogo:false,responsive:true};
figs.forEach(function(f){Plotly.newPlot(f.id,f.data,f.layout,cfg);});
document.querySelectorAll("table.sortable").forEach(function(t){
t.querySelectorAll("th").forEach(function(th,col){th.addEventListener("click",function(){
var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows),up=th.dataset.order!=="up";
th.dataset.order=up?"up":"down";rows.sort(function(a,b){
var x=a.cells[col].dataset.sort||a.cells[col].textContent,
y=b.cells[col].dataset.sort||b.cells[col].textContent,nx=parseFloat(x),ny=parseFloat(y),
c=(isNaN(nx)||isNaN(ny))?x.localeCompare(y):nx-ny;return up?c:-c;});
rows.forEach(function(r){body.appendChild(r);});});});});})();"""


def _page(title: str, body: str, figures: list[Figure]) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        f"<script>{_plotly_js()}</script></head>\n<body><h1>{_e(title)}</h1>\n{body}\n"
        f'<script type="application/json" id="wk-figures">{_json(figures)}</script>\n'
        f"<script>{_BOOT}</script></body></html>\n"
    )


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
