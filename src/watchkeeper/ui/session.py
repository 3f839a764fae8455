"""Who is looking: the session cookie, the login form, CSRF values and same-origin checks.

The dashboard authenticates exactly like the API (``watchkeeper.serving.auth``): with no token
configured everyone is the local operator; otherwise the ``wk_session`` cookie (set by the login
form: HTTP-only, SameSite=Strict, Path=/) or a bearer header must hold a live token. Every form
POST carries ``csrf_value(principal)`` and must come from this origin.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from watchkeeper.errors import PayloadTooLarge
from watchkeeper.serving.auth import COOKIE, Authenticator, Principal, csrf_ok

LOGIN = "/ui/login"
MAX_FORM_BYTES = 64 * 1024
SESSION_SECONDS = 12 * 3600


async def principal(auth: Authenticator, request: Request) -> Principal | None:
    return await asyncio.to_thread(auth.principal, request)


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


def same_origin(request: Request) -> bool:
    """A browser's POST names where it comes from; it must be this dashboard. (Non-browser
    clients send neither header and still need the session and the CSRF value.)"""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source is None
    return urlsplit(source).netloc == request.headers.get("host", request.url.netloc)


def form_allowed(who: Principal, request: Request, fields: dict[str, str]) -> bool:
    return same_origin(request) and csrf_ok(who, fields.get("csrf"))


def set_session(response: Response, request: Request, token: str) -> None:
    response.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")  # fmt: skip


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")  # fmt: skip
