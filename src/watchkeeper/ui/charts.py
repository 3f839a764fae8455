"""Plotly figures as plain dicts: the server builds them, the page hands them to plotly.js.

User strings (feature and category names) are HTML-escaped: plotly interprets a few tags in
labels and decodes the entities back for display.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from watchkeeper.ui.series import Points
from watchkeeper.ui.status import COLOURS

Figure = dict[str, Any]
_LEGEND = {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"}
PALETTE = ("#1565c0", "#6a1b9a", "#00838f", "#ef6c00", "#2e7d32", "#ad1457", "#4e342e")


def line(name: str, times: Sequence[str], values: Sequence[float | None], *,
         colour: str | None = None, dash: str = "solid", axis: str | None = None,
         fill: str | None = None, group: str | None = None) -> Figure:  # fmt: skip
    trace: Figure = {"type": "scatter", "mode": "lines", "name": esc(name), "x": list(times),
                     "y": list(values), "line": {"dash": dash, "width": 1.5}}  # fmt: skip
    if colour:
        trace["line"]["color"] = colour
    if axis:
        trace["yaxis"] = axis
    if fill:
        trace["fill"] = fill
    if group:
        trace["stackgroup"] = group
    if len(times) < 40 and dash == "solid":
        trace["mode"] = "lines+markers"
    return trace


def bars(name: str, x: Sequence[str], y: Sequence[float | None], *, colour: str,
         categories: bool = True) -> Figure:  # fmt: skip
    """Bars over categories (labels escaped) or over times (``categories=False``)."""
    labels = [esc(v) for v in x] if categories else list(x)
    return {"type": "bar", "name": esc(name), "x": labels, "y": list(y),
            "marker": {"color": colour}}  # fmt: skip


def with_threshold(name: str, points: Points, *, colour: str = PALETTE[0]) -> list[Figure]:
    """A series and, when it has one, its threshold as a dashed red line."""
    traces = [line(name, points.times, points.values, colour=colour)]
    if any(t is not None for t in points.thresholds):
        traces.append(line("threshold", points.times, points.thresholds, dash="dash",
                           colour=COLOURS["fail"]))  # fmt: skip
    return traces


def figure(title: str, traces: list[Figure], **layout: Any) -> Figure:
    heading = {"text": esc(title), "font": {"size": 13}, "x": 0.01, "xanchor": "left"}
    base: Figure = {"title": heading, "height": 260, "legend": _LEGEND,
                    "margin": {"l": 50, "r": 45, "t": 36, "b": 40},
                    "xaxis": {"type": "date"}}  # fmt: skip
    return {"data": traces, "layout": base | layout}


def empty(title: str, note: str) -> Figure:
    """A chart with nothing to draw says why instead of showing blank axes."""
    annotation = {"text": esc(note), "showarrow": False, "xref": "paper", "yref": "paper",
                  "x": 0.5, "y": 0.5, "font": {"color": "#757575"}}  # fmt: skip
    layout = figure(title, [])["layout"] | {
        "annotations": [annotation], "xaxis": {"visible": False}, "yaxis": {"visible": False},
    }  # fmt: skip
    return {"data": [], "layout": layout}


def over(figures: dict[str, Figure], start: str, end: str) -> dict[str, Figure]:
    """Every chart over time spans the chosen range, whatever its data covers."""
    for fig in figures.values():
        axis = fig["layout"].get("xaxis", {})
        if axis.get("type") == "date":
            fig["layout"]["xaxis"] = axis | {"range": [start, end]}
    return figures


def esc(text: str) -> str:
    return html.escape(str(text), quote=True)
