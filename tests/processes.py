"""Real ``watchkeeper`` processes for end-to-end tests, and a client that loads them.

Used by the rollout tests (two replicas on SQLite) and the multi-replica proof (three replicas on
PostgreSQL). Every process writes its output to ``home/<name>.log``.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from typer.testing import CliRunner

from watchkeeper.cli.main import app
from watchkeeper.registry import Registry
from watchkeeper.registry.deployments import Deployment
from watchkeeper.registry.leases import LeaseStore

ROOT = Path(__file__).resolve().parents[1]
# Publish live totals, flush the logbook and poll the registry far more often than by default.
SERVE_FAST = ["--live-stats-interval", "0.2", "--log-flush-interval", "0.5",
              "--poll-interval", "0.05"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Bounds are there to fail rather than hang, not to time anything: a loaded run (``make test``
# runs files in parallel on a shared machine) stretches them by this factor.
TIME_SCALE = float(os.environ.get("WATCHKEEPER_TEST_TIME_SCALE", "1"))


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout * TIME_SCALE
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


def training_data(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """4 000 rows of four normal features; the label follows ``f0 + 0.5 f1`` with noise."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(4000, 4)), columns=[f"f{i}" for i in range(4)])
    y = (X["f0"] + 0.5 * X["f1"] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    return X, y


@dataclass
class Cluster:
    """Server replicas and schedulers sharing ``env`` (one home, one database)."""

    home: Path
    env: dict[str, str]
    urls: list[str]
    rows: list[dict[str, float]]
    registry: Registry
    servers: list[subprocess.Popen[bytes]]
    scheduler_args: list[str]
    schedulers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    runner: CliRunner = field(default_factory=CliRunner)

    def cli(self, *args: str) -> str:
        result = self.runner.invoke(app, list(args), env=self.env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    def deployment(self, model: str) -> Deployment:
        found = self.registry.deployments.get(model)
        assert found is not None
        return found

    def production(self, model: str) -> int:
        return self.registry.get(f"{model}@production").version

    def settled(self, model: str, timeout: float = 60) -> Deployment:
        """The deployment once it is no longer running (promoted, rolled back, ...)."""
        return wait_for(lambda: (d := self.deployment(model)).state != "running" and d,
                        timeout, f"the deployment of {model} to finish")  # fmt: skip

    def start_scheduler(self) -> subprocess.Popen[bytes]:
        proc = start(self.home, self.env, f"scheduler-{len(self.schedulers)}", "scheduler",
                     *self.scheduler_args)  # fmt: skip
        self.schedulers.append(proc)
        return proc

    def wait_ready(self, models: int) -> None:
        """Until every server serves ``models`` models and a scheduler holds the lease."""
        for url, proc in zip(self.urls, self.servers, strict=True):
            wait_ready(url, proc, self.home / f"serve-{url.rsplit(':', 1)[1]}.log", models)
        wait_for(self.lease_holder, 60, "a scheduler to take the lease")

    def lease_holder(self) -> str | None:
        lease = LeaseStore(self.registry.engine).get("scheduler")
        return lease.holder if lease is not None else None

    def events(self, model: str) -> list[dict[str, Any]]:
        """The deployment history of ``model``, oldest first."""
        return list(reversed(json.loads(self.cli("deploy", "history", model, "--json"))))

    def stop_all(self) -> None:
        for proc in [*self.schedulers, *self.servers]:
            stop(proc)


@contextmanager
def running(home: Path, env: dict[str, str], registry: Registry, rows: list[dict[str, float]],
            *, replicas: int, schedulers: int, scheduler_args: list[str],
            models: int) -> Iterator[Cluster]:  # fmt: skip
    """``replicas`` servers and ``schedulers`` schedulers on ``env``, ready; stopped on exit."""
    ports = [free_port() for _ in range(replicas)]
    servers = [start_server(home, port, env) for port in ports]
    cluster = Cluster(home, env, [f"http://127.0.0.1:{p}" for p in ports], rows, registry,
                      servers, scheduler_args)  # fmt: skip
    try:
        for _ in range(schedulers):
            cluster.start_scheduler()
        cluster.wait_ready(models)
        yield cluster
    finally:
        cluster.stop_all()


def holder_pid(holder: str) -> int:
    """A scheduler's lease holder is ``<host>-<pid>-<random>``."""
    return int(holder.rsplit("-", 2)[1])


def event_at(event: dict[str, Any]) -> float:
    """When a deployment event (``deploy history --json``) was recorded, as ``time.time()``."""
    return datetime.fromisoformat(event["at"]).timestamp()
