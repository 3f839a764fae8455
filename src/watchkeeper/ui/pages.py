"""What the login and action routes use of the dashboard that mounts them.

``Dashboard`` is the one implementation; the routes depend on this protocol instead, so
``dashboard.py`` imports them and they never import it back.
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from watchkeeper.errors import WatchkeeperError
from watchkeeper.serving.auth import Authenticator, Principal
from watchkeeper.ui.sources import Sources


class Pages(Protocol):
    @property
    def auth(self) -> Authenticator: ...

    @property
    def sources(self) -> Sources: ...

    def html(self, template: str, context: dict[str, Any], status: int = 200) -> Response: ...

    def message(self, request: Request, who: Principal, *, ok: bool, heading: str,
                message: str, back: str = "/ui", status: int = 200) -> Response: ...  # fmt: skip

    def unavailable(self, request: Request, exc: WatchkeeperError) -> Response: ...
