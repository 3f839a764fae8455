"""Does the scheduler's heavy work move serving latency?

    .venv/bin/python bench/scheduler.py [--rows 1000000] [--duration 20] [--concurrency 4]

Needs ``wrk``. One registry with a 20-feature LogisticRegression and a logbook holding
``--rows`` predictions of the last hour; ``watchkeeper.toml`` declares a drift + quality monitor
over that hour, due every second (so it runs back to back). For each case, one fresh
``watchkeeper serve`` and wrk at ``--concurrency`` connections on 1-row requests:

- ``no scheduler`` (``--without-scheduler``): the floor;
- ``scheduler, nice 10``: the default, the scheduler a child process niced by 10;
- ``scheduler, nice 0``: the child at the server's own priority (for comparison).

Prints req/s, p50 and p99, the p99 ratio to the floor, and how many monitor runs over the
window finished during the measurement (so the figure is taken while the work really ran).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from serve import free_port, serve_command, start, stop, wrk
from watchkeeper import Registry, Settings
from watchkeeper.logbook import Logbook, LogbookConfig, PredictionBatch
from watchkeeper.registry.monitoring import MonitoringStore

FEATURES = [f"f{i:02d}" for i in range(20)]
MONITOR = """[monitors.bench]
window = "1h"
every = "1s"
checks = ["quality", "drift"]
"""


def setup(home: Path, rows: int) -> list[list[float]]:
    X, y = make_classification(n_samples=20_000, n_features=len(FEATURES), random_state=0)
    frame = pd.DataFrame(X, columns=FEATURES)
    model = LogisticRegression(max_iter=500).fit(frame, y)
    with Registry(Settings(home=home, user="bench")) as registry:
        registry.register("bench", model, input_example=frame, reference_data=frame,
                          stage="production")  # fmt: skip
    book = Logbook(str(home / "logbook"), config=LogbookConfig(max_buffer_rows=rows + 1))
    book.start()
    rng = np.random.default_rng(1)
    per = 10_000
    now = datetime.now(UTC)
    for i in range(0, rows, per):
        n = min(per, rows - i)
        features = rng.normal(0.3, 1.0, size=(n, len(FEATURES)))  # shifted: drift to find
        proba = model.predict_proba(pd.DataFrame(features, columns=FEATURES))
        book.log_predictions(PredictionBatch(
            request_id=f"{i:032x}", model="bench", version=1, role="primary",
            timestamp=now - timedelta(minutes=30), features=features, feature_names=FEATURES,
            predictions=proba.argmax(axis=1), probabilities=proba, classes=["0", "1"],
            latency_s=0.001,
        ))  # fmt: skip
    book.close()
    assert book.stats.written_rows == rows, book.stats
    return [X[0].tolist()]


def monitor_runs(home: Path) -> int:
    with Registry(Settings(home=home, user="bench")) as registry:
        results = MonitoringStore(registry.engine).series("bench", check="drift")
    return len({r.window_end for r in results})


def case(home: Path, tmp: Path, label: str, extra: list[str], body: str, args: argparse.Namespace,
         env: dict[str, str], *, scheduled: bool) -> dict[str, float]:  # fmt: skip
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(serve_command(port, *extra), env, f"{url}/healthz")
    try:
        predict = f"{url}/v1/models/bench:predict"
        wrk(predict, body, "application/json", args.concurrency, 3, tmp, threads=1)  # warm
        if scheduled:  # wait until a monitor run has finished: the work is going on
            deadline = time.monotonic() + 300
            while monitor_runs(home) == 0 and time.monotonic() < deadline:
                time.sleep(0.5)
        before = monitor_runs(home)
        result = wrk(predict, body, "application/json", args.concurrency, args.duration, tmp,
                     threads=1)  # fmt: skip
        result["monitor_runs"] = monitor_runs(home) - before
    finally:
        stop(proc)
    print(f"{label:<22} {result['rps']:>8,.0f} req/s  p50 {result['p50']:6.2f} ms  "
          f"p99 {result['p99']:6.2f} ms  monitor runs finished meanwhile: "
          f"{result['monitor_runs']:.0f}")  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        home = tmp / "home"
        (tmp / "watchkeeper.toml").write_text(MONITOR)
        began = time.perf_counter()
        row = setup(home, args.rows)
        print(f"{args.rows:,} logbook rows written in {time.perf_counter() - began:.1f} s; "
              f"wrk -c {args.concurrency} for {args.duration} s per case")  # fmt: skip
        env = {**os.environ, "WATCHKEEPER_HOME": str(home),
               "WATCHKEEPER_CONFIG": str(tmp / "watchkeeper.toml")}  # fmt: skip
        body = json.dumps({"instances": row})
        floor = case(home, tmp, "no scheduler (floor)", ["--without-scheduler"], body, args, env,
                     scheduled=False)  # fmt: skip
        for label, extra in (("scheduler, nice 10", []),
                             ("scheduler, nice 0", ["--scheduler-nice", "0"])):  # fmt: skip
            result = case(home, tmp, label, extra, body, args, env, scheduled=True)
            print(f"{'':<22} p99 ratio to the floor: {result['p99'] / floor['p99']:.2f}x; "
                  f"req/s ratio: {result['rps'] / floor['rps']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
