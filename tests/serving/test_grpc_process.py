"""``watchkeeper serve --grpc-port`` as a real process: a canary splits gRPC traffic as it splits
REST, a token is required when predictions require one, several workers share the gRPC port,
SIGTERM lets in-flight calls finish, and a missing extra or a taken port is a one-line error."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from tests.processes import ROOT, free_port, wait_for
from tests.security.conftest import Served, iris_registry
from tests.serving.gated_model import GATE, GatedModel
from watchkeeper.config import Settings
from watchkeeper.logbook import Logbook
from watchkeeper.registry import Registry
from watchkeeper.registry.tokens import TokenStore
from watchkeeper.serving.protocols.v2_grpc import open_inference_pb2 as pb
from watchkeeper.serving.protocols.v2_grpc import open_inference_pb2_grpc as pb_grpc

ROW = [5.1, 3.5, 1.4, 0.2]
CANARY = {"mode": "canary", "version": 2, "plan": {"steps": [0.5, 1.0]}, "reason": "test"}


def iris_request(model: str = "iris") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4])
    request.raw_input_contents.append(np.asarray([ROW], dtype="<f8").tobytes())
    return request


def infer_version(
    stub: pb_grpc.GRPCInferenceServiceStub, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[str, str]:
    """One ModelInfer: the answering version and the request id."""
    response, call = stub.ModelInfer.with_call(iris_request(), metadata=metadata, timeout=30)
    head = dict(call.trailing_metadata())
    assert head["x-model-version"] == response.model_version
    return response.model_version, str(head["x-request-id"])


def fresh_call(target: str) -> tuple[str, str]:
    """``infer_version`` on a new connection."""
    with grpc.insecure_channel(target) as channel:
        return infer_version(pb_grpc.GRPCInferenceServiceStub(channel))


def rest_version(client: httpx.Client, routing_key: str | None = None) -> str:
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}
    headers = {"x-routing-key": routing_key} if routing_key else {}
    answer = client.post("/v2/models/iris/infer", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["model_version"])


@pytest.mark.slow
def test_a_canary_splits_grpc_traffic_like_rest(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """Promise: with a canary at 50 %, gRPC calls are answered by both versions in about the
    canary's share, as REST calls are; a routing key (x-routing-key metadata) sticks to one
    version, the same one REST picks for that key."""
    home = tmp_path / "home"
    iris_registry(home, versions=2).close()
    port = free_port()
    served = serve("--grpc-port", str(port), "--without-scheduler", home=home)
    with (
        httpx.Client(base_url=served.url, timeout=30) as client,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        started = client.post("/api/v1/deployments/iris", json=CANARY)
        assert started.status_code == 201, started.text
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        wait_for(lambda: infer_version(stub)[0] == "2", 60, "the canary to answer gRPC calls")
        grpc_share = [infer_version(stub)[0] for _ in range(200)].count("2") / 200
        rest_share = [rest_version(client) for _ in range(200)].count("2") / 200
        assert 0.3 < grpc_share < 0.7
        assert 0.3 < rest_share < 0.7
        for key in ("customer-7", "customer-8"):
            sticky = {infer_version(stub, (("x-routing-key", key),))[0] for _ in range(15)}
            assert sticky == {rest_version(client, key)}


def test_a_token_is_required_when_predictions_require_one(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """Promise: under --require-token predict, ModelInfer without a token or with an unknown
    one is UNAUTHENTICATED, a token whose role cannot predict is PERMISSION_DENIED, and a
    client token (authorization: Bearer ... metadata) is answered; health stays open."""
    home = tmp_path / "home"
    with iris_registry(home) as registry:
        store = TokenStore(registry.engine)
        client = store.create("bot", "client", actor="tester")[1]
        feedback = store.create("labeller", "feedback", actor="tester")[1]
    port = free_port()
    serve("--grpc-port", str(port), "--require-token", "predict", "--without-scheduler",
          home=home)  # fmt: skip
    triton_client = triton.InferenceServerClient(f"127.0.0.1:{port}")
    values = np.asarray([ROW])
    x = triton.InferInput("input-0", [1, 4], "FP64")
    x.set_data_from_numpy(values)
    assert triton_client.is_server_live()
    refused = {None: "UNAUTHENTICATED", "wk_forged": "UNAUTHENTICATED",
               feedback: "PERMISSION_DENIED"}  # fmt: skip
    for token, status in refused.items():
        headers = {"authorization": f"Bearer {token}"} if token else None
        with pytest.raises(InferenceServerException, match="token|role") as raised:
            triton_client.infer("iris", [x], headers=headers)
        assert raised.value.status() == f"StatusCode.{status}"
    answered = triton_client.infer("iris", [x], headers={"authorization": f"Bearer {client}"})
    assert answered.as_numpy("predictions").shape == (1,)
    triton_client.close()


@pytest.mark.slow
def test_workers_share_the_grpc_port(serve: Callable[..., Served], tmp_path: Path) -> None:
    """Promise: with --workers 2, both worker processes listen on the gRPC port (SO_REUSEPORT):
    new connections are answered by both (request ids carry a per-process prefix)."""
    home = tmp_path / "home"
    iris_registry(home).close()
    port = free_port()
    serve("--grpc-port", str(port), "--workers", "2", "--without-scheduler", home=home)
    target = f"127.0.0.1:{port}"
    seen: set[str] = set()

    def both() -> bool:
        try:
            seen.add(fresh_call(target)[1].split("-")[0])
        except grpc.RpcError:  # the second worker may still be starting
            pass
        return len(seen) == 2

    wait_for(both, 120, "calls answered by both workers")


def test_sigterm_lets_in_flight_calls_finish(serve: Callable[..., Served], tmp_path: Path) -> None:
    """Promise: SIGTERM while gRPC calls are inside the model lets them finish with their
    answers; the process exits 0 and the calls are in the logbook."""
    home = tmp_path / "home"
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with Registry(Settings(home=home, user="tester")) as registry:
        registry.register("gated", GatedModel(), input_example=frame, stage="production")
    started = tmp_path / "started"
    port = free_port()
    served = serve("--grpc-port", str(port), "--without-scheduler", home=home,
                   env={"WK_TEST_STARTED": str(started), "PYTHONPATH": str(ROOT)})  # fmt: skip
    answers: list[float] = []

    def call() -> None:
        request = pb.ModelInferRequest(model_name="gated")
        request.inputs.add(name="x", datatype="FP64", shape=[1]).contents.fp64_contents.append(GATE)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
        answers.append(float(np.frombuffer(response.raw_output_contents[0], "<f8")[0]))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    wait_for(started.exists, 60, "a call inside the model")
    served.proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=60)
    assert served.proc.wait(timeout=60) == 0, served.output()
    assert answers == [2 * GATE] * 3
    now = datetime.now(UTC)
    book = Logbook(Settings(home=home).resolved_logbook_url)
    logged = book.read("gated", now - timedelta(hours=1), now + timedelta(hours=1))
    assert logged.column("feature_x").to_pylist() == [GATE] * 3


def _cli(home: Path, *args: str, block_grpc: bool = False) -> subprocess.CompletedProcess[str]:
    code = "import sys; sys.modules['grpc'] = None; " if block_grpc else ""
    code += "import runpy; runpy.run_module('watchkeeper', run_name='__main__')"
    return subprocess.run(
        [sys.executable, "-c", code, "serve", "--without-scheduler", *args],
        env={**os.environ, "WATCHKEEPER_HOME": str(home)}, cwd=ROOT, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip


def test_missing_extra_or_taken_port_is_a_one_line_error(tmp_path: Path) -> None:
    """Promise: --grpc-port without grpcio installed names the extra to install, a gRPC port
    already taken is named, and the REST port is refused as the gRPC port; each is one line
    and exit status 1, before anything listens."""
    iris_registry(tmp_path).close()
    missing = _cli(tmp_path, "--port", str(free_port()), "--grpc-port", str(free_port()),
                   block_grpc=True)  # fmt: skip
    assert missing.returncode == 1
    assert "pip install 'watchkeeper[grpc]'" in missing.stderr
    assert "Traceback" not in missing.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = _cli(tmp_path, "--port", str(free_port()), "--grpc-port", str(port))
    assert busy.returncode == 1
    assert f"--grpc-port {port}: cannot listen on 127.0.0.1:{port}" in busy.stderr
    assert "Traceback" not in busy.stderr
    rest = str(free_port())
    same = _cli(tmp_path, "--port", rest, "--grpc-port", rest)
    assert same.returncode == 1
    assert "--grpc-port must be a port from 1 to 65535 other than --port" in same.stderr
