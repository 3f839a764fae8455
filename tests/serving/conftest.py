"""A real server on a real socket, serving models from a real registry."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import uvicorn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.processes import TIME_SCALE
from tests.security.conftest import serve  # noqa: F401  (a real `watchkeeper serve` process)
from watchkeeper.config import Settings
from watchkeeper.logbook import LogbookConfig
from watchkeeper.registry import Registry
from watchkeeper.server import create_app
from watchkeeper.serving.app import ServeOptions


@dataclass
class Live:
    url: str
    client: httpx.Client
    registry: Registry
    X: pd.DataFrame
    model: LogisticRegression
    settings: Settings


@pytest.fixture(scope="module")
def iris_data() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in X.columns]
    return X, y


def start_server(
    settings: Settings, options: ServeOptions
) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings, options), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30 * TIME_SCALE
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return url, server, thread
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.should_exit = True  # never leave a server thread and its socket behind
    thread.join(timeout=30)
    raise RuntimeError("server did not become ready")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, iris_data) -> Iterator[Live]:
    X, y = iris_data
    home: Path = tmp_path_factory.mktemp("serve-home")
    settings = Settings(home=home, user="tester")
    registry = Registry(settings)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    registry.register("iris", model, input_example=X, reference_data=X)
    registry.register("iris", LogisticRegression(max_iter=1000, C=0.01).fit(X, y), input_example=X)
    registry.promote("iris", 1, "production")
    url, server, thread = start_server(
        settings,
        ServeOptions(
            poll_interval=0.05,
            live_stats_interval=0.1,
            logbook=LogbookConfig(flush_interval=0.1),
        ),
    )
    with httpx.Client(base_url=url, timeout=30) as client:
        yield Live(url, client, registry, X, model, settings)
    server.should_exit = True
    thread.join(timeout=30)
    registry.close()
