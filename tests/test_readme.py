"""The README's Python examples run as written (those that talk to a server, against one)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from tests.processes import free_port, wait_for
from tests.security.conftest import Served, serve  # noqa: F401
from watchkeeper.config import Settings
from watchkeeper.registry import Registry

README = Path(__file__).resolve().parents[1] / "README.md"
SERVER = "localhost:8080"  # where the README's client examples look for a server
GRPC_SERVER = "localhost:8081"  # and its gRPC examples, for `serve --grpc-port 8081`


def _blocks(*, client: bool) -> list[str]:
    """The README's Python blocks: those that talk to a running server, or the others."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return [b for b in blocks if (SERVER in b or GRPC_SERVER in b) == client]


def test_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    blocks = _blocks(client=False)
    assert blocks, "the README has a Python example"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WATCHKEEPER_HOME", raising=False)
    monkeypatch.delenv("WATCHKEEPER_DATABASE_URL", raising=False)
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    assert capsys.readouterr().out.strip().endswith("True")
    assert (tmp_path / ".watchkeeper" / "watchkeeper.db").is_file()


def test_toml_examples_declare_valid_monitors(tmp_path: Path) -> None:
    from watchkeeper.config import Settings
    from watchkeeper.monitoring.spec import declared_monitors
    from watchkeeper.retraining.spec import declared_retraining

    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README shows a watchkeeper.toml"
    for i, block in enumerate(blocks):
        path = tmp_path / f"{i}.toml"
        path.write_text(block)
        settings = Settings.load(env={}, config_file=path)
        for name, spec in declared_monitors(settings).items():
            assert spec.model == name
        for name, retraining in declared_retraining(settings).items():
            assert retraining.model == name


def test_client_examples_run_against_a_server(tmp_path: Path, serve, capsys) -> None:  # noqa: F811
    """The README's client examples (tritonclient...) work against `watchkeeper serve` with
    the README's breast-cancer model, as written but for the port."""
    blocks = _blocks(client=True)
    assert blocks, "the README shows a client talking to a server"
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with Registry(Settings(home=tmp_path / "home", user="tester")) as registry:
        registry.register("breast-cancer", LogisticRegression(max_iter=3000).fit(X, y),
                          input_example=X, stage="production")  # fmt: skip
    grpc_port = free_port()
    served: Served = serve("--without-scheduler", "--grpc-port", str(grpc_port),
                           home=tmp_path / "home")  # fmt: skip
    wait_for(lambda: httpx.get(f"{served.url}/readyz").status_code == 200, 60, "ready")
    for block in blocks:
        code = block.replace(SERVER, served.url.removeprefix("http://"))
        code = code.replace(GRPC_SERVER, f"127.0.0.1:{grpc_port}")
        exec(compile(code, str(README), "exec"), {})
    assert capsys.readouterr().out.strip()
