"""Rollout figures: how fast a failed guard empties the candidate, and what rollouts cost.

    .venv/bin/python bench/rollout.py [--replicas 3] [--rounds 5] [--duration 5]

``--replicas`` ``watchkeeper serve`` processes
(default settings: registry poll every 250 ms) and one ``watchkeeper scheduler`` (a look every
0.5 s) share one temporary home; a LogisticRegression on 20 features answers single rows.

(i) **Guard → 0%**: a canary of a candidate 30 ms slower than production is started under
load (asyncio httpx clients on every replica, recording each answer's ``X-Model-Version``);
its latency guard fails at the first step. The figure is the time from the rollback's
deployment event (written right after the guard's evaluation) to the last answer from the
candidate on any replica, per round (target < 1 s).
(ii) **Failed requests** (non-2xx or broken connections) during a full canary rollout
(10% → 50% → 100%, promoted), during the guard rollbacks of (i), and around a
``models rollback`` (target 0).
(iii) **Shadow cost**: ``--concurrency`` keep-alive connections against one replica, without a
deployment (the floor) and with a shadow of the same model taking a copy of a
``--shadow-sample`` share of the requests (every one, and one in ten, by default), alternated
``--rounds`` times; the p99 ratio of the medians (target ≤ 1.10), and the server's CPU time
per request, which a shared machine disturbs far less than p99. Latencies come
from a minimal asyncio HTTP/1.1 client timing every request: on this machine ``wrk``'s
latency distribution is inconsistent with its own request rate (at one connection, the sum
of its latencies exceeds the run's duration several times over).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from serve import ROOT, cpu_seconds, free_port, serve_command, stop, wait_ready
from watchkeeper import Registry, Settings
from watchkeeper.rollout.controller import Rollouts
from watchkeeper.rollout.plan import Plan

SERVE = ("--without-scheduler", "--live-stats-interval", "1")
SCHEDULER = ("--interval", "0.5", "--lease-ttl", "5", "--no-monitors", "--log-level", "warning")


class Slow:
    """Production's answers, 30 ms later (pickled by value: defined in ``__main__``)."""

    def __init__(self, inner: LogisticRegression, delay: float = 0.03) -> None:
        self.inner = inner
        self.delay = delay
        self.classes_ = inner.classes_

    def predict(self, X: object) -> np.ndarray:
        time.sleep(self.delay)
        return np.asarray(self.inner.predict(X))


@dataclass(frozen=True)
class Answer:
    at: float
    status: int
    version: str | None
    replica: int


class Load:
    """``concurrency`` clients per replica, each sending one row after the other, in a thread
    of its own; every answer is kept."""

    def __init__(self, urls: list[str], body: bytes, concurrency: int) -> None:
        self.urls, self.body, self.concurrency = urls, body, concurrency
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        while len(self.answers) < 50:
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        clients = [httpx.AsyncClient(base_url=u, timeout=10, limits=limits) for u in self.urls]
        try:
            await asyncio.gather(*(self._worker(clients[i], i) for i in range(len(self.urls))
                                   for _ in range(self.concurrency)))  # fmt: skip
        finally:
            for client in clients:
                await client.aclose()

    async def _worker(self, client: httpx.AsyncClient, replica: int) -> None:
        headers = {"content-type": "application/json"}
        while not self._stop.is_set():
            try:
                r = await client.post("/v1/models/lr:predict", content=self.body, headers=headers)
                answer = Answer(time.time(), r.status_code, r.headers.get("x-model-version"),
                                replica)  # fmt: skip
            except httpx.TransportError:
                answer = Answer(time.time(), 0, None, replica)
            self.answers.append(answer)

    def between(self, start: float, end: float = float("inf")) -> list[Answer]:
        return [a for a in list(self.answers) if start <= a.at < end]


def failed(answers: list[Answer]) -> int:
    return sum(not 200 <= a.status < 300 for a in answers)


def setup(home: Path) -> list[list[float]]:
    X, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    production = LogisticRegression(max_iter=1000).fit(X, y)
    with Registry(Settings(home=home)) as registry:
        registry.register("lr", production, input_example=X[:200], reference_data=_frame(X),
                          stage="production")  # v1  # fmt: skip
        registry.register(
            "lr", production, input_example=X[:200], reference_data=_frame(X)
        )  # v2: the same model, for the shadow cost
        registry.register("lr", LogisticRegression(C=0.5, max_iter=1000).fit(X, y),
                          input_example=X[:200], reference_data=_frame(X))  # v3: good  # fmt: skip
        registry.register("lr", Slow(production), input_example=X[:200])  # v4: 30 ms slower
    return X[:1].tolist()


def _frame(X: np.ndarray) -> object:
    import pandas as pd

    return pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])


def wait_until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.05)


def shadow_cost(url: str, pid: int, home: Path, body: str, args: argparse.Namespace) -> None:
    """(iii): p99 with and without a shadow, alternated, same concurrency; and the server's
    CPU time per request (user + system, from /proc), the steadier figure on a noisy machine."""
    settings = Settings(home=home)
    print(f"(iii) shadow cost to production latency: {args.duration} s a round, "
          f"{args.rounds} rounds each, one replica, median of the rounds")  # fmt: skip
    print(f"{'c':>4}{'sample':>7}{'p99 floor ms':>14}{'p99 shadow ms':>15}{'ratio':>8}"
          f"{'p50 floor':>11}{'p50 shadow':>12}{'req/s floor':>13}{'req/s shadow':>14}"
          f"{'cpu us/req floor':>18}{'cpu us/req shadow':>19}{'non-2xx':>9}")  # fmt: skip
    for c, sample in ((c, s) for c in args.concurrency for s in args.shadow_sample):
        runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for _ in range(args.rounds):
            for with_shadow in (False, True):
                with Registry(settings) as registry:
                    rollouts = Rollouts(registry)
                    if with_shadow:
                        rollouts.start("lr", "shadow", 2, plan=Plan(shadow_sample=sample))
                    time.sleep(1.0)  # every replica follows (and warms the copy) first
                    cpu = cpu_seconds(pid)
                    run = measure(url, body, c, args.duration)
                    run["cpu_us"] = (cpu_seconds(pid) - cpu) * 1e6 / (run["rps"] * args.duration)
                    runs[with_shadow].append(run)
                    if with_shadow:
                        rollouts.abort("lr", reason="bench round done")
        floor, shadow = ({k: statistics.median(r[k] for r in runs[w]) for k in runs[w][0]}
                         for w in (False, True))  # fmt: skip
        errors = sum(r["errors"] for w in runs for r in runs[w])
        print(f"{c:>4}{sample:>7.2f}{floor['p99']:>14.2f}{shadow['p99']:>15.2f}"
              f"{shadow['p99'] / floor['p99']:>8.2f}{floor['p50']:>11.2f}{shadow['p50']:>12.2f}"
              f"{floor['rps']:>13.0f}{shadow['rps']:>14.0f}{floor['cpu_us']:>18.0f}"
              f"{shadow['cpu_us']:>19.0f}{errors:>9.0f}")  # fmt: skip


def measure(url: str, body: str, connections: int, duration: float) -> dict[str, float]:
    """req/s, p50 and p99 (ms) and non-2xx answers of ``connections`` keep-alive connections,
    each sending one request after the other for ``duration`` seconds."""
    host, port = url.removeprefix("http://").split(":")
    request = (f"POST /v1/models/lr:predict HTTP/1.1\r\nhost: {host}\r\n"
               f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
               f"{body}").encode()  # fmt: skip
    times: list[float] = []
    errors = 0

    async def connection(stop_at: float) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            times.append(time.perf_counter() - start)
            errors += not head.startswith(b"HTTP/1.1 2")
        writer.close()

    async def run() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(connection(start + duration) for _ in range(connections)))
        return time.perf_counter() - start

    took = asyncio.run(run())
    p50, p99 = np.percentile(np.asarray(times) * 1000, [50, 99])
    return {"rps": len(times) / took, "p50": float(p50), "p99": float(p99),
            "errors": float(errors)}  # fmt: skip


def canary_rollout(load: Load, home: Path) -> None:
    """(ii): a good candidate from 10% to production under load."""
    with Registry(Settings(home=home)) as registry:
        plan = Plan(steps=(0.1, 0.5, 1.0), min_step_seconds=2, min_step_requests=100)
        start = time.time()
        Rollouts(registry).start("lr", "canary", 3, plan=plan, reason="bench")
        wait_until(lambda: registry.deployments.get("lr").state != "running", 120)  # type: ignore[union-attr]
        d = registry.deployments.get("lr")
        assert d is not None
        took = time.time() - start
        time.sleep(1.0)
        answers = load.between(start)
        by_version = {v: sum(a.version == v for a in answers) for v in ("1", "3")}
        print(
            f"(ii) full canary 10% -> 50% -> 100% under load: {d.state} in {took:.1f} s, "
            f"{failed(answers)} failed of {len(answers)} requests "
            f"(answered by v1 {by_version['1']}, by the candidate {by_version['3']})"
        )
        if d.state != "promoted":
            print(f"     not promoted: {d.reason}")
            registry.deployments.update("lr", d.revision, actor="bench", reason="bench: reset")
            return
        rolled = time.time()
        registry.rollback("lr", reason="bench: back to v1")
        wait_until(lambda: {a.version for a in load.between(time.time() - 0.3)} == {"1"}, 30)
        time.sleep(1.0)
        around = load.between(rolled - 1.0)
        back = max(a.at for a in around if a.version == "3") - rolled
        print(f"(ii) models rollback under load: {failed(around)} failed of {len(around)} "
              f"requests; last answer from the rolled-back version {back * 1000:.0f} ms after "
              f"the command")  # fmt: skip


def guard_rollbacks(load: Load, home: Path, rounds: int, replicas: int) -> None:
    """(i): a failing candidate, rolled back by its guard; how long it still answers."""
    lags, detections, failures, total = [], [], 0, 0
    with Registry(Settings(home=home)) as registry:
        rollouts = Rollouts(registry)
        for _ in range(rounds):
            plan = Plan(steps=(0.1, 1.0), min_step_seconds=600, min_step_requests=100)
            start = time.time()
            rollouts.start("lr", "canary", 4, plan=plan, reason="bench: a slow candidate")
            wait_until(lambda: registry.deployments.get("lr").state == "rolled_back", 60)  # type: ignore[union-attr]
            event = registry.deployments.events("lr", limit=1)[0]
            assert "latency_p99_ratio" in event.reason, event.reason
            at = event.at.timestamp()
            time.sleep(2.0)
            answers = load.between(start)
            last = {r: max((a.at for a in answers if a.version == "4" and a.replica == r),
                           default=at) for r in range(replicas)}  # fmt: skip
            lags.append(max(last.values()) - at)
            detections.append(at - start)
            failures += failed(answers)
            total += len(answers)
            time.sleep(0.5)
    print(f"(i) guard failed -> 0% candidate traffic on all {replicas} replicas "
          f"(rollback event -> last answer from the candidate): median "
          f"{statistics.median(lags) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms over {rounds} "
          f"rollbacks (target < 1 s); detection (canary start -> rollback) median "
          f"{statistics.median(detections):.1f} s")  # fmt: skip
    print(f"(ii) guard rollbacks under load: {failures} failed of {total} requests")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--shadow-sample", type=float, nargs="+", default=[1.0, 0.1],
                        help="shares of requests the shadow gets a copy of, in (iii)")  # fmt: skip
    parser.add_argument("--shadow-linger-ms", type=float, default=None,
                        help="serve --shadow-linger-ms (default: the server's)")  # fmt: skip
    parser.add_argument("--load-concurrency", type=int, default=4,
                        help="httpx clients per replica in (i) and (ii)")  # fmt: skip
    parser.add_argument("--parts", nargs="+", choices=["shadow", "rollouts"],
                        default=["shadow", "rollouts"])  # fmt: skip
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wk-rollout-bench-"))
    servers: list[subprocess.Popen[bytes]] = []
    try:
        home = tmp / "home"
        row = setup(home)
        body = json.dumps({"instances": row})
        env = {**os.environ, "WATCHKEEPER_HOME": str(home)}
        ports = [free_port() for _ in range(args.replicas)]
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        linger = () if args.shadow_linger_ms is None else ("--shadow-linger-ms",
                                                           str(args.shadow_linger_ms))  # fmt: skip
        for port in ports:
            servers.append(subprocess.Popen(serve_command(port, *SERVE, *linger), env=env, cwd=ROOT,
                                            stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))  # fmt: skip
        for url in urls:
            wait_ready(f"{url}/readyz")
        if "shadow" in args.parts:
            shadow_cost(urls[0], servers[0].pid, home, body, args)
        if "rollouts" not in args.parts:
            return
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "watchkeeper", "scheduler", *SCHEDULER], env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        servers.append(scheduler)
        print(f"(i, ii) {args.replicas} replicas under load: {args.load_concurrency} httpx "
              f"clients each; scheduler every 0.5 s, live statistics every 1 s, registry "
              f"polled every 250 ms")  # fmt: skip
        with Load(urls, body.encode(), args.load_concurrency) as load:
            canary_rollout(load, home)
            guard_rollbacks(load, home, args.rounds, args.replicas)
    finally:
        for proc in servers:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
