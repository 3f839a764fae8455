"""Alert delivery: webhooks retried against a real local HTTP receiver, and the log."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from watchkeeper.notify import LogSink, WebhookPolicy, WebhookSink, payload
from watchkeeper.registry.monitoring import Alert, AlertChanges

T = datetime(2026, 11, 26, 9, tzinfo=UTC)
ALERT = Alert(id=7, model="churn", version=3, check="drift", feature="age",
              statistic="wasserstein", status="open", value=0.4, threshold=0.1,
              message="churn v3: drift feature 'age' wasserstein = 0.4", opened_at=T,
              updated_at=T, closed_at=None, acknowledged_by=None)  # fmt: skip
CHANGES = AlertChanges(opened=(ALERT,), updated=(), closed=())


class Receiver:
    """A local HTTP server answering 500 to the first ``fail_first`` POSTs, then 200."""

    def __init__(self, fail_first: int) -> None:
        self.bodies: list[dict] = []
        self.calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.calls += 1
                data = self.rfile.read(int(self.headers["Content-Length"]))
                ok = receiver.calls > fail_first
                if ok:
                    receiver.bodies.append(json.loads(data))
                self.send_response(200 if ok else 500)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_retries_until_delivered() -> None:
    waits: list[float] = []
    with Receiver(fail_first=2) as receiver:
        sink = WebhookSink(receiver.url, sleep=waits.append)
        sink.deliver(CHANGES)
    assert receiver.calls == 3
    assert len(waits) == 2  # exponential backoff (0.5 s, 1 s) plus up to 0.5 s of jitter
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 1.5
    assert receiver.bodies == [payload(CHANGES)]
    assert receiver.bodies[0]["opened"][0]["feature"] == "age"
    assert sink.failures == 0


def test_webhook_gives_up_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with Receiver(fail_first=100) as receiver, caplog.at_level(logging.ERROR):
        sink = WebhookSink(receiver.url, policy=WebhookPolicy(attempts=3), sleep=lambda _: None)
        sink.deliver(CHANGES)
    assert receiver.calls == 3
    assert sink.failures == 1
    assert "gave up on 1 alert change" in caplog.text


def test_nothing_to_say_sends_nothing() -> None:
    with Receiver(fail_first=0) as receiver:
        WebhookSink(receiver.url).deliver(AlertChanges((), (), ()))
    assert receiver.calls == 0


def test_log_sink(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        LogSink().deliver(CHANGES)
    assert "ALERT opened #7: churn v3: drift feature 'age'" in caplog.text
