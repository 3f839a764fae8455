"""The dashboard on its own (``watchkeeper ui``): the same pages as inside ``watchkeeper serve``,
without the model server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook
from watchkeeper.registry import Registry
from watchkeeper.registry.tokens import TokenStore
from watchkeeper.serving.auth import Authenticator
from watchkeeper.serving.origin import LOOPBACK, OriginGuard
from watchkeeper.ui.dashboard import Dashboard


class Standalone:
    """A backend holding only what the dashboard needs; built in the app's lifespan."""

    def __init__(self, settings: Settings, *, auth_required: bool = False) -> None:
        self.settings = settings
        self.auth_required = auth_required
        self.registry: Registry | None = None
        self.auth: Authenticator | None = None
        self.logbook: Logbook | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.registry = await asyncio.to_thread(Registry, self.settings)
        self.auth = Authenticator(TokenStore(self.registry.engine), required=self.auth_required)
        self.logbook = Logbook(self.settings.resolved_logbook_url)  # read only: never started
        try:
            yield
        finally:
            self.registry.close()


async def _home(request: Request) -> Response:
    return RedirectResponse("/ui", status_code=307)


def create_app(
    settings: Settings | None = None,
    *,
    allowed_hosts: Sequence[str] = LOOPBACK,
    auth_required: bool = False,
) -> ASGIApp:
    """The dashboard alone, behind the same Host and Origin checks as the server."""
    backend = Standalone(settings or Settings.load(), auth_required=auth_required)
    dashboard = Dashboard(backend)
    routes = [Route("/", _home, methods=["GET"]), *dashboard.routes()]
    return OriginGuard(Starlette(routes=routes, lifespan=backend.lifespan),
                       allowed_hosts=allowed_hosts)  # fmt: skip
