"""A real server (``watchkeeper serve``'s app, dashboard included) over a seeded registry, with
a reader and a deployer token."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from tests.serving.conftest import start_server
from tests.ui.seed import Seeded, seed
from watchkeeper.config import Settings
from watchkeeper.logbook import LogbookConfig
from watchkeeper.registry.tokens import TokenStore
from watchkeeper.serving.app import ServeOptions


@dataclass
class Site:
    url: str
    seeded: Seeded
    tokens: dict[str, str]

    @contextmanager
    def client(self, role: str | None = None) -> Iterator[httpx.Client]:
        """A client logged in (through the login form) as ``role``, or anonymous."""
        with httpx.Client(base_url=self.url, timeout=30, follow_redirects=False) as client:
            if role is not None:
                done = client.post("/ui/login", data={"token": self.tokens[role], "next": "/ui"})
                assert done.status_code == 303, done.text
            yield client


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Any ASGI app on a real socket (with its lifespan); yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = Settings(home=tmp_path_factory.mktemp("ui-home"), user="owner")
    seeded = seed(settings)
    store = TokenStore(seeded.registry.engine)
    tokens = {role: store.create(f"{role}-bot", role, actor="owner")[1]
              for role in ("reader", "deployer")}  # fmt: skip
    options = ServeOptions(poll_interval=0.05, live_stats_interval=0.2,
                           logbook=LogbookConfig(flush_interval=0.2))  # fmt: skip
    url, server, thread = start_server(settings, options)
    yield Site(url, seeded, tokens)
    server.should_exit = True
    thread.join(timeout=30)
    seeded.registry.close()
