"""Files from other projects, shipped inside the package so a plain install needs no internet.

``plotly-basic.min.js`` is plotly.js's "basic" bundle (scatter, bar and pie traces: the ones the
dashboard and the HTML reports draw), 1.2 MB instead of the 64 MB ``plotly`` Python package that
carried the full bundle before. MIT licence: ``plotly.js-LICENSE``. ``make plotly-js`` fetches
it again from npm (``plotly.js-basic-dist-min``) and checks it against the digest below.
"""

from __future__ import annotations

from importlib import resources

PLOTLY_JS_VERSION = "4.1.1"
PLOTLY_JS_SHA256 = "99784e3abfb07b142a15e521a439e6d9addceadb3f79553fd24c72774f0649ba"


def plotly_js() -> bytes:
    """The plotly.js bundle the pages load (``Plotly.react`` and friends)."""
    return (resources.files(__name__) / "plotly-basic.min.js").read_bytes()
