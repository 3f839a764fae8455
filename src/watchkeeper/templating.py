"""HTML from Jinja templates shipped inside the package: autoescaped, strict about names.

Every page watchkeeper writes (the dashboard, the monitoring report, the API docs page) comes
from a template, so no user string reaches a page unescaped by accident. This module sits at the
bottom of the package (beside ``config`` and ``errors``) so any layer may use it.
"""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

__all__ = ["environment", "script_json"]


def environment(package: str, folder: str = "templates") -> Environment:
    """An environment loading ``package``'s ``folder``, with the ``script_json`` filter.

    Blocks leave no blank lines behind (``trim_blocks``, ``lstrip_blocks``); an undefined name
    is an error, never an empty string.
    """
    env = Environment(
        loader=PackageLoader(package, folder),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["script_json"] = script_json
    return env


def script_json(data: Any) -> Markup:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` characters (they are
    written as ``\\u`` escapes, which JSON reads back as the same characters). NaN is refused.

    >>> str(script_json({"name": "</script>"}))
    '{"name":"\\\\u003c/script\\\\u003e"}'
    """
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # escaped above for the script context
