"""The plotly.js bundle shipped in the package is the pinned npm release, whole."""

from __future__ import annotations

import hashlib

from watchkeeper._vendor import PLOTLY_JS_SHA256, PLOTLY_JS_VERSION, plotly_js


def test_the_bundle_is_the_pinned_release() -> None:
    bundle = plotly_js()
    assert hashlib.sha256(bundle).hexdigest() == PLOTLY_JS_SHA256
    assert f"plotly.js (basic - minified) v{PLOTLY_JS_VERSION}" in bundle[:200].decode()
