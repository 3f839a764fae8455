"""The dashboard's routes under ``/ui``: pages, their data, actions, login and static files.

``Dashboard(backend)`` works inside the model server (``Server`` is a backend) and alone
(``watchkeeper.ui.app``). Reading happens in worker threads (the stores are synchronous); every
action calls the same registry and rollout functions as the API and the CLI, as the person
logged in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from watchkeeper.errors import WatchkeeperError
from watchkeeper.serving.auth import LOCAL, Authenticator, Principal
from watchkeeper.ui import actions, login, views
from watchkeeper.ui.render import Renderer, json_bytes
from watchkeeper.ui.session import principal, set_session, to_login, visitor
from watchkeeper.ui.sources import Backend, Sources
from watchkeeper.ui.static import Assets
from watchkeeper.ui.timerange import DEFAULT_RANGE, OVERVIEW_RANGE, TimeRange
from watchkeeper.ui.views import View

Build = Callable[[Sources, Request, TimeRange], View]
NOBODY = Principal("unknown", "client", authenticated=False)  # may see a message, do nothing

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class Dashboard:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.renderer = Renderer()
        self.assets = Assets()
        self._sources: Sources | None = None

    @property
    def auth(self) -> Authenticator:
        assert self.backend.auth is not None, "the app's lifespan has not run"
        return self.backend.auth

    @property
    def sources(self) -> Sources:
        if self._sources is None:
            assert self.backend.registry is not None, "the app's lifespan has not run"
            self._sources = Sources(self.backend.registry, logbook=self.backend.logbook)
        return self._sources

    # --- rendering -------------------------------------------------------------------------

    def context(self, request: Request, who: Principal, **extra: Any) -> dict[str, Any]:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        base = {
            "who": who, "auth_on": who.authenticated, "csrf": who.csrf or "",
            "can_act": who.allows("deployer"), "back": back, "page": "", "source": "",
            "refresh": 0, "range": request.query_params.get("range") or DEFAULT_RANGE,
            "has_range": False, "figures": {},
        }  # fmt: skip
        return base | extra

    def html(self, template: str, context: dict[str, Any], status: int = 200) -> Response:
        return HTMLResponse(self.renderer.render(template, **context), status_code=status,
                            headers=SECURITY_HEADERS)  # fmt: skip

    def message(self, request: Request, who: Principal, *, ok: bool, heading: str,
                message: str, back: str = "/ui", status: int = 200) -> Response:  # fmt: skip
        context = self.context(request, who, title=heading, heading=heading, message=message,
                               ok=ok, back=back)  # fmt: skip
        return self.html("result.html", context, status)

    # --- pages and their data ----------------------------------------------------------------

    def page(self, name: str, build: Build) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                who, opened = await visitor(self.auth, request)
            except WatchkeeperError as exc:
                return self.unavailable(request, exc)
            if who is None:
                return to_login(request)
            response = await self._page(request, who, name, build)
            if opened is not None:
                set_session(response, request, opened)
            return response

        return endpoint

    async def _page(self, request: Request, who: Principal, name: str, build: Build) -> Response:
        try:
            tr = _range(request)
            view = await asyncio.to_thread(build, self.sources, request, tr)
        except WatchkeeperError as exc:
            return self.message(request, who, ok=False, heading="Not available",
                                message=exc.message, status=exc.http_status)  # fmt: skip
        context = self.context(
            request, who, **view.context, title=view.title, page=name,
            source=view.source, refresh=view.refresh_seconds, has_range=view.has_range,
            range=tr.name, figures=view.figures,
        )  # fmt: skip
        return self.html(view.template, context)

    def unavailable(self, request: Request, exc: WatchkeeperError) -> Response:
        """A page for a visitor we cannot even identify (the database is down): the reason,
        no actions, never a traceback."""
        return self.message(request, NOBODY, ok=False, heading="Not available",
                            message=exc.message, status=exc.http_status)  # fmt: skip

    def data(self, build: Build) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                who = await principal(self.auth, request)
                if who is None and not await asyncio.to_thread(self.auth.configured):
                    who = LOCAL  # reading needs no session without tokens; acting does
            except WatchkeeperError as exc:
                return JSONResponse(exc.to_dict(), status_code=exc.http_status)
            if who is None:
                return JSONResponse({"error": {"code": "unauthorized", "message":
                                               "log in first", "details": []}},
                                    status_code=401)  # fmt: skip
            try:
                tr = _range(request)
                view = await asyncio.to_thread(build, self.sources, request, tr)
            except WatchkeeperError as exc:
                return JSONResponse(exc.to_dict(), status_code=exc.http_status)
            context = self.context(request, who, **view.context)
            context["back"] = _page_of(request)
            fragments = {i: self.renderer.render(t, **context) for i, t in view.fragments.items()}
            body = json_bytes({"range": tr.name, "bucket_seconds": tr.bucket_seconds,
                               "refresh": view.refresh_seconds, "fragments": fragments,
                               "figures": view.figures})  # fmt: skip
            return Response(body, media_type="application/json",
                            headers={"cache-control": "no-store"})  # fmt: skip

        return endpoint

    async def static(self, request: Request) -> Response:
        try:
            return await self.assets.response(request, request.path_params["file"])
        except WatchkeeperError as exc:
            return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    # --- the route table ---------------------------------------------------------------------

    def routes(self) -> list[Route]:
        pages: list[tuple[str, str, Build]] = [
            ("overview", "/ui", lambda s, r, tr: views.overview_page(s, tr)),
            ("model", "/ui/models/{name}",
             lambda s, r, tr: views.model_page(s, r.path_params["name"], tr)),
            ("feature", "/ui/models/{name}/features/{feature:path}",
             lambda s, r, tr: views.feature_page(s, r.path_params["name"],
                                                 r.path_params["feature"], tr)),
            ("alerts", "/ui/alerts",
             lambda s, r, tr: views.alerts_page(s, closed=r.query_params.get("closed") == "1")),
            ("audit", "/ui/audit",
             lambda s, r, tr: views.audit_page(s, model=r.query_params.get("model"))),
        ]  # fmt: skip
        out = [Route(path, self.page(name, build), methods=["GET"])
               for name, path, build in pages]  # fmt: skip
        out += [Route(path.replace("/ui", "/ui/data", 1) if name != "overview"
                      else "/ui/data/overview", self.data(build), methods=["GET"])
                for name, path, build in pages]  # fmt: skip
        out += login.routes(self)
        out += actions.routes(self)
        out.append(Route("/ui/static/{file}", self.static, methods=["GET"]))
        return out


def _range(request: Request) -> TimeRange:
    """The range asked for; by default the last 15 minutes on the overview (live traffic) and
    the last 24 hours on the other pages (charts)."""
    overview = request.url.path in ("/ui", "/ui/", "/ui/data/overview")
    return TimeRange.parse(request.query_params.get("range"),
                           default=OVERVIEW_RANGE if overview else DEFAULT_RANGE)  # fmt: skip


def _page_of(request: Request) -> str:
    """The page a data URL belongs to (where an action in its fragments comes back to)."""
    path = request.url.path
    page = "/ui" if path == "/ui/data/overview" else path.replace("/ui/data", "/ui", 1)
    return page + (f"?{request.url.query}" if request.url.query else "")
