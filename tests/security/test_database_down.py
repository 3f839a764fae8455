"""The metadata database going away: pages and the API say so, never with a traceback.

The server reaches PostgreSQL through a TCP relay owned by the test; closing the relay (and
every connection through it) is the database going away, reopening it is its return.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.conftest import fresh_schema
from tests.processes import free_port, wait_for
from watchkeeper.config import Settings
from watchkeeper.registry import Registry

ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


class Relay:
    """Forwards 127.0.0.1:<port> to PostgreSQL while open; ``close`` drops every connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def open(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # closed meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def relayed_postgres() -> Iterator[tuple[str, Relay]]:
    """A fresh PostgreSQL schema, reached through a relay the test can cut."""
    with fresh_schema() as direct:
        relay = Relay(("127.0.0.1", 5432))
        relay.open()
        try:
            yield direct.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}"), relay
        finally:
            relay.close()


@pytest.mark.postgres
def test_pages_and_api_answer_503_with_the_reason_while_the_database_is_down(
    tmp_path: Path, serve, relayed_postgres: tuple[str, Relay]
) -> None:
    """Promise: with the metadata database unreachable, the dashboard shows a page saying so
    (503, no traceback), the management API a 503 error body, and predictions keep coming from
    the loaded versions; when the database returns, pages work again."""
    url, relay = relayed_postgres
    home = tmp_path / "home"
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = ["a", "b", "c", "d"]
    registry = Registry(Settings(home=home, database_url=url, user="tester"))
    registry.register("iris", LogisticRegression(max_iter=300).fit(X, y), input_example=X)
    registry.promote("iris", 1, "production")
    registry.close()
    served = serve("--without-scheduler", "--no-logbook", home=home,
                   env={"WATCHKEEPER_DATABASE_URL": url})  # fmt: skip
    wait_for(lambda: httpx.get(served.url + "/readyz").status_code == 200, 60, "ready")
    assert httpx.get(served.url + "/ui").status_code == 200

    relay.close()
    page = httpx.get(served.url + "/ui/alerts", timeout=60)
    assert page.status_code == 503
    assert "Not available" in page.text
    assert "database" in page.text
    assert "Traceback" not in page.text
    api = httpx.get(served.url + "/api/v1/models", timeout=60)
    assert api.status_code == 503
    assert api.json()["error"]["code"] == "store_unavailable"
    login = httpx.get(served.url + "/ui/login", timeout=60)
    assert login.status_code in (303, 503)  # the cached answer, or the database's absence
    answer = httpx.post(served.url + "/v1/models/iris:predict",
                        json={"instances": [{"a": 5.1, "b": 3.5, "c": 1.4, "d": 0.2}]})  # fmt: skip
    assert answer.status_code == 200, answer.text

    relay.open()
    wait_for(lambda: httpx.get(served.url + "/ui/alerts", timeout=60).status_code == 200, 60,
             "the dashboard to work again")  # fmt: skip
    assert "Traceback" not in served.output()
