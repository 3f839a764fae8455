"""uvicorn's HTTP protocol with TCP_NODELAY on every connection.

Its own module, importing nothing of watchkeeper: with ``--workers N`` uvicorn pickles the
protocol class into each worker's start-up message, so a spawned worker imports this module
before it can answer its parent's health check (5 s by default). Kept in ``server.py``, that
import pulled in the whole serving stack (pandas, pyarrow, SQLAlchemy) first, which on a loaded
machine took longer than the health check: the parent killed and restarted its workers forever.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import suppress

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class NoDelayProtocol(HttpToolsProtocol):
    """Sets TCP_NODELAY on every accepted connection: without it, multi-worker servers were
    seen to hold small responses for ~40 ms (Nagle + delayed ACK)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
