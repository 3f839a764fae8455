"""A prediction's records (metrics, live statistics, the logbook) are made after its answer is
sent, so they never sit between the model and the client, and they are made even when the
client is gone before the answer could be sent."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook
from watchkeeper.registry import Registry
from watchkeeper.server import create_app
from watchkeeper.serving.app import ServeOptions

Message = dict[str, Any]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = [f"f{i}" for i in range(4)]
    settings = Settings(home=tmp_path / "home")
    with Registry(settings) as registry:
        model = LogisticRegression(max_iter=500).fit(X, y)
        registry.register("iris", model, input_example=X, stage="production")
    return settings


def _scope(method: str, path: str, body: bytes = b"") -> Message:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
    return {"type": "http", "method": method, "path": path, "headers": headers,
            "query_string": b"", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
            "scheme": "http", "http_version": "1.1", "root_path": "",
            "asgi": {"version": "3.0"}}  # fmt: skip


async def _request(app: Any, scope: Message, body: bytes, send: Any) -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    await app(scope, receive, send)


async def _metrics(app: Any) -> str:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await _request(app, _scope("GET", "/metrics"), b"", send)
    return b"".join(m.get("body", b"") for m in sent).decode()


def _answered(metrics: str) -> float:
    """Requests answered 200 for iris, from the Prometheus text."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("watchkeeper_requests_total{") and 'code="200"' in line:
            if 'model="iris"' in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_records_follow_the_answer_and_survive_a_client_gone(settings: Settings) -> None:
    app = create_app(settings, ServeOptions(models=("iris",)))
    body = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
    path = "/v1/models/iris:predict"
    seen_at_answer: list[float] = []
    ids: list[str] = []

    async def run() -> None:
        startup: asyncio.Queue[Message] = asyncio.Queue()
        await startup.put({"type": "lifespan.startup"})
        started = asyncio.Event()

        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set()

        lifespan = asyncio.create_task(
            app(
                {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                startup.get,
                lifespan_send,
            )  # fmt: skip
        )
        await asyncio.wait_for(started.wait(), 60)
        try:
            before = _answered(await _metrics(app))

            async def watching_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = dict(message["headers"])
                    ids.append(headers[b"x-request-id"].decode())
                if message["type"] == "http.response.body":
                    seen_at_answer.append(_answered(await _metrics(app)))

            await _request(app, _scope("POST", path, body), body, watching_send)
            after_one = _answered(await _metrics(app))

            async def gone_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    ids.append(dict(message["headers"])[b"x-request-id"].decode())
                    raise OSError("the client went away")

            with pytest.raises(OSError, match="went away"):
                await _request(app, _scope("POST", path, body), body, gone_send)
            after_two = _answered(await _metrics(app))
        finally:
            await startup.put({"type": "lifespan.shutdown"})
            await asyncio.wait_for(lifespan, 60)  # flushes the logbook
        # the answer went out before its request was counted; counted right after
        assert seen_at_answer == [before]
        assert after_one == before + 1
        # the second answer never reached its client: the request is still counted
        assert after_two == before + 2

    asyncio.run(run())
    book = Logbook(settings.resolved_logbook_url)
    table = book.read("iris", datetime(2000, 1, 1), datetime(2100, 1, 1))
    logged = set(table.column("request_id").to_pylist())
    assert len(ids) == 2
    assert set(ids) <= logged  # both predictions were made, so both are in the logbook
