"""gRPC ModelInfer against REST v2 (JSON and binary) and a bare ASGI app, in one run.

    .venv/bin/python bench/grpc_infer.py [--duration 5] [--concurrency 1 32]

(Not ``bench/grpc.py``: a file of that name beside the script would shadow the ``grpc`` library
when the script runs, and make ruff sort ``import grpc`` as first-party everywhere.)

Needs ``wrk`` (Debian: ``apt-get install wrk``) and the ``grpc`` extra. One LogisticRegression on
20 features, one row per request, one ``watchkeeper serve --grpc-port`` process with its
defaults (validation, batching, logbook and metrics on). At each concurrency it prints req/s,
p50 and p99 and the server's CPU per request for: (a) a bare ASGI app on uvicorn returning a
constant (the floor, wrk), (b) REST ``/v2/models/lr/infer`` with a JSON body (wrk), (c) the same
with binary tensor data both ways, as tritonclient.http sends by default (wrk), (d) gRPC
``ModelInfer`` with the tensor in ``raw_input_contents``, as tritonclient.grpc sends it, from
this script's asyncio client (grpc.aio on uvloop, one channel, ``c`` calls in flight; the
request is serialized once and answers are not decoded, so the client's work per call is
gRPC's own). wrk is C and this client Python: both share the machine's cores with the server,
so compare the server's CPU per request as well as req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import grpc.aio
import numpy as np
import uvloop
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from serve import BARE_APP, cpu_seconds, free_port, serve_command, start, stop
from watchkeeper import Registry, Settings
from watchkeeper.serving.protocols.v2_grpc import open_inference_pb2 as pb

INFER = "/inference.GRPCInferenceService/ModelInfer"
Result = dict[str, float]
BARE_GRPC = """
import sys, grpc, grpc.aio, uvloop
ANSWER = bytes.fromhex(sys.argv[2])
async def infer(request, context):
    return ANSWER
async def main():
    server = grpc.aio.server()
    methods = {"ModelInfer": grpc.unary_unary_rpc_method_handler(infer)}
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("inference.GRPCInferenceService", methods)])
    server.add_insecure_port("127.0.0.1:" + sys.argv[1])
    await server.start()
    await server.wait_for_termination()
uvloop.run(main())
"""


def rest_bodies(row: np.ndarray) -> dict[str, tuple[bytes, dict[str, str]]]:
    """The v2 request as JSON, and as binary tensor data asking for binary outputs."""
    tensor = {"name": "input-0", "shape": list(row.shape), "datatype": "FP64"}
    as_json = json.dumps({"inputs": [{**tensor, "data": row.ravel().tolist()}]}).encode()
    raw = row.astype("<f8").tobytes()
    header = json.dumps({
        "inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
        "parameters": {"binary_data_output": True},
    }).encode()  # fmt: skip
    return {
        "REST v2 JSON": (as_json, {"Content-Type": "application/json"}),
        "REST v2 binary": (header + raw, {"Content-Type": "application/octet-stream",
                                          "Inference-Header-Content-Length": str(len(header))}),
    }  # fmt: skip


def grpc_body(row: np.ndarray) -> bytes:
    request = pb.ModelInferRequest(model_name="lr")
    request.inputs.add(name="input-0", datatype="FP64", shape=list(row.shape))
    request.raw_input_contents.append(row.astype("<f8").tobytes())
    return request.SerializeToString()


def answer() -> bytes:
    """A ModelInferResponse of one INT64 prediction, as the server gives for one row."""
    response = pb.ModelInferResponse(model_name="lr", model_version="1")
    response.outputs.add(name="predictions", datatype="INT64", shape=[1])
    response.raw_output_contents.append(np.zeros(1, "<i8").tobytes())
    return response.SerializeToString()


def lua_string(data: bytes) -> str:
    """``data`` as a Lua string literal (wrk's LuaJIT has no \\u escapes: bytes as \\ddd)."""
    keep = set(range(0x20, 0x7F)) - {ord('"'), ord("\\")}
    return '"' + "".join(chr(b) if b in keep else f"\\{b:03d}" for b in data) + '"'


def wrk(url: str, body: bytes, headers: dict[str, str], connections: int, duration: int,
        tmp: Path) -> Result:  # fmt: skip
    script = tmp / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{duration}s",
         "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rps is not None, out
    return {"rps": float(rps.group(1)), "p50": _ms(out, "50%"), "p99": _ms(out, "99%"),
            "errors": float(non2xx.group(1)) if non2xx else 0.0}  # fmt: skip


def _ms(out: str, which: str) -> float:
    found = re.search(rf"{which}\s+([\d.]+)(\w+)", out)
    assert found is not None, out
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[found.group(2)]
    return float(found.group(1)) * unit


async def grpc_load(target: str, body: bytes, concurrency: int, duration: float) -> Result:
    """``concurrency`` callers, each one ModelInfer after another on one channel, for
    ``duration`` seconds: req/s, p50, p99 and failed calls."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(INFER)  # bytes in, bytes out: nothing re-encoded per call
        latencies: list[float] = []
        errors = 0
        end = time.perf_counter() + duration

        async def caller() -> None:
            nonlocal errors
            while (start := time.perf_counter()) < end:
                try:
                    await call(body, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    cuts = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / duration, "p50": cuts[49] * 1000, "p99": cuts[98] * 1000,
            "errors": float(errors)}  # fmt: skip


def start_bare_grpc(port: int, answer: bytes, env: dict[str, str], tmp: Path
                    ) -> subprocess.Popen[bytes]:  # fmt: skip
    """A grpc.aio server on uvloop answering ``answer`` to every ModelInfer (the gRPC floor)."""
    (tmp / "bare_grpc.py").write_text(BARE_GRPC)
    proc = subprocess.Popen([sys.executable, str(tmp / "bare_grpc.py"), str(port), answer.hex()],
                            env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
    return proc


def with_cpu(run: Result, pid: int, before: float, seconds: float) -> Result:
    """``run`` with the server's CPU per request in µs (its CPU seconds were ``before``)."""
    return {**run, "cpu_us": (cpu_seconds(pid) - before) / max(run["rps"] * seconds, 1) * 1e6}


def bench(
    args: argparse.Namespace, tmp: Path, env: dict[str, str]
) -> dict[tuple[str, int], Result]:
    X, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    with Registry(Settings(home=tmp / "home")) as registry:
        registry.register("lr", LogisticRegression(max_iter=1000).fit(X, y),
                          input_example=X[:200], stage="production")  # fmt: skip
    row, seconds = X[:1], args.duration
    results: dict[tuple[str, int], Result] = {}
    port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    (tmp / "bare_app.py").write_text(BARE_APP)
    bare = start([sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port),
                  "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                  "--log-level", "warning"], env, url)  # fmt: skip
    for c in args.concurrency:
        before = cpu_seconds(bare.pid)
        run = wrk(url + "/", b"{}", {}, c, seconds, tmp)
        results[("bare ASGI (floor)", c)] = with_cpu(run, bare.pid, before, seconds)
    stop(bare)
    target, body = f"127.0.0.1:{grpc_port}", grpc_body(row)
    bare_grpc = start_bare_grpc(grpc_port, answer(), env, tmp)
    for c in args.concurrency:
        uvloop.run(grpc_load(target, body, c, 1.0))  # warm-up
        before = cpu_seconds(bare_grpc.pid)
        run = uvloop.run(grpc_load(target, body, c, seconds))
        results[("bare grpc.aio (floor)", c)] = with_cpu(run, bare_grpc.pid, before, seconds)
    stop(bare_grpc)
    server = start(serve_command(port, "--grpc-port", str(grpc_port), "--without-scheduler"),
                   env, url)  # fmt: skip
    try:
        for c in args.concurrency:
            for name, (rest, headers) in rest_bodies(row).items():
                wrk(f"{url}/v2/models/lr/infer", rest, headers, c, 1, tmp)  # warm-up
                before = cpu_seconds(server.pid)
                run = wrk(f"{url}/v2/models/lr/infer", rest, headers, c, seconds, tmp)
                results[(name, c)] = with_cpu(run, server.pid, before, seconds)
            uvloop.run(grpc_load(target, body, c, 1.0))  # warm-up
            before = cpu_seconds(server.pid)
            run = uvloop.run(grpc_load(target, body, c, seconds))
            results[("gRPC ModelInfer", c)] = with_cpu(run, server.pid, before, seconds)
    finally:
        stop(server)
    return results


def report(results: dict[tuple[str, int], Result]) -> None:
    """One line per target and concurrency, with ratios to the bare ASGI app and to the bare
    app of the target's own transport (HTTP: the same; gRPC: the bare grpc.aio server)."""
    print(f"{'target':<22}{'c':>4}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}"
          f"{'rps/ASGI':>10}{'p99/ASGI':>10}{'rps/own':>9}{'p99/own':>9}{'failed':>8}")  # fmt: skip
    for (target, c), r in results.items():
        asgi = results[("bare ASGI (floor)", c)]
        grpc_floor = results.get(("bare grpc.aio (floor)", c), asgi)
        own = grpc_floor if "grpc" in target.lower() else asgi
        print(f"{target:<22}{c:>4}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}"
              f"{r['cpu_us']:>12.0f}{r['rps'] / asgi['rps']:>10.2f}{r['p99'] / asgi['p99']:>10.2f}"
              f"{r['rps'] / own['rps']:>9.2f}{r['p99'] / own['p99']:>9.2f}"
              f"{r['errors']:>8.0f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="wk-grpc-bench-"))
    env = {**os.environ, "WATCHKEEPER_HOME": str(tmp / "home"), "PYTHONPATH": str(tmp)}
    try:
        print(f"load average at the start: {os.getloadavg()[0]:.2f}")
        report(bench(args, tmp, env))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
