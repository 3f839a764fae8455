"""Who is looking: the session cookie, the login form, CSRF values and same-origin checks.

The dashboard's session lives on the server (``registry/sessions.py``): the ``wk_session``
cookie (HTTP-only, SameSite=Strict, Path=/) holds only a random id; the session's random CSRF
value, expiry and token are looked up with it. With tokens, the login form opens a session;
without any token ever created, the first page a browser opens starts a local session. Every
form POST must carry its session's CSRF value; that it comes from this origin is checked in
front of the app for every request (``serving.origin.OriginGuard``).
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from watchkeeper.errors import PayloadTooLarge
from watchkeeper.registry.sessions import DEFAULT_TTL
from watchkeeper.serving.auth import COOKIE, Authenticator, Principal, csrf_ok

LOGIN = "/ui/login"
MAX_FORM_BYTES = 64 * 1024
SESSION_SECONDS = int(DEFAULT_TTL.total_seconds())


async def principal(auth: Authenticator, request: Request) -> Principal | None:
    """The visitor behind the session cookie, or None."""
    return await asyncio.to_thread(auth.session, request)


async def visitor(auth: Authenticator, request: Request) -> tuple[Principal | None, str | None]:
    """The visitor, and the cookie of a session opened for them just now: without tokens a
    browser gets a local session on its first page (so even then forms carry a random CSRF
    value); with tokens, None until they log in."""
    who = await principal(auth, request)
    if who is not None:
        return who, None
    opened = await asyncio.to_thread(auth.open_session, None)
    return (opened[0], opened[1]) if opened is not None else (None, None)


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{LOGIN}?next={quote(target)}", status_code=303)


def safe_next(value: str | None) -> str:
    """Only a path of this dashboard: never another site (no open redirect).

    >>> safe_next("/ui/models/churn?range=7d"), safe_next("//evil.example/ui"), safe_next(None)
    ('/ui/models/churn?range=7d', '/ui', '/ui')
    """
    if not value or not value.startswith("/ui") or value.startswith("//"):
        return "/ui"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/ui"
    return value


async def form(request: Request) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (the only kind the
    dashboard sends); any other body has none, so it fails the CSRF check."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLarge("the form is too large")
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def form_allowed(who: Principal, request: Request, fields: dict[str, str]) -> bool:
    """The form carries its session's CSRF value. (Where it comes from is checked for every
    request in front of the app: ``serving.origin.OriginGuard``.)"""
    return csrf_ok(who, fields.get("csrf"))


def set_session(response: Response, request: Request, secret: str) -> None:
    response.set_cookie(COOKIE, secret, max_age=SESSION_SECONDS, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")  # fmt: skip


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")  # fmt: skip
