"""The cost of data-plane token checks on the prediction fast path, in one run.

    .venv/bin/python bench/auth.py [--duration 5] [--concurrency 1 32] [--rounds 3]

Needs ``wrk``. One LogisticRegression on 20 features, one row per request to
``/v1/models/lr:predict``, against (a) a bare ASGI app (the floor), (b) ``watchkeeper serve``
with open predictions, (c) ``watchkeeper serve --require-token predict`` with a ``client``
token in every request. (b) and (c) alternate ``--rounds`` times so machine noise falls on
both; the table shows the medians, (c) as a ratio to (b), and both as ratios to the floor.
The model's own one-row predict time is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from serve import BARE_APP, free_port, serve_command, setup_registry, start, stop, wrk
from watchkeeper import Registry, Settings
from watchkeeper.registry.tokens import TokenStore


def model_predict_ms(home: Path, row: list[list[float]]) -> float:
    with Registry(Settings(home=home)) as registry:
        model = registry.load("lr@production")
    x = np.asarray(row)
    predict = model.predict
    for _ in range(200):
        predict(x)
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        predict(x)
    return (time.perf_counter() - t0) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="wk-auth-bench-"))
    try:
        home = tmp / "home"
        data = setup_registry(home)
        row = data["row"]
        assert isinstance(row, list)
        with Registry(Settings(home=home)) as registry:
            _, secret = TokenStore(registry.engine).create("bench", "client", actor="bench")
        body = json.dumps({"instances": row})
        (tmp / "bare_app.py").write_text(BARE_APP)
        env = {**os.environ, "WATCHKEEPER_HOME": str(home), "PYTHONPATH": str(tmp)}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        path = f"{url}/v1/models/lr:predict"
        bare = start([sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port),
                      "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                      "--log-level", "warning"], env, url)  # fmt: skip
        floor = {c: wrk(url + "/", body, "application/json", c, args.duration, tmp)
                 for c in args.concurrency}  # fmt: skip
        stop(bare)
        variants = {
            "open": ([], {}),
            "--require-token predict": (["--require-token", "predict"],
                                        {"Authorization": f"Bearer {secret}"}),
        }  # fmt: skip
        runs: dict[tuple[str, int], list[dict[str, float]]] = {}
        for _ in range(args.rounds):
            for name, (extra, headers) in variants.items():
                server = start(serve_command(port, "--model", "lr", *extra), env, url)
                for c in args.concurrency:
                    wrk(path, body, "application/json", c, 1, tmp, headers=headers)  # warm
                    got = wrk(path, body, "application/json", c, args.duration, tmp,
                              headers=headers)  # fmt: skip
                    if got["errors"]:
                        raise SystemExit(f"{name}: {got['errors']:.0f} non-2xx answers")
                    runs.setdefault((name, c), []).append(got)
                stop(server)
        print(f"model's own one-row predict: {model_predict_ms(home, row):.3f} ms (in process)")
        print(f"{'target':<26}{'c':>4}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
              f"{'x open rps':>11}{'x open p99':>11}{'x floor rps':>12}")  # fmt: skip
        for c in args.concurrency:
            f = floor[c]
            print(f"{'bare ASGI (floor)':<26}{c:>4}{f['rps']:>9.0f}{f['p50']:>8.2f}"
                  f"{f['p99']:>8.2f}{'':>11}{'':>11}{1:>12.2f}")  # fmt: skip
            med = {name: {k: statistics.median(r[k] for r in runs[(name, c)])
                          for k in ("rps", "p50", "p99")} for name in variants}  # fmt: skip
            for name, m in med.items():
                o = med["open"]
                print(f"{name:<26}{c:>4}{m['rps']:>9.0f}{m['p50']:>8.2f}{m['p99']:>8.2f}"
                      f"{m['rps'] / o['rps']:>11.3f}{m['p99'] / o['p99']:>11.3f}"
                      f"{m['rps'] / f['rps']:>12.2f}")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
