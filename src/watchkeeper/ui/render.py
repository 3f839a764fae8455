"""Server-side HTML: Jinja templates shipped in the package, autoescaped, strict about names."""

from __future__ import annotations

from typing import Any

import orjson
from markupsafe import Markup

from watchkeeper.templating import environment
from watchkeeper.ui.status import COLOURS
from watchkeeper.ui.timerange import RANGES


def json_bytes(data: Any) -> bytes:
    """JSON for the page's scripts (NaN and infinities become null)."""
    return orjson.dumps(data)


def script_json(data: Any) -> Markup:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` characters. Unlike
    :func:`watchkeeper.templating.script_json`, NaN becomes null (a chart's gap)."""
    text = json_bytes(data).decode()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # escaped above for the script context


class Renderer:
    def __init__(self) -> None:
        self.env = environment("watchkeeper.ui")
        self.env.globals.update(colours=COLOURS, ranges=list(RANGES))
        self.env.filters["script_json"] = script_json
        self.env.filters["pct"] = lambda v: "–" if v is None else f"{v:.0%}"

    def render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)
