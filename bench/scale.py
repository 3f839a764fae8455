"""Scale-out figures: throughput with 1, 2 and 3 replicas, rollback propagation, demo wall time.

    .venv/bin/python bench/scale.py [--duration 5] [--repeats 3] [--connections 32]
                                    [--sqlite] [--parts throughput rollback demo] [--fast-demo]

Needs ``wrk`` (Debian: ``apt-get install wrk``). The replicas are ``watchkeeper serve``
processes on their own ports sharing one metadata database (a fresh schema of the local
PostgreSQL, ``WATCHKEEPER_BENCH_POSTGRES_URL``; ``--sqlite`` for one SQLite file) and one
artifact/logbook directory, as in docs/deployment.md. A LogisticRegression on 20 features
answers one row per request, every prediction logged.

(i) **Throughput**: one ``wrk`` process (one thread, ``--connections`` keep-alive connections)
per replica, all at once; the figure is the sum of their requests per second, the median of
``--repeats`` runs. 32 connections saturate a replica; at 8, one replica on an otherwise idle
machine is not saturated and spent twice the CPU a request (2 825 against 6 415 requests per
CPU-second with two replicas). The floor is the same number of bare ASGI apps (uvicorn
answering a constant) under the same ``wrk`` load. The servers' own CPU time
(``/proc/PID/stat``) gives requests per CPU-second: what one core buys, whatever else (here
``wrk``) shares the machine.
(ii) **Rollback propagation**: under load on all three replicas (asyncio clients), version 2
is promoted, then ``Registry.rollback`` re-points production at version 1; the figure is the
time from the committed rollback to the last answer from version 2 on any replica
(registry polled every 250 ms, the default).
(iii) **Demo wall time**: ``watchkeeper demo`` from start to exit, in a fresh home.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from registry import postgres_schema
from rollout import Load
from serve import BARE_APP, ROOT, cpu_seconds, free_port, serve_command, stop, wait_ready, wrk
from watchkeeper import Registry, Settings

POSTGRES_URL = os.environ.get(
    "WATCHKEEPER_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PARTS = ("throughput", "rollback", "demo")


@contextmanager
def database(tmp: Path, sqlite: bool) -> Iterator[str]:
    """A database URL: a schema of its own in PostgreSQL (dropped afterwards), else SQLite."""
    with postgres_schema(POSTGRES_URL) if not sqlite else nullcontext() as url:
        yield url or f"sqlite:///{tmp / 'watchkeeper.db'}"


def setup(settings: Settings) -> list[list[float]]:
    X, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    with Registry(settings) as registry:
        registry.register("lr", LogisticRegression(max_iter=1000).fit(X, y),
                          input_example=X[:200], stage="production")  # fmt: skip
        registry.register("lr", LogisticRegression(C=0.01, max_iter=1000).fit(X, y),
                          input_example=X[:200])  # fmt: skip
    return X[:1].tolist()


def start_all(commands: list[list[str]], env: dict[str, str], urls: list[str],
              ready_path: str) -> list[subprocess.Popen[bytes]]:  # fmt: skip
    procs = [subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for cmd in commands]  # fmt: skip
    for url in urls:
        wait_ready(url + ready_path)
    return procs


def bare_command(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log",
            "--log-level", "warning"]  # fmt: skip


def load_all(targets: list[str], body: str, args: argparse.Namespace, tmp: Path,
             pids: list[int]) -> tuple[float, float]:  # fmt: skip
    """One wrk per target at once: (total req/s, requests per server CPU-second)."""
    results: list[dict[str, float]] = [{} for _ in targets]
    before = [cpu_seconds(pid) for pid in pids]

    def one(i: int) -> None:
        folder = tmp / f"wrk-{i}"
        folder.mkdir(exist_ok=True)
        results[i] = wrk(targets[i], body, "application/json", args.connections, args.duration,
                         folder, threads=1)  # fmt: skip

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    used = sum(cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True))
    if any(r["errors"] for r in results):
        raise SystemExit(f"wrk saw non-2xx answers: {results}")
    rps = sum(r["rps"] for r in results)
    return rps, rps * args.duration / used


def throughput(env: dict[str, str], body: str, args: argparse.Namespace, tmp: Path) -> None:
    (tmp / "bare_app.py").write_text(BARE_APP)
    bare_env = {**env, "PYTHONPATH": str(tmp)}
    rows = []
    for n in (1, 2, 3):
        ports = [free_port() for _ in range(n)]
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        runs: dict[str, list[tuple[float, float]]] = {"bare": [], "serve": []}
        for _ in range(args.repeats):  # alternate: the machine's noise hits both alike
            bare = start_all([bare_command(p) for p in ports], bare_env, urls, "/")
            runs["bare"].append(load_all(urls, body, args, tmp, [p.pid for p in bare]))
            for proc in bare:
                stop(proc)
            servers = start_all([serve_command(p, "--without-scheduler") for p in ports], env,
                                urls, "/readyz")  # fmt: skip
            targets = [f"{u}/v1/models/lr:predict" for u in urls]
            runs["serve"].append(load_all(targets, body, args, tmp, [p.pid for p in servers]))
            for proc in servers:
                stop(proc)
        rows.append((n, *(statistics.median(r[k] for r in runs[kind])
                          for kind in ("serve", "bare") for k in (0, 1))))  # fmt: skip
    cores = os.cpu_count() or 1
    print(f"(i) throughput, {args.connections} connections per replica, {args.duration} s, "
          f"median of {args.repeats} runs, {cores} cores shared with wrk")  # fmt: skip
    print(f"    {'replicas':>8} {'req/s':>8} {'x 1 rep':>8} {'req/cpu-s':>10} "
          f"{'bare req/s':>11} {'/ bare':>7} {'bare req/cpu-s':>15}")  # fmt: skip
    one = rows[0][1]
    for n, rps, per_cpu, bare_rps, bare_cpu in rows:
        print(f"    {n:>8} {rps:>8.0f} {rps / one:>8.2f} {per_cpu:>10.0f} {bare_rps:>11.0f} "
              f"{rps / bare_rps:>7.2f} {bare_cpu:>15.0f}")  # fmt: skip


def rollback_propagation(env: dict[str, str], settings: Settings, body: str, rounds: int) -> None:
    ports = [free_port() for _ in range(3)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    servers = start_all([serve_command(p, "--without-scheduler") for p in ports], env, urls,
                        "/readyz")  # fmt: skip
    lags, failed, total = [], 0, 0
    try:
        with Registry(settings) as registry, Load(urls, body.encode(), 2) as load:
            for _ in range(rounds):
                registry.promote("lr", 2, "production")
                _until(lambda: _only(load, "2", len(urls)))
                rolled_at = time.time()
                registry.rollback("lr", reason="bench")
                rolled = time.time()  # committed
                _until(lambda: _only(load, "1", len(urls)))
                last = max(a.at for a in load.between(rolled_at) if a.version == "2")
                lags.append(max(last - rolled, 0.0))
            answers = load.between(0)
            failed = sum(not 200 <= a.status < 300 for a in answers)
            total = len(answers)
    finally:
        for proc in servers:
            stop(proc)
    print(f"(ii) rollback -> last answer from the old production on any of 3 replicas: median "
          f"{statistics.median(lags) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms over "
          f"{rounds} rollbacks (target < 1 s); {failed} failed of {total} requests")  # fmt: skip


def _only(load: Load, version: str, replicas: int) -> bool:
    """Every replica has answered, over the last 0.3 s, with ``version`` only."""
    recent = load.between(time.time() - 0.3)
    return {a.version for a in recent} == {version} and len({a.replica for a in recent}) == replicas


def _until(predicate: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the replicas to follow")
        time.sleep(0.02)


def demo_wall_time(fast: bool, tmp: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    env["WATCHKEEPER_HOME"] = str(tmp / "demo-home")
    cmd = [sys.executable, "-m", "watchkeeper", "demo", "--report", str(tmp / "demo.html")]
    if fast:
        cmd.append("--fast")
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"watchkeeper demo failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    print(f"(iii) watchkeeper demo{' --fast' if fast else ''}: {took:.0f} s wall "
          f"(target < 180 s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--fast-demo", action="store_true", help="watchkeeper demo --fast")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="wk-scale-bench-"))
    try:
        with database(tmp, args.sqlite) as url:
            settings = Settings(home=tmp / "home", database_url=url)
            body = json.dumps({"instances": setup(settings)})
            env = {**os.environ, "WATCHKEEPER_HOME": str(settings.home),
                   "WATCHKEEPER_DATABASE_URL": url}  # fmt: skip
            print(f"metadata database: {url.split(':', 1)[0]}; artifacts "
                  f"and logbook in one local directory")  # fmt: skip
            if "throughput" in args.parts:
                throughput(env, body, args, tmp)
            if "rollback" in args.parts:
                rollback_propagation(env, settings, body, args.rounds)
        if "demo" in args.parts:
            demo_wall_time(args.fast_demo, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
