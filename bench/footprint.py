"""Footprint at rest: memory and start-up time of ``watchkeeper serve``, against a bare app.

    .venv/bin/python bench/footprint.py [--requests 2000] [--settle 3]

In one run, each as a real process in its own process group (killed at the end whatever
happens), on 127.0.0.1:

- the floor: a bare Starlette app on uvicorn (uvloop, httptools) with ``/readyz`` and one POST
  route returning a constant; and the same app importing ``sklearn.linear_model`` (what any
  process holding a LogisticRegression must import: scikit-learn brings scipy, pandas and
  pyarrow with it);
- ``watchkeeper serve`` (default: embedded scheduler child) with 1 and then 3 small scikit-learn
  LogisticRegression models (breast-cancer data, registered with an input example);
- the same with ``--without-scheduler``.

For each: seconds from spawn to the first 200 on ``/readyz`` and to the first successful
prediction; RSS (``VmRSS``) and PSS (``/proc/PID/smaps_rollup``, shared pages divided among the
processes sharing them) of the server process and of its scheduler child (found by ppid), at
rest (``--settle`` s after ready) and after ``--requests`` one-row requests over one
keep-alive connection. Ratios are to the floor measured in the same run. Then which packages'
shared objects each process has mapped (``/proc/PID/maps``): what its memory is made of.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from watchkeeper import Registry, Settings

BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

async def readyz(request):
    return PlainTextResponse("ok")

async def predict(request):
    await request.body()
    return JSONResponse({"predictions": [1]})

app = Starlette(routes=[Route("/readyz", readyz),
                        Route("/v1/models/{name}:predict", predict, methods=["POST"])])
"""
MB = 1024.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status_kb(pid: int, key: str, path: str = "status") -> float:
    """One ``kB`` field of ``/proc/PID/status`` (or ``smaps_rollup``); 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def python_child(pid: int) -> int | None:
    """The scheduler child: a python process whose parent is the server."""
    for child in children(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"scheduler" in cmd:
            return child
    return None


def mapped_packages(pid: int) -> Counter[str]:
    """Top-level packages (under site-packages) or stdlib extension modules whose shared
    objects the process has mapped, with how many distinct .so files each."""
    seen: set[str] = set()
    try:
        lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    except OSError:
        return Counter()
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) == 6 and ".so" in parts[5]:
            seen.add(parts[5].strip())
    packages: Counter[str] = Counter()
    for path in seen:
        if "site-packages/" in path:
            top = path.split("site-packages/", 1)[1].split("/", 1)[0]
            packages[top.removesuffix(".libs")] += 1
        elif "lib-dynload" in path:
            packages["(stdlib)"] += 1
    return packages


@dataclass
class Sample:
    rss: float = 0.0  # MB
    pss: float = 0.0


def sample(pid: int | None) -> Sample:
    if pid is None:
        return Sample()
    return Sample(status_kb(pid, "VmRSS") / MB, status_kb(pid, "Pss", "smaps_rollup") / MB)


@dataclass
class Result:
    label: str
    ready: float = 0.0
    first_prediction: float = 0.0
    rest: Sample = field(default_factory=Sample)
    child_rest: Sample = field(default_factory=Sample)
    loaded: Sample = field(default_factory=Sample)
    child_loaded: Sample = field(default_factory=Sample)
    packages: Counter[str] = field(default_factory=Counter)
    child_packages: Counter[str] = field(default_factory=Counter)


def measure(label: str, cmd: list[str], env: dict[str, str], port: int, models: list[str],
            row: list[float], requests: int, settle: float) -> Result:  # fmt: skip
    result = Result(label)
    base = f"http://127.0.0.1:{port}"
    body = {"instances": [row]}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        with httpx.Client(base_url=base, timeout=5) as client:
            deadline = start + 120
            while not result.ready:
                if proc.poll() is not None or time.perf_counter() > deadline:
                    raise SystemExit(f"{label}: exited or never ready (status {proc.poll()})")
                try:
                    if client.get("/readyz").status_code == 200:
                        result.ready = time.perf_counter() - start
                except httpx.TransportError:
                    pass
                if not result.ready:
                    time.sleep(0.02)
            while not result.first_prediction:
                if client.post(f"/v1/models/{models[0]}:predict", json=body).status_code == 200:
                    result.first_prediction = time.perf_counter() - start
                elif time.perf_counter() > deadline:
                    raise SystemExit(f"{label}: no successful prediction")
                else:
                    time.sleep(0.02)
            time.sleep(settle)
            child = python_child(proc.pid)
            result.rest, result.child_rest = sample(proc.pid), sample(child)
            for i in range(requests):
                response = client.post(f"/v1/models/{models[i % len(models)]}:predict",
                                       json=body)  # fmt: skip
                if response.status_code != 200:
                    raise SystemExit(f"{label}: {response.status_code} {response.text[:200]}")
            time.sleep(settle)  # the logbook flushes, live statistics are written
            child = python_child(proc.pid)
            result.loaded, result.child_loaded = sample(proc.pid), sample(child)
            result.packages = mapped_packages(proc.pid)
            result.child_packages = mapped_packages(child) if child else Counter()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return result


def register(home: Path, count: int) -> tuple[list[str], list[float]]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    names = [f"lr{i}" for i in range(count)]
    with Registry(Settings(home=home)) as registry:
        for i, name in enumerate(names):
            model = LogisticRegression(C=1.0 + i, max_iter=5000).fit(X, y)
            registry.register(name, model, input_example=X.iloc[:200], stage="production")
    return names, [float(v) for v in X.iloc[0]]


def table(results: list[Result]) -> None:
    floor = results[0]
    print(f"{'process':<34}{'ready s':>8}{'1st pred s':>11}{'x floor':>8}"
          f"{'RSS rest':>9}{'x floor':>8}{'PSS rest':>9}{'RSS load':>9}{'x floor':>8}"
          f"{'child RSS':>10}{'child PSS':>10}{'child load':>11}{'total RSS':>10}")  # fmt: skip
    for r in results:
        total = r.loaded.rss + r.child_loaded.rss
        print(f"{r.label:<34}{r.ready:>8.2f}{r.first_prediction:>11.2f}"
              f"{r.ready / floor.ready:>8.1f}{r.rest.rss:>9.0f}{r.rest.rss / floor.rest.rss:>8.1f}"
              f"{r.rest.pss:>9.0f}{r.loaded.rss:>9.0f}{r.loaded.rss / floor.loaded.rss:>8.1f}"
              f"{r.child_rest.rss:>10.0f}{r.child_rest.pss:>10.0f}{r.child_loaded.rss:>11.0f}"
              f"{total:>10.0f}")  # fmt: skip
    print(
        "MB; 'rest' is after start-up and one prediction, 'load' after the requests; "
        "PSS shares common pages among processes (server and child map the same libraries)"
    )


def packages(results: list[Result]) -> None:
    print("\nshared objects mapped, by package (number of .so files):")
    for r in results:
        for who, found in (("server", r.packages), ("child", r.child_packages)):
            if found:
                listed = ", ".join(f"{name} {n}" for name, n in sorted(found.items()))
                print(f"  {r.label} [{who}]: {listed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; "
          f"{args.requests} one-row requests after start-up")  # fmt: skip
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith("WATCHKEEPER_") and k != "PYTHONDONTWRITEBYTECODE"}  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory(prefix="wk-footprint-") as tmp:
        root = Path(tmp)
        (root / "bare_app.py").write_text(BARE_APP)
        port = free_port()
        bare = [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port),
                "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                "--log-level", "warning"]  # fmt: skip
        results.append(measure("bare Starlette app (floor)", bare,
                               {**base_env, "PYTHONPATH": str(root)}, port, ["x"], [0.0],
                               args.requests, args.settle))  # fmt: skip
        (root / "bare_sklearn_app.py").write_text("import sklearn.linear_model\n" + BARE_APP)
        results.append(measure("bare app + import sklearn", [*bare[:3], "bare_sklearn_app:app",
                               *bare[4:]], {**base_env, "PYTHONPATH": str(root)}, port, ["x"],
                               [0.0], args.requests, args.settle))  # fmt: skip
        for count in (1, 3):
            home = root / f"home{count}"
            names, row = register(home, count)
            env = {**base_env, "WATCHKEEPER_HOME": str(home)}
            serve = [sys.executable, "-m", "watchkeeper", "serve", "--port", str(port),
                     "--log-level", "warning"]  # fmt: skip
            results.append(measure(f"watchkeeper serve, {count} LR", serve, env, port, names,
                                   row, args.requests, args.settle))  # fmt: skip
            results.append(measure(f"  --without-scheduler, {count} LR",
                                   [*serve, "--without-scheduler"], env, port, names, row,
                                   args.requests, args.settle))  # fmt: skip
    table(results)
    packages(results)


if __name__ == "__main__":
    main()
