"""watchkeeper beside MLflow and BentoML: the same models, data, load generator and machine.

    .venv/bin/python bench/peers/run.py [--duration 10] [--warmup 3] [--fresh] [--doc docs/peers.md]

MLflow and BentoML are installed into a throwaway venv (``bench/peers/peer_env.py``: by default
~/.cache/watchkeeper-bench/peers-venv, reused while its requirements are unchanged; ``--fresh``
rebuilds it), never into watchkeeper's own environment. A LogisticRegression and a 100-tree
RandomForest are fitted here on 5 000 rows of 20 floats and served, one server per
model, by:

- the floor: a bare ASGI app on uvicorn answering a constant (bench/serve.py's ``BARE_APP``);
- watchkeeper: ``watchkeeper serve --model NAME`` (defaults: scheduler, logbook, live statistics
  and metrics on), the model registered from Python with an input example, hit on
  ``/invocations`` and on ``/v1/models/NAME:predict``;
- MLflow: ``mlflow models serve`` (its default server and worker count; ``--env-manager local``
  as the venv already holds the model's libraries) on the model saved by
  ``mlflow.sklearn.save_model`` with an input example;
- BentoML: ``bentoml serve`` of ``bench/peers/bento_service.py`` (adaptive batching, NumPy input).

Every request is the same body, one row: ``{"inputs": [[...20 floats...]]}``. wrk (the same
binary for all) runs ``--warmup`` seconds then ``--duration`` seconds at 1 connection, then
the same at 32. The script prints one markdown table: req/s, p50 and p99 at 32 connections and p50
at 1, the ratio to the floor, watchkeeper's ``/invocations`` req/s over each peer's with the
goals (>= 20x MLflow, >= 5x BentoML, lower p99), the server's resident memory after the load,
and each model's own in-process one-row ``predict`` time. ``--doc PATH`` writes the page.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(HERE.parent)]  # peer_env, and bench/serve.py's helpers

import httpx  # noqa: E402
import joblib  # noqa: E402
import numpy as np  # noqa: E402
from peer_env import DEFAULT_VENV, ensure_venv  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import watchkeeper  # noqa: E402
from serve import BARE_APP, free_port, one_row_ms, serve_command  # noqa: E402
from watchkeeper import Registry, Settings  # noqa: E402

FLOOR = "bare ASGI app (floor)"
WK_INVOCATIONS = "watchkeeper `/invocations`"
WK_V1 = "watchkeeper `/v1/models/{name}:predict`"
MLFLOW = "MLflow `mlflow models serve`"
BENTOML = "BentoML, adaptive batching"
GOALS = {MLFLOW: 20.0, BENTOML: 5.0}  # watchkeeper's req/s over the peer's, at 32 connections
MODELS = {"lr": "LogisticRegression", "rf": "RandomForest, 100 trees"}
# MLflow 3 saves scikit-learn models with skops, which asks to trust a forest's tree storage
SAVE_MLFLOW = """
import sys, joblib, numpy as np, mlflow.sklearn
mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[3], input_example=np.load(sys.argv[2]),
                          skops_trusted_types=["sklearn.tree._tree.Tree"])
"""
QUIET = {  # no usage reports from the peers while they are measured
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "BENTOML_DO_NOT_TRACK": "true",
}


@dataclass(frozen=True)
class Cell:
    """One wrk run: requests per second, latency percentiles (ms) and failed requests."""

    rps: float
    p50: float
    p99: float
    errors: int = 0


@dataclass(frozen=True)
class Result:
    """One server and model: 32 connections, 1 connection, and its memory after the load."""

    c32: Cell
    c1: Cell
    rss_mb: float | None = None
    processes: int = 1


# --- load --------------------------------------------------------------------------------


def wrk(url: str, body: str, connections: int, seconds: int, tmp: Path) -> Cell:
    """POST ``body`` to ``url`` for ``seconds`` over ``connections`` (wrk, 10 s timeout)."""
    script = tmp / "post.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    threads = str(min(2, connections))
    cmd = ["wrk", "-t", threads, "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
           "--latency", "-s", str(script), url]  # fmt: skip
    return parse_wrk(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def parse_wrk(out: str) -> Cell:
    """A ``Cell`` from wrk's ``--latency`` report; socket errors and non-2xx count as errors."""

    def found(pattern: str) -> str:
        match = re.search(pattern, out)
        if match is None:
            raise ValueError(f"no {pattern!r} in wrk's report:\n{out}")
        return match.group(1)

    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Cell(
        rps=float(found(r"Requests/sec:\s+([\d.]+)")),
        p50=to_ms(found(r"\b50%\s+([\d.]+\w+)")),
        p99=to_ms(found(r"\b99%\s+([\d.]+\w+)")),
        errors=errors + (int(non2xx.group(1)) if non2xx else 0),
    )


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1e3, "m": 6e4}[match.group(2)]


# --- servers -----------------------------------------------------------------------------


@contextmanager
def server(
    cmd: list[str], url: str, body: str, env: dict[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` in its own session until it answers ``body`` at ``url`` with a 200; on the
    way out stop its process group, then kill whatever of its process tree is left (BentoML's
    workers run in sessions of their own)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    tree: set[int] = set()
    try:
        wait_answers(proc, url, body, log)
        tree = descendants(proc.pid)
        yield proc
    finally:
        tree |= descendants(proc.pid)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        deadline = time.monotonic() + 10
        while (alive := {pid for pid in tree if Path(f"/proc/{pid}").exists()}) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
        for pid in alive:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def stat_fields(pid: str | int) -> list[str] | None:
    """/proc/PID/stat after the command name (state, ppid, pgrp, session, ...), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat_fields(entry.name)) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def wait_answers(proc: subprocess.Popen[bytes], url: str, body: str, log: Path) -> None:
    deadline = time.monotonic() + 180
    headers = {"Content-Type": "application/json"}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{shlex.join(map(str, proc.args))} exited:\n{tail(log)}")  # type: ignore[arg-type]
        try:
            answer = httpx.post(url, content=body, headers=headers, timeout=5)
            if answer.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{url} never answered 200 within 180 s:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and every process below it (the server and its workers)."""
    page = os.sysconf("SC_PAGE_SIZE")
    fields = (stat_fields(p) for p in {pid, *descendants(pid)})
    return sum(int(f[21]) * page for f in fields if f is not None) / 2**20


def measure(
    url: str, body: str, proc: subprocess.Popen[bytes], args: argparse.Namespace, tmp: Path
) -> Result:
    """One connection first (its own warm-up), then 32 (likewise): a server's state after the
    heavier load (BentoML's batch window, for one) does not carry into the lighter one."""
    wrk(url, body, 1, args.warmup, tmp)
    c1 = wrk(url, body, 1, args.duration, tmp)
    wrk(url, body, 32, args.warmup, tmp)
    c32 = wrk(url, body, 32, args.duration, tmp)
    rss = tree_rss_mb(proc.pid)
    processes = 1 + len(descendants(proc.pid))
    return Result(c32=c32, c1=c1, rss_mb=rss, processes=processes)


# --- models ------------------------------------------------------------------------------


def prepare(tmp: Path, peer_python: Path, names: list[str]) -> tuple[list[float], dict[str, float]]:
    """Fit the models; register them with watchkeeper, save them for MLflow (in the peer venv)
    and as joblib files for BentoML. Returns the request row and each model's own one-row
    ``predict`` time (ms)."""
    X, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    estimators = {
        "lr": LogisticRegression(max_iter=1000),
        "rf": RandomForestClassifier(n_estimators=100, random_state=0),
    }
    models = {name: estimators[name].fit(X, y) for name in names}
    np.save(tmp / "example.npy", X[:5])
    with Registry(Settings(home=tmp / "home")) as registry:
        for name, model in models.items():
            registry.register(name, model, input_example=X[:200], stage="production")
            joblib.dump(model, tmp / f"{name}.joblib")
            subprocess.run([str(peer_python), "-c", SAVE_MLFLOW, str(tmp / f"{name}.joblib"),
                            str(tmp / "example.npy"), str(tmp / f"mlflow-{name}")],
                           env={**os.environ, **QUIET}, check=True)  # fmt: skip
    own = {name: one_row_ms(model, X[:1]) for name, model in models.items()}
    return [float(v) for v in X[0]], own


# --- the table ---------------------------------------------------------------------------


def verdict(wk: Result, peer: Result, goal: float) -> tuple[str, str]:
    """watchkeeper's req/s over the peer's against ``goal``, and whether its p99 is lower."""
    ratio = wk.c32.rps / peer.c32.rps
    rps = f"{ratio:.2f}x (goal >= {goal:g}x: {'held' if ratio >= goal else 'missed'})"
    lower = wk.c32.p99 < peer.c32.p99
    return rps, f"{'lower' if lower else 'NOT lower'} ({wk.c32.p99:.1f} vs {peer.c32.p99:.1f} ms)"


def table(results: dict[tuple[str, str], Result], own_ms: dict[str, float]) -> str:
    """The markdown table: one row per server and model, the floor first."""
    floor = results[(FLOOR, "-")]
    head = ("| model (own 1-row predict) | server | req/s, c=32 | p50, c=32 | p99, c=32 "
            "| p50, c=1 | req/s / floor | watchkeeper `/invocations` / this, req/s "
            "| watchkeeper's p99 vs this | RSS after load | failed |")  # fmt: skip
    rows = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for (server_name, model), r in results.items():
        label = "-" if model == "-" else f"{MODELS[model]} ({own_ms[model]:.3f} ms)"
        ratio, p99 = "", ""
        wk = results.get((WK_INVOCATIONS, model))
        if server_name in GOALS and wk is not None:
            ratio, p99 = verdict(wk, r, GOALS[server_name])
        rss = f"{r.rss_mb:.0f} MB, {r.processes} proc" if r.rss_mb is not None else ""
        rows.append(
            f"| {label} | {server_name} | {r.c32.rps:,.0f} | {r.c32.p50:.2f} ms "
            f"| {r.c32.p99:.2f} ms | {r.c1.p50:.2f} ms | {r.c32.rps / floor.c32.rps:.3f} "
            f"| {ratio} | {p99} | {rss} | {r.c32.errors + r.c1.errors} |"
        )
    return "\n".join(rows)


def goals(results: dict[tuple[str, str], Result]) -> list[str]:
    """One line per model and peer: the goal held or missed."""
    lines = []
    for model in MODELS:
        wk = results.get((WK_INVOCATIONS, model))
        for peer, goal in GOALS.items():
            if wk is None or (peer, model) not in results:
                continue
            rps, p99 = verdict(wk, results[(peer, model)], goal)
            lines.append(f"- {MODELS[model]}, watchkeeper / {peer}: req/s {rps}; p99 {p99}.")
    return lines


# --- the page ----------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def command() -> str:
    """The command line that started this run, ``flock ...`` included when flock did."""
    python = Path(sys.executable)
    exe = str(python.relative_to(ROOT)) if python.is_relative_to(ROOT) else str(python)
    script = Path(sys.argv[0]).resolve()
    argv = [exe, str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else sys.argv[0],
            *sys.argv[1:]]  # fmt: skip
    parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    if parent and Path(parent[0].decode()).name == "flock":
        flock = [p.decode() for p in parent if p][: -len(argv) or None]
        if len(flock) >= 2:
            argv = [*flock, *argv]
    return shlex.join(argv)


def page(
    markdown: str,
    goal_lines: list[str],
    info: dict[str, str],
    versions: dict[str, str],
    args: argparse.Namespace,
    row: list[float],
) -> str:
    """docs/peers.md: what is compared and how, the table, how to rerun it."""
    head = ", ".join(f"{x:.4g}" for x in row[:2])
    return f"""# watchkeeper beside MLflow and BentoML

One run of `bench/peers/run.py` serves the same two scikit-learn models, a LogisticRegression
and a 100-tree RandomForest fitted on 5 000 rows of 20 floats, with watchkeeper, with MLflow's
and BentoML's own servers and with a bare ASGI app (the floor: uvicorn answering a constant),
one server at a time and one per model, on one machine, and loads each with the same wrk and
the same one-row request. MLflow and BentoML run from a throwaway virtual environment the script
installs with pip (they are not dependencies of watchkeeper), beside the same scikit-learn and
NumPy versions, so every server calls the same `predict` on the same fitted model.

How each is served, as its documentation shows by default:

- **watchkeeper** {versions["watchkeeper"]}: the model registered from Python with an input
  example (`Registry.register(name, model, input_example=X[:200], stage="production")`), then
  `watchkeeper serve --model NAME` with its defaults (one process; scheduler, logbook, live
  statistics and metrics on). Hit on `/invocations` (MLflow's wire format) and on
  `/v1/models/NAME:predict` (KServe V1).
- **MLflow** {versions.get("mlflow", "?")}: the model saved with
  `mlflow.sklearn.save_model(model, path, input_example=X[:5])` (so a tensor signature; its
  default skops format, told to trust the forest's tree storage), served by
  `mlflow models serve -m PATH --env-manager local` with its default server and worker count
  (below); `--env-manager local` as the venv already holds the model's libraries.
- **BentoML** {versions.get("bentoml", "?")}: `bentoml serve` of
  [bench/peers/bento_service.py](../bench/peers/bento_service.py), a `@bentoml.service` (one
  worker, the default) whose `@bentoml.api(batchable=True)` method takes a NumPy array, with
  adaptive batching at its default window and size.

The request body is the same for every server and endpoint, one row of 20 floats:
`{{"inputs": [[{head}, ...]]}}` (MLflow's tensor input; watchkeeper's `/invocations` and
`/v1` both read `inputs`; the BentoML method's parameter is named `inputs`), POSTed as
`application/json`. The answers are `{{"predictions": [1]}}` (MLflow), `[1]` (BentoML) and
watchkeeper's own bodies. watchkeeper is compared with each peer on `/invocations`, the very
request the peers get; its `/v1` row is there for reference.

## The figures

Run {info["date"]} on {info["nproc"]} cores ({info["cpu"]}), load average before the run
{info["load_before"]}, after it {info["load_after"]} (the machine is shared with other work:
read the ratios within the run rather than the absolute figures). For each server: wrk
{args.warmup} s of warm-up then {args.duration} s at 1 connection, then {args.warmup} s of
warm-up and {args.duration} s at 32 connections (wrk's 1 or 2 threads share the cores with
the server). Versions: {fmt_versions(versions)}.

{markdown}

"model (own 1-row predict)" is the model's own `predict` on a one-row NumPy array in process
(median of 300 calls). "watchkeeper `/invocations` / this" divides watchkeeper's req/s on
`/invocations` at 32 connections by that server's; "failed" counts wrk's socket errors and
non-2xx answers over both cells. "RSS after load" is the resident memory of the server's
process and all its children (uvicorn's and BentoML's workers) after the 32-connection cell.

What `mlflow models serve` started (its log): {versions["mlflow_server"]}, that is one uvicorn
worker unless `--workers` says otherwise; "proc" in the RSS column counts the server's
processes (a supervisor and its workers count each).

The goals of issue 21, as measured in this run:

{chr(10).join(goal_lines)}

## Rerunning it

```sh
apt-get install -y wrk   # once, if /usr/bin/wrk is missing
flock /tmp/bench.lock .venv/bin/python bench/peers/run.py --doc docs/peers.md
```

The command of this run: `{info["command"]}`. The first run installs MLflow and BentoML into
`~/.cache/watchkeeper-bench/peers-venv` (`--venv PATH` for another place); later runs reuse it
while the pinned requirements are the same, and `--fresh` rebuilds it. Without `--doc` the
table is only printed. On a shared machine keep the `flock`: every benchmark of this
repository takes the same lock.
"""


def fmt_versions(versions: dict[str, str]) -> str:
    keys = ("watchkeeper", "mlflow", "bentoml", "scikit-learn", "numpy", "python")
    return ", ".join(f"{k} {versions[k]}" for k in keys if k in versions)


# --- the run -----------------------------------------------------------------------------


def mlflow_server(log: Path) -> str:
    """The server command ``mlflow models serve`` ran (its log says it), workers included."""
    found = re.search(r"Running command '(?:exec )?([^']+)'", log.read_text(errors="replace"))
    if found is None:
        return "(no such line in its log)"
    return f"`{re.sub(r' --(?:host|port) [^ ]+', '', found.group(1))}`"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per cell")
    parser.add_argument("--warmup", type=int, default=3, help="seconds before each cell")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="the peers' venv")
    parser.add_argument("--fresh", action="store_true", help="rebuild the peers' venv")
    parser.add_argument("--doc", type=Path, help="write the page here (e.g. docs/peers.md)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    versions = {"watchkeeper": watchkeeper.__version__, **ensure_venv(args.venv, fresh=args.fresh)}
    peer_bin = args.venv / "bin"
    info = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command(), **machine()}  # fmt: skip
    info["load_before"] = info.pop("load")
    tmp = Path(tempfile.mkdtemp(prefix="wk-peers-bench-"))
    try:
        row, own_ms = prepare(tmp, peer_bin / "python", args.models)
        body = json.dumps({"inputs": [row]})
        (tmp / "bare_app.py").write_text(BARE_APP)
        env = {**os.environ, **QUIET, "WATCHKEEPER_HOME": str(tmp / "home"),
               "BENTOML_HOME": str(tmp / "bentoml"), "PYTHONPATH": str(tmp)}  # fmt: skip
        results: dict[tuple[str, str], Result] = {}
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        logs = tmp / "logs"
        logs.mkdir()

        # the peers' commands find their venv's own (uvicorn for MLflow) first on PATH
        peers = {**env, "VIRTUAL_ENV": str(args.venv),
                 "PATH": f"{peer_bin}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip

        def run(
            name: str, model: str, cmd: list[str], paths: dict[str, str], cwd: Path,
            env: dict[str, str] = env,
        ) -> Path:  # fmt: skip
            first = next(iter(paths.values()))
            log = logs / f"{model}-{len(results)}.log"
            print(f"measuring {name} {model} ...", flush=True)
            with server(cmd, base + first, body, env, cwd, log) as proc:
                for label, path in paths.items():
                    results[(label, model)] = measure(base + path, body, proc, args, tmp)
            return log

        bare = [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port),
                "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                "--log-level", "warning"]  # fmt: skip
        run("the floor", "-", bare, {FLOOR: "/"}, tmp)
        for model in args.models:
            wk_paths = {WK_INVOCATIONS: "/invocations", WK_V1: f"/v1/models/{model}:predict"}
            run("watchkeeper", model, serve_command(port, "--model", model), wk_paths, ROOT)
            mlflow = [str(peer_bin / "mlflow"), "models", "serve",
                      "--model-uri", str(tmp / f"mlflow-{model}"), "--host", "127.0.0.1",
                      "--port", str(port), "--env-manager", "local"]  # fmt: skip
            log = run("MLflow", model, mlflow, {MLFLOW: "/invocations"}, tmp, peers)
            versions["mlflow_server"] = mlflow_server(log)
            peers["WK_PEER_MODEL"] = str(tmp / f"{model}.joblib")
            bento = [str(peer_bin / "bentoml"), "serve", "bento_service:Classifier",
                     "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
            run("BentoML", model, bento, {BENTOML: "/predict"}, HERE, peers)
        markdown = table(results, own_ms)
        goal_lines = goals(results)
        info["load_after"] = machine()["load"]
        print(f"\n{markdown}\n\n" + "\n".join(goal_lines))
        print(f"\n{info['date']}, {info['nproc']} cores ({info['cpu']}), load average "
              f"{info['load_before']} -> {info['load_after']}; {fmt_versions(versions)}; "
              f"MLflow's default server: {versions['mlflow_server']}")  # fmt: skip
        if args.doc:
            args.doc.write_text(page(markdown, goal_lines, info, versions, args, row))
            print(f"wrote {args.doc}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
