"""Open Inference Protocol v2: binary tensor data against JSON for one 1 000-row request.

    .venv/bin/python bench/v2_binary.py [--rows 1000] [--requests 200] [--datatype FP64]

One LogisticRegression on 20 features, served by ``watchkeeper serve``. The same rows go as one
``[rows, 20]`` tensor, (a) as JSON with JSON outputs, (b) as binary tensor data asking for
binary outputs (what ``tritonclient.http`` sends by default). Bodies are built once, so client
encoding is not timed. Printed: request and answer bytes; the median round trip over 127.0.0.1
(the two kinds alternate, so machine noise falls on both); and the median time of the server's
format-dependent work for one request (parse, validate against the signature, render the
answer), measured in this process on the server's own functions, the two kinds again in turn.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from serve import free_port, serve_command, start, stop
from watchkeeper import Registry, Settings
from watchkeeper.models.signature import Signature
from watchkeeper.serving.protocols import v2
from watchkeeper.serving.validation import Validator

NUMPY = {"FP32": "<f4", "FP64": "<f8"}


def bodies(X: np.ndarray, datatype: str) -> dict[str, tuple[bytes, dict[str, str]]]:
    """The request as JSON and as binary tensor data, with the headers each needs."""
    values = X.astype(NUMPY[datatype])
    tensor = {"name": "input-0", "shape": list(values.shape), "datatype": datatype}
    as_json = orjson.dumps({"inputs": [{**tensor, "data": values.ravel().tolist()}]})
    raw = values.tobytes()
    header = orjson.dumps({
        "inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
        "parameters": {"binary_data_output": True},
    })  # fmt: skip
    length = {"inference-header-content-length": str(len(header))}
    return {"JSON": (as_json, {}), "binary": (header + raw, length)}


def medians_ms(runs: dict[str, Callable[[], Any]], n: int) -> dict[str, float]:
    """The median time of each run, the runs taken in turn so that noise falls on all."""
    times: dict[str, list[float]] = {kind: [] for kind in runs}
    for _ in range(n):
        for kind, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[kind].append(time.perf_counter() - t0)
    return {kind: statistics.median(t) * 1000 for kind, t in times.items()}


def server_work(body: bytes, headers: dict[str, str], validator: Validator,
                predictions: np.ndarray) -> None:  # fmt: skip
    """What the server does with a request that depends on its format."""
    parsed = v2.parse(body, validator.signature,
                      header_length=headers.get("inference-header-content-length"))  # fmt: skip
    validator.validate(parsed)
    v2.render(model="lr", version=1, request_id=None, predictions=predictions,
              binary=parsed.binary_outputs)  # fmt: skip


def round_trips(url: str, kinds: dict[str, tuple[bytes, dict[str, str]]], n: int
                ) -> tuple[dict[str, float], dict[str, int]]:  # fmt: skip
    """Median round trip per kind (kinds alternate) and the size of each kind's answer."""
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    answered: dict[str, int] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(n + 20):
            for kind, (body, headers) in kinds.items():
                t0 = time.perf_counter()
                r = client.post("/v2/models/lr/infer", content=body, headers=headers)
                took = time.perf_counter() - t0
                assert r.status_code == 200, r.text[:300]
                answered[kind] = len(r.content)
                if i >= 20:  # the first 20 of each warm up
                    times[kind].append(took)
    return {kind: statistics.median(t) * 1000 for kind, t in times.items()}, answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--datatype", choices=list(NUMPY), default="FP64")
    args = parser.parse_args()
    X, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    kinds = bodies(X[: args.rows], args.datatype)
    tmp = Path(tempfile.mkdtemp(prefix="wk-v2-binary-bench-"))
    try:
        with Registry(Settings(home=tmp / "home")) as registry:
            version = registry.register("lr", model, input_example=X[:200], stage="production")
        assert version.signature is not None
        validator = Validator(Signature.from_dict(version.signature))
        predictions = model.predict(X[: args.rows])
        work = medians_ms({kind: lambda b=b, h=h: server_work(b, h, validator, predictions)
                           for kind, (b, h) in kinds.items()}, args.requests)  # fmt: skip
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "WATCHKEEPER_HOME": str(tmp / "home")}
        server = start(serve_command(port, "--no-logbook"), env, url)
        try:
            trip, answered = round_trips(url, kinds, args.requests)
        finally:
            stop(server)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.rows} rows x 20 {args.datatype}, median of {args.requests} requests")
    print(f"{'':<8}{'request B':>11}{'answer B':>10}{'server work ms':>16}{'round trip ms':>15}")
    for kind, (body, _) in kinds.items():
        print(f"{kind:<8}{len(body):>11}{answered[kind]:>10}{work[kind]:>16.2f}{trip[kind]:>15.2f}")
    j, b = "JSON", "binary"
    print(f"{'JSON/bin':<8}{len(kinds[j][0]) / len(kinds[b][0]):>11.2f}"
          f"{answered[j] / answered[b]:>10.2f}{work[j] / work[b]:>16.2f}"
          f"{trip[j] / trip[b]:>15.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
