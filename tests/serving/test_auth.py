"""Tokens and roles on the management API over a real socket; the local-only default."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from tests.serving.conftest import start_server
from watchkeeper.cli.main import app
from watchkeeper.config import Settings
from watchkeeper.registry import Registry
from watchkeeper.registry.tokens import TokenStore
from watchkeeper.serving.app import ServeOptions


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, iris_data) -> Iterator[tuple[str, dict]]:
    X, y = iris_data
    settings = Settings(home=tmp_path_factory.mktemp("auth-home"), user="owner")
    registry = Registry(settings)
    for c in (1.0, 0.1):
        registry.register("iris", LogisticRegression(C=c, max_iter=1000).fit(X, y),
                          input_example=X)  # fmt: skip
    registry.promote("iris", 1, "production")
    registry.promote("iris", 2, "production")
    store = TokenStore(registry.engine)
    tokens = {role: store.create(f"{role}-bot", role, actor="owner")[1]
              for role in ("reader", "deployer", "admin")}  # fmt: skip
    url, server, thread = start_server(settings, ServeOptions(logbook=None))
    yield url, {**tokens, "registry": registry}
    server.should_exit = True
    thread.join(timeout=30)
    registry.close()


def _call(url: str, method: str, path: str, token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, url + path, headers=headers, json={}, timeout=30)


def test_roles_gate_the_management_api(secured) -> None:
    url, t = secured
    anonymous = _call(url, "GET", "/api/v1/models")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    assert _call(url, "GET", "/api/v1/models", "wk_forged").status_code == 401
    assert _call(url, "GET", "/api/v1/models", t["reader"]).status_code == 200
    refused = _call(url, "POST", "/api/v1/models/iris/rollback", t["reader"])
    assert refused.status_code == 403
    assert "needs deployer" in refused.json()["error"]["message"]
    assert _call(url, "POST", "/api/v1/deployments/iris/abort", t["reader"]).status_code == 403
    rolled = _call(url, "POST", "/api/v1/models/iris/rollback", t["deployer"])
    assert rolled.status_code == 200
    assert rolled.json()["version"] == 1
    (event, *_) = t["registry"].history("iris")
    assert (event.action, event.actor) == ("rollback", "deployer-bot")  # who did it
    register = _call(url, "POST", "/api/v1/models/iris/versions", t["deployer"])
    assert register.status_code == 403  # registering needs admin
    # predictions are the data plane: not behind the management tokens
    answer = httpx.post(url + "/v1/models/iris:predict",
                        json={"instances": [[5.1, 3.5, 1.4, 0.2]]}, timeout=30)  # fmt: skip
    assert answer.status_code == 200


def test_token_cli_shows_a_secret_once(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"WATCHKEEPER_HOME": str(tmp_path)}
    made = runner.invoke(app, ["tokens", "create", "--role", "deployer", "--name", "ci",
                               "--json"], env=env)  # fmt: skip
    assert made.exit_code == 0, made.output
    listed = runner.invoke(app, ["tokens", "list", "--json"], env=env).output
    assert "wk_" not in listed
    assert '"role": "deployer"' in listed
    bad = runner.invoke(app, ["tokens", "create", "--role", "god"], env=env)
    assert bad.exit_code == 1
    assert "--role must be one of" in bad.output
    last = runner.invoke(app, ["tokens", "revoke", "1"], env=env)
    assert last.exit_code == 5  # a conflict: the last live token goes only with --force
    assert "last live token" in last.output
    assert runner.invoke(app, ["tokens", "revoke", "1", "--force"], env=env).exit_code == 0
    with Registry(Settings(home=tmp_path)) as registry:
        store = TokenStore(registry.engine)
        assert store.live() == 0
        assert store.configured()  # auth stays on: nobody gets in until a new token exists


def test_without_tokens_the_server_listens_on_localhost_only(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "WATCHKEEPER_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "watchkeeper", "serve", "--host", "0.0.0.0", "--port", str(port),
         "--without-scheduler"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert "listening on 127.0.0.1 only, not 0.0.0.0" in err
    assert f"serving on http://127.0.0.1:{port}" in out
    assert f"http://127.0.0.1:{port}" in err  # uvicorn's own line: the address it bound
