"""``/ui/static/...``: the dashboard's own script and style, and plotly.js from the bundle
shipped in :mod:`watchkeeper._vendor` (never a CDN: the dashboard works with no internet)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import threading
from dataclasses import dataclass
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from watchkeeper._vendor import plotly_js
from watchkeeper.errors import NotFound

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str
    etag: str


def _read(name: str) -> bytes:
    if name == "plotly.min.js":
        return plotly_js()
    if name in ("dashboard.js", "dashboard.css"):
        return (resources.files("watchkeeper.ui") / "static" / name).read_bytes()
    raise NotFound(f"no static file '{name}'")


class Assets:
    """Files read (and gzipped) once, on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, Asset] = {}

    def get(self, name: str) -> Asset:
        with self._lock:
            found = self._cache.get(name)
            if found is None:
                body = _read(name)
                media_type = _TYPES[name[name.rindex(".") :]]
                digest = hashlib.sha256(body).hexdigest()[:16]
                found = Asset(body, gzip.compress(body, 6), media_type, f'"{digest}"')
                self._cache[name] = found
            return found

    async def response(self, request: Request, name: str) -> Response:
        asset = await asyncio.to_thread(self.get, name)  # the first read gzips: off the loop
        headers = {"etag": asset.etag, "cache-control": "public, max-age=3600",
                   "x-content-type-options": "nosniff", "vary": "accept-encoding"}  # fmt: skip
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(asset.gzipped, media_type=asset.media_type,
                            headers={**headers, "content-encoding": "gzip"})  # fmt: skip
        return Response(asset.body, media_type=asset.media_type, headers=headers)
