"""Requests from where they may come: the ``Host`` a client used, and the page a browser's
request came from.

Two attacks reach a server on 127.0.0.1 from an ordinary web page: a **cross-site request**
(a form or ``fetch`` posting ``text/plain`` to the API, which browsers send without asking) and
**DNS rebinding** (a name the attacker controls, re-pointed at 127.0.0.1, so the page's requests
are "same-origin" to the browser but carry the attacker's name in ``Host``). ``OriginGuard``
stops both in front of every route, the prediction fast path included:

- ``Host`` must name an allowed host: loopback names by default, more with
  ``serve --allowed-host NAME`` (``.example.com`` admits its subdomains, ``*`` any name). Health
  probes (``/healthz``, ``/readyz``, ``/v2/health/*``) are exempt: orchestrators send a pod's IP.
- A request that can change something (any method but GET, HEAD, OPTIONS) from a browser must
  come from this very origin: an ``Origin`` header (or, without one, a ``Referer``), when sent,
  must name ``Host``; ``Origin: null`` and ``Sec-Fetch-Site: cross-site``/``same-site`` are
  refused. Clients that are not
  browsers send neither header and pass (they still need a token where one is required).

The management API also accepts only ``application/json`` bodies on mutations
(``serving/api.py``), so even a browser that sends no ``Origin`` cannot post a form to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from watchkeeper.errors import Forbidden, InvalidInput, WatchkeeperError
from watchkeeper.serving.protocols import _json

LOOPBACK = ("localhost", "127.0.0.1", "::1")
PROBES = frozenset({"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def hostname(host: str) -> str:
    """The name in a ``Host`` value, without port or IPv6 brackets, lower case.

    >>> hostname("LocalHost:8080"), hostname("[::1]:8080"), hostname("::1"), hostname("a.b")
    ('localhost', '::1', '::1', 'a.b')
    """
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


class AllowedHosts:
    """Names a client may use to reach this server.

    >>> hosts = AllowedHosts([*LOOPBACK, ".example.com"])
    >>> [hosts.allows(h) for h in ("127.0.0.1:80", "api.example.com", "example.com", "evil.io")]
    [True, True, True, False]
    """

    def __init__(self, names: Iterable[str]) -> None:
        cleaned = [n.strip().lower() for n in names if n.strip()]
        self.any = "*" in cleaned
        self.exact = frozenset(hostname(n) for n in cleaned if not n.startswith("."))
        self.suffixes = tuple(n for n in cleaned if n.startswith("."))

    def allows(self, host: str) -> bool:
        if self.any:
            return True
        name = hostname(host)
        return name in self.exact or any(name.endswith(s) or name == s[1:] for s in self.suffixes)


class OriginGuard:
    """ASGI middleware refusing a foreign ``Host`` and cross-site mutations (see above)."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str] = LOOPBACK) -> None:
        self.app = app
        self.hosts = AllowedHosts(allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.check(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        body = _json.error_body(problem)
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]  # fmt: skip
        await send({"type": "http.response.start", "status": problem.http_status,
                    "headers": headers})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    def check(self, scope: Scope) -> WatchkeeperError | None:
        host = origin = referer = fetch_site = None
        for key, value in scope["headers"]:
            if key == b"host":
                host = value.decode("latin-1")
            elif key == b"origin":
                origin = value.decode("latin-1")
            elif key == b"referer":
                referer = value.decode("latin-1")
            elif key == b"sec-fetch-site":
                fetch_site = value.decode("latin-1").lower()
        if scope["path"] not in PROBES and not self.hosts.allows(host or ""):
            shown = (host or "")[:100]
            return InvalidInput(
                f"Host '{shown}' is not one this server answers to; start it with "
                f"--allowed-host {hostname(shown) or 'NAME'} if that name is meant to reach it"
            )
        if scope["method"] in SAFE_METHODS:
            return None
        source, header = (origin, "Origin") if origin is not None else (referer, "Referer")
        if source is not None:
            if source == "null" or urlsplit(source).netloc.lower() != (host or "").lower():
                return Forbidden(f"cross-site request refused ({header} {source[:100]!r})")
        elif fetch_site in ("cross-site", "same-site"):
            return Forbidden(f"cross-site request refused (Sec-Fetch-Site: {fetch_site})")
        return None
