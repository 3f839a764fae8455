"""How long the scheduler is headless when its leader freezes.

    .venv/bin/python bench/failover.py [--rounds 5] [--lease-ttl 10] [--interval 1]

Two ``watchkeeper scheduler`` processes share one registry (SQLite) and a monitor due every
second over a small logbook window, so a leader acts at every look. Each round pauses the
leader with SIGSTOP (a frozen VM, a stop-the-world pause) and times, from that instant:

- **takeover**: until the other holds the lease (read from the database);
- **first action**: until the new leader's first monitor result is written.

The paused one is then resumed (it finds its epoch stale and follows) and the next round
pauses the new leader. Goal: first action within the lease TTL plus one look (``--interval``);
a leader renews every TTL/3, so its lease expires 2/3 TTL to TTL after the pause and the
other takes it at its next look.
On SQLite a leader paused inside a write transaction would hold the database's write lock until
resumed (see docs/deployment.md, Faults); its looks here are short, and a round that met that
would time out and say so.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from watchkeeper import Registry, Settings
from watchkeeper.logbook import Logbook, PredictionBatch
from watchkeeper.registry.leases import LeaseStore
from watchkeeper.registry.monitoring import MonitoringStore
from watchkeeper.scheduler import LEASE

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["a", "b", "c", "d"]
MONITOR = '[monitors.bench]\nwindow = "1h"\nevery = "1s"\nchecks = ["quality"]\n'


def setup(home: Path) -> None:
    X, y = make_classification(n_samples=2000, n_features=len(FEATURES), n_informative=2,
                               random_state=0)  # fmt: skip
    frame = pd.DataFrame(X, columns=FEATURES)
    model = LogisticRegression().fit(frame, y)
    with Registry(Settings(home=home, user="bench")) as registry:
        registry.register("bench", model, input_example=frame, reference_data=frame,
                          stage="production")  # fmt: skip
    book = Logbook(str(home / "logbook"))
    book.start()
    proba = model.predict_proba(frame)
    book.log_predictions(PredictionBatch(
        request_id="0" * 32, model="bench", version=1, role="primary",
        timestamp=datetime.now(UTC) - timedelta(minutes=5), features=X, feature_names=FEATURES,
        predictions=proba.argmax(axis=1), probabilities=proba, classes=["0", "1"],
        latency_s=0.001,
    ))  # fmt: skip
    book.close()


def holder_pid(holder: str) -> int:
    return int(holder.rsplit("-", 2)[1])


def wait(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def one_round(
    leases: LeaseStore, newest: Callable[[], datetime | None],
    procs: list[subprocess.Popen[bytes]], args: argparse.Namespace,
) -> tuple[float, float]:  # fmt: skip
    """Pause the leader; seconds to the takeover and to the new leader's first action."""
    lease = leases.get(LEASE)
    assert lease is not None
    leader = next(p for p in procs if p.pid == holder_pid(lease.holder))
    paused_at = datetime.now(UTC)
    os.killpg(leader.pid, signal.SIGSTOP)
    t0 = time.perf_counter()
    wait(lambda: (x := leases.get(LEASE)) is not None and x.holder != lease.holder,
         args.lease_ttl * 3, "the takeover")  # fmt: skip
    takeover = time.perf_counter() - t0
    wait(lambda: (n := newest()) is not None and n > paused_at, args.lease_ttl * 3,
         "the new leader's first action")  # fmt: skip
    action = time.perf_counter() - t0
    os.killpg(leader.pid, signal.SIGCONT)
    time.sleep(2 * args.interval)  # it resumes, finds its epoch stale, follows
    return takeover, action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lease-ttl", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        home = Path(tmpdir) / "home"
        (Path(tmpdir) / "watchkeeper.toml").write_text(MONITOR)
        setup(home)
        env = {**os.environ, "WATCHKEEPER_HOME": str(home), "WATCHKEEPER_USER": "bench",
               "WATCHKEEPER_CONFIG": str(Path(tmpdir) / "watchkeeper.toml")}  # fmt: skip
        command = [sys.executable, "-m", "watchkeeper", "scheduler", "--interval",
                   f"{args.interval:g}", "--lease-ttl", f"{args.lease_ttl:g}",
                   "--log-level", "warning"]  # fmt: skip
        registry = Registry(Settings(home=home, user="bench"))
        leases, results = LeaseStore(registry.engine), MonitoringStore(registry.engine)

        def newest() -> datetime | None:
            found = results.series("bench", check="quality", newest=1)
            return found[-1].window_end if found else None

        procs: list[subprocess.Popen[bytes]] = []

        def spawn(name: str) -> Path:
            log = Path(tmpdir) / f"{name}.log"
            with open(log, "wb") as out:
                procs.append(subprocess.Popen(command, env=env, cwd=ROOT, stdout=out,
                                              stderr=subprocess.STDOUT,
                                              start_new_session=True))  # fmt: skip
            return log

        try:
            spawn("a")
            wait(newest, 120, "the first leader to act")
            follower = spawn("b")  # looking once it has said so
            wait(lambda: "every" in follower.read_text(), 120, "the follower to start")
            takeovers, actions = [], []
            for _ in range(args.rounds):
                takeover, action = one_round(leases, newest, procs, args)
                takeovers.append(takeover)
                actions.append(action)
        finally:
            for proc in procs:
                for sig in (signal.SIGCONT, signal.SIGTERM):
                    try:
                        os.killpg(proc.pid, sig)
                    except ProcessLookupError:
                        pass
                proc.wait(30)
            registry.close()
    goal = args.lease_ttl + args.interval
    print(f"lease TTL {args.lease_ttl:g} s, look every {args.interval:g} s, {args.rounds} rounds")
    for name, values in (("takeover", takeovers), ("first action", actions)):
        print(f"{name:<13} median {statistics.median(values):6.2f} s  max {max(values):6.2f} s"
              f"  max / (TTL + one look) = {max(values) / goal:.2f}")  # fmt: skip
    print("samples:", " ".join(f"{t:.2f}/{a:.2f}" for t, a in zip(takeovers, actions, strict=True)))


if __name__ == "__main__":
    main()
