"""A real ``watchkeeper serve`` process per test, in its own process group, killed (the whole
group) when the test ends however it ends. Traffic goes to 127.0.0.1 only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.processes import ROOT, free_port, wait_for
from watchkeeper.config import Settings
from watchkeeper.registry import Registry


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    home: Path
    env: dict[str, str]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and every child it started (uvicorn workers, job children)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def iris_registry(home: Path, *, versions: int = 1) -> Registry:
    """A registry in ``home`` with model ``iris``: ``versions`` versions, v1 in production."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in X.columns]
    registry = Registry(Settings(home=home, user="tester"))
    for i in range(versions):
        model = LogisticRegression(max_iter=500, C=1.0 / (i + 1)).fit(X, y)
        registry.register("iris", model, input_example=X, reference_data=X)
    registry.promote("iris", 1, "production")
    return registry


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """``serve(*args, home=..., ready=True)`` starts ``watchkeeper serve`` on a free port,
    without its scheduler process unless ``scheduler=True`` (the test needs it)."""
    started: list[Served] = []

    def start(*args: str, home: Path | None = None, ready: bool = True,
              env: dict[str, str] | None = None, scheduler: bool = False) -> Served:  # fmt: skip
        home = home or tmp_path / "home"
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        full_env = {**os.environ, "WATCHKEEPER_HOME": str(home), **(env or {})}
        log = home / f"serve-{port}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "watchkeeper", "serve", "--port", str(port),
                 "--log-level", "warning", "--poll-interval", "0.05",
                 *([] if scheduler or "--without-scheduler" in args else ["--without-scheduler"]),
                 *args],
                env=full_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        served = Served(f"http://127.0.0.1:{port}", proc, log, home, full_env)
        started.append(served)
        if ready:

            def up() -> bool:
                assert proc.poll() is None, served.output()
                try:
                    return httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, 60, f"{served.url} to answer")
        return served

    try:
        yield start
    finally:
        for served in started:
            kill_group(served.proc)


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    """A small fitted classifier (iris as numpy arrays)."""
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(X, y)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """An empty registry in the test's own home."""
    with Registry(Settings(home=tmp_path / "home", user="tester")) as reg:
        yield reg
