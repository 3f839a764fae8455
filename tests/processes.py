"""Real ``watchkeeper`` processes for end-to-end tests, and a client that loads them.

Used by the rollout tests (two replicas on SQLite) and the multi-replica proof (three replicas on
PostgreSQL). Every process writes its output to ``home/<name>.log``.
"""

from __future__ import annotations

import math
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
# Publish live totals, flush the logbook and poll the registry far more often than by default.
SERVE_FAST = ["--live-stats-interval", "0.2", "--log-flush-interval", "0.5",
              "--poll-interval", "0.05"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def start(home: Path, env: dict[str, str], name: str, *args: str) -> subprocess.Popen[bytes]:
    """A ``watchkeeper`` process; its output goes to ``home/<name>.log``."""
    with open(home / f"{name}.log", "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "watchkeeper", *args], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def start_server(home: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return start(home, env, f"serve-{port}", "serve", "--port", str(port), "--without-scheduler",
                 "--log-level", "warning", *SERVE_FAST)  # fmt: skip


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, models: int) -> None:
    """Until ``url`` is ready and serves ``models`` models; fails at once if ``proc`` died."""

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            answer = httpx.get(f"{url}/readyz", timeout=1)
        except httpx.TransportError:
            return False
        return answer.status_code == 200 and len(answer.json()["models"]) == models

    wait_for(ready, 60, f"{url} to serve {models} models")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Answer:
    at: float  # time.time() when the answer arrived
    status: int  # 0: the connection failed
    version: str | None
    replica: int
    key: str | None
    request_id: str | None


class Load:
    """Single-row requests to ``model`` from one thread until stopped, taking the replicas in
    turn; with ``keys``, each request carries one of them as ``X-Routing-Key``."""

    def __init__(self, urls: Sequence[str], rows: Sequence[dict[str, float]], model: str, *,
                 keys: Sequence[str] | None = None, seed: int = 0) -> None:  # fmt: skip
        self.urls, self.rows, self.model = list(urls), rows, model
        self.keys = keys
        self.answers: list[Answer] = []
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        wait_for(lambda: len(self.answers) >= 20, 30, "the load to start")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        clients = [httpx.Client(base_url=url, timeout=10) for url in self.urls]
        path = f"/v1/models/{self.model}:predict"
        try:
            i = 0
            while not self._stop.is_set():
                replica = i % len(clients)
                key = self._rng.choice(self.keys) if self.keys else None
                headers = {"x-routing-key": key} if key else {}
                body = {"instances": [self._rng.choice(self.rows)]}
                try:
                    r = clients[replica].post(path, json=body, headers=headers)
                    answer = Answer(time.time(), r.status_code, r.headers.get("x-model-version"),
                                    replica, key, r.headers.get("x-request-id"))  # fmt: skip
                except httpx.TransportError:
                    answer = Answer(time.time(), 0, None, replica, key, None)
                self.answers.append(answer)
                i += 1
        finally:
            for client in clients:
                client.close()

    def between(self, start: float, end: float = math.inf) -> list[Answer]:
        return [a for a in list(self.answers) if start <= a.at < end]

    def failed(self) -> list[Answer]:
        return [a for a in list(self.answers) if a.status != 200]
