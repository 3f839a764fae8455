"""``/ui/login`` and ``/ui/logout``: a token in a form opens a server-side session (the cookie
holds only its random id); logout ends it on every replica."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from watchkeeper.errors import WatchkeeperError
from watchkeeper.serving.auth import COOKIE
from watchkeeper.ui.pages import Pages
from watchkeeper.ui.session import (
    LOGIN,
    clear_session,
    form,
    form_allowed,
    principal,
    safe_next,
    set_session,
)


def routes(dashboard: Pages) -> list[Route]:
    async def show(request: Request) -> Response:
        try:
            configured = await asyncio.to_thread(dashboard.auth.configured)
        except WatchkeeperError as exc:
            return dashboard.unavailable(request, exc)
        if not configured:
            return RedirectResponse("/ui", status_code=303)  # no tokens: nothing to log in to
        target = safe_next(request.query_params.get("next"))
        return dashboard.html("login.html", {"next": target, "error": ""})

    async def submit(request: Request) -> Response:
        try:
            fields = await form(request)
        except WatchkeeperError as exc:
            return dashboard.html("login.html", {"next": "/ui", "error": exc.message}, 400)
        target = safe_next(fields.get("next"))
        token = fields.get("token", "").strip()
        try:
            opened = await asyncio.to_thread(dashboard.auth.open_session, token) if token else None
        except WatchkeeperError as exc:
            return dashboard.unavailable(request, exc)
        if opened is None:
            refused = {"next": target, "error": "unknown or revoked token"}
            return dashboard.html("login.html", refused, 401)
        response = RedirectResponse(target, status_code=303)
        set_session(response, request, opened[1])
        return response

    async def logout(request: Request) -> Response:
        try:
            who = await principal(dashboard.auth, request)
        except WatchkeeperError as exc:
            return dashboard.unavailable(request, exc)
        try:
            fields = await form(request)
        except WatchkeeperError:
            fields = {}
        if who is not None and not form_allowed(who, request, fields):
            return Response("refused: the form is stale or forged", status_code=403)
        secret = request.cookies.get(COOKIE)
        if who is not None and secret:
            await asyncio.to_thread(dashboard.auth.end_session, secret)
        response = RedirectResponse(LOGIN, status_code=303)
        clear_session(response, request)
        return response

    return [
        Route(LOGIN, show, methods=["GET"]),
        Route(LOGIN, submit, methods=["POST"]),
        Route("/ui/logout", logout, methods=["POST"]),
    ]
