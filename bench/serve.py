"""Online serving figures, as ratios to a bare ASGI app measured in the same run.

    .venv/bin/python bench/serve.py [--duration 5] [--concurrency 1 8 32]

Needs ``wrk`` (Debian: ``apt-get install wrk``). One server process each, one row of 20 floats
per request. For a scikit-learn LogisticRegression (LR) and a 100-tree RandomForest (RF) it
prints req/s, p50 and p99 (wrk's latency distribution) for: (a) a bare ASGI app returning a
constant (the floor), (b) ``/v1/models/{name}:predict``, (c) ``/invocations``; the same for
"lr no-sig", an LR registered from its joblib file without an input example and carrying no
feature names or count, so the version has no signature (served unvalidated); then the time
from ``models rollback`` to the first response from the old version, median of 20. Beside every
figure: the model's own in-process one-row ``predict`` time, and at one connection the p50
budget ``floor p50 + model + 0.3 ms``; for every cell the CPU time the server's whole process
group (workers and scheduler child included) spent per answered request, and its ratio to the
floor's. Last, ``--workers 2`` against one process: the req/s ratio (on a 2-core machine wrk
takes a core of its own, so this understates what two cores give) and the ratio of requests
per CPU-second (1.0: the second worker costs nothing per request).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from watchkeeper import Registry, Settings

ROOT = Path(__file__).resolve().parents[1]
BARE_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"predictions":[1]}'})
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def wrk(
    url: str,
    body: str,
    content_type: str,
    connections: int,
    duration: int,
    tmp: Path,
    threads: int | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    script = tmp / "post.lua"
    extra = "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n"
                    for k, v in (headers or {}).items())  # fmt: skip
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        f'wrk.headers["Content-Type"] = "{content_type}"\n' + extra
    )
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads or min(2, connections)),
            "-c",
            str(connections),
            "-d",
            f"{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def start(cmd: list[str], env: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_ready(url)
    except BaseException:
        stop(proc)  # a server that never answered is not left running (its workers neither)
        raise
    return proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux: /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time so far of every live process in process group ``pgid`` (a server
    started in its own session: its uvicorn workers and scheduler child included)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measured(pgid: int, *args: Any, **kwargs: Any) -> dict[str, float]:
    """``wrk(*args)`` plus the server's CPU microseconds per answered request."""
    before = group_cpu_seconds(pgid)
    run = wrk(*args, **kwargs)
    answered = max(run["rps"] * args[4], 1.0)  # args: url, body, type, connections, duration
    return {**run, "cpu_us": (group_cpu_seconds(pgid) - before) * 1e6 / answered}


def serve_command(port: int, *extra: str) -> list[str]:
    """``watchkeeper serve`` on ``port`` with ``extra`` options, quiet."""
    return [sys.executable, "-m", "watchkeeper", "serve", "--port", str(port),
            "--log-level", "warning", *extra]  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's whole process group (workers, scheduler child); SIGKILL if it
    has not gone within 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def setup_registry(home: Path) -> dict[str, object]:
    X, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    row = X[:1].tolist()
    models = {
        "lr": LogisticRegression(max_iter=1000).fit(X, y),
        "rf": RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y),
    }
    bare = LogisticRegression(max_iter=1000).fit(X, y)
    del bare.n_features_in_  # tells nothing of its inputs: registered, it has no signature
    joblib.dump(bare, home.parent / "lr_nosig.joblib")
    with Registry(Settings(home=home)) as registry:
        for name, model in models.items():
            registry.register(name, model, input_example=X[:200], stage="production")
        registry.register(
            "lr", LogisticRegression(C=0.01, max_iter=1000).fit(X, y), input_example=X[:200]
        )
        version = registry.register("lr_nosig", home.parent / "lr_nosig.joblib",
                                    stage="production")  # fmt: skip
        assert version.signature is None, "lr_nosig must be registered without a signature"
    own = {"lr": models["lr"], "rf": models["rf"], "lr_nosig": bare}
    return {"row": row, "columns": [f"f{i}" for i in range(20)],
            "own_ms": {name: one_row_ms(m, X[:1]) for name, m in own.items()}}  # fmt: skip


def one_row_ms(model: object, x: np.ndarray[tuple[int, int], np.dtype[np.float64]]) -> float:
    """The model's own one-row ``predict`` in process (median ms of many calls)."""
    predict = model.predict  # type: ignore[attr-defined]
    times = []
    for _ in range(300):
        t = time.perf_counter()
        predict(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def table(results: dict[tuple[str, str, int], dict[str, float]], own_ms: dict[str, float]) -> None:
    """One row per run; ``model ms`` is the model's own one-row predict in process and, at one
    connection, ``p50 budget`` is the floor's p50 + that + 0.3 ms."""
    print(
        f"{'target':<32}{'c':>4}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'x floor rps':>13}"
        f"{'x floor p99':>13}{'model ms':>10}{'p50 budget':>12}{'cpu us/req':>11}"
        f"{'x floor cpu':>12}{'non-2xx':>9}"
    )
    for (target, model, c), r in results.items():
        floor = results[("bare ASGI (floor)", "-", c)]
        key = model.replace(" no-sig", "_nosig")
        cost = own_ms.get(key)
        budget = ""
        if cost is not None and c == 1:
            limit = floor["p50"] + cost + 0.3
            budget = f"{limit:.2f} {'ok' if r['p50'] <= limit else 'OVER'}"
        print(
            f"{target + ' ' + model:<32}{c:>4}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}"
            f"{r['rps'] / floor['rps']:>13.2f}{r['p99'] / floor['p99']:>13.2f}"
            f"{f'{cost:.3f}' if cost is not None else '-':>10}{budget:>12}"
            f"{r['cpu_us']:>11.0f}{r['cpu_us'] / floor['cpu_us']:>12.1f}{r['errors']:>9.0f}"
        )
    one, two = (
        results.get(("/v1 predict", "lr", 32)),
        results.get(("/v1 predict 2 workers", "lr", 32)),
    )
    if one and two:
        print(
            f"--workers 2 against 1 at 32 connections: {two['rps'] / one['rps']:.2f}x the req/s "
            f"(goal >= {0.8 * min(2, os.cpu_count() or 1):.1f}x on {os.cpu_count()} cores, wrk "
            f"sharing them), {one['cpu_us'] / two['cpu_us']:.2f}x the requests per CPU-second"
        )


def rollback_latency(url: str, home: Path, row: list[list[float]], rounds: int = 20) -> None:
    times = []
    body = {"instances": row}
    with Registry(Settings(home=home)) as registry, httpx.Client(base_url=url) as client:
        for _ in range(rounds):
            registry.promote("lr", 2, "production")
            while client.post("/v1/models/lr:predict", json=body).json()["model_version"] != "2":
                time.sleep(0.01)
            start_t = time.perf_counter()
            registry.rollback("lr")
            while client.post("/v1/models/lr:predict", json=body).json()["model_version"] != "1":
                pass
            times.append(time.perf_counter() - start_t)
    median_ms = statistics.median(times) * 1000
    print(
        f"rollback -> first answer from the old version: median {median_ms:.0f} ms, "
        f"max {max(times) * 1000:.0f} ms over {rounds} rollbacks (target < 1 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="wk-serve-bench-"))
    try:
        data = setup_registry(tmp / "home")
        row = data["row"]
        assert isinstance(row, list)
        record = dict(zip(data["columns"], row[0], strict=True))  # type: ignore[arg-type]
        v1_body = json.dumps({"instances": row})
        mlflow_body = json.dumps({"dataframe_records": [record]})
        (tmp / "bare_app.py").write_text(BARE_APP)
        env = {**os.environ, "WATCHKEEPER_HOME": str(tmp / "home"), "PYTHONPATH": str(tmp)}
        results: dict[tuple[str, str, int], dict[str, float]] = {}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        bare = start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env,
            url,
        )
        for c in args.concurrency:
            results[("bare ASGI (floor)", "-", c)] = measured(
                bare.pid, url + "/", v1_body, "application/json", c, args.duration, tmp
            )
        stop(bare)
        for model in ("lr", "rf", "lr_nosig"):
            server = start(serve_command(port, "--model", model), env, url)
            label = model.replace("_nosig", " no-sig")
            for c in args.concurrency:
                results[("/v1 predict", label, c)] = measured(
                    server.pid,
                    f"{url}/v1/models/{model}:predict",
                    v1_body,
                    "application/json",
                    c,
                    args.duration,
                    tmp,
                )
                results[("/invocations", label, c)] = measured(
                    server.pid,
                    f"{url}/invocations", mlflow_body, "application/json", c, args.duration, tmp,
                )  # fmt: skip
            if model == "lr":
                rollback_latency(url, tmp / "home", row)  # type: ignore[arg-type]
            stop(server)
        # Several workers on one port: p50 at concurrency 1 shows whether TCP_NODELAY holds.
        server = start(serve_command(port, "--workers", "2"), env, url)
        for c in args.concurrency:
            results[("/v1 predict 2 workers", "lr", c)] = measured(
                server.pid,
                f"{url}/v1/models/lr:predict", v1_body, "application/json", c, args.duration, tmp,
            )  # fmt: skip
        stop(server)
        own_ms = data["own_ms"]
        assert isinstance(own_ms, dict)
        table(results, own_ms)
        try:
            import mlflow  # noqa: F401
        except ImportError:
            print("mlflow is not installed: `mlflow models serve` was not measured in this run")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
