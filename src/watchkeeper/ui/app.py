"""The dashboard on its own (``watchkeeper ui``): the same pages as inside ``watchkeeper serve``,
without the model server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook
from watchkeeper.registry import Registry
from watchkeeper.registry.tokens import TokenStore
from watchkeeper.serving.auth import Authenticator
from watchkeeper.ui.dashboard import Dashboard


class Standalone:
    """A backend holding only what the dashboard needs; built in the app's lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry: Registry | None = None
        self.auth: Authenticator | None = None
        self.logbook: Logbook | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.registry = await asyncio.to_thread(Registry, self.settings)
        self.auth = Authenticator(TokenStore(self.registry.engine))
        self.logbook = Logbook(self.settings.resolved_logbook_url)  # read only: never started
        try:
            yield
        finally:
            self.registry.close()


async def _home(request: Request) -> Response:
    return RedirectResponse("/ui", status_code=307)


def create_app(settings: Settings | None = None) -> Starlette:
    backend = Standalone(settings or Settings.load())
    dashboard = Dashboard(backend)
    routes = [Route("/", _home, methods=["GET"]), *dashboard.routes()]
    return Starlette(routes=routes, lifespan=backend.lifespan)
