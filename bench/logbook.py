"""Logbook figures: write throughput, per-call cost, and reading one day against a Parquet floor.

    .venv/bin/python bench/logbook.py [--rows 10000000] [--write-requests 100000]

(1) Rows per second the writer sustains to local Parquet (20 float features, requests of 1 row
and of 100 rows), timed from the first ``log_predictions`` call until ``flush()`` returned with
everything durable, the background flusher running; and the median (p99) cost of one
``log_predictions`` call on the caller's thread.
(2) One day of ``--rows`` records (20 features, segments of 1 M rows, written straight in the
logbook's layout), a second day beside it, and feedback for 10% of the first day's rows:
``read`` and ``join_feedback`` of the first day against ``pyarrow.parquet.read_table`` of the
same day's files (the floor, same encoding as the logbook writes): the best of ``--repeat``
interleaved rounds in one process, and the peak RSS of one run of each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from watchkeeper.logbook import Logbook, LogbookConfig, PredictionBatch
from watchkeeper.logbook.store import parquet_options

FEATURES = [f"f{i:02d}" for i in range(20)]
DAY = datetime(2024, 6, 1, tzinfo=UTC)
SEGMENT_ROWS = 1_000_000
REQUEST_ROWS = 100


def make_batches(n_requests: int, rows: int) -> list[PredictionBatch]:
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    out = []
    for i in range(n_requests):
        probabilities = rng.random((rows, 2))
        out.append(
            PredictionBatch(
                request_id=f"{i:032x}",
                model="bench",
                version=1,
                role="primary",
                timestamp=now,
                features=rng.normal(size=(rows, len(FEATURES))),
                feature_names=FEATURES,
                predictions=probabilities.argmax(axis=1),
                probabilities=probabilities,
                classes=["no", "yes"],
                latency_s=0.002,
            )
        )
    return out


def bench_write(tmp: Path, n_requests: int, rows: int) -> None:
    batches = make_batches(n_requests, rows)
    total = n_requests * rows
    config = LogbookConfig(max_buffer_rows=max(total, 1_000_000))
    book = Logbook(str(tmp / f"write-{rows}"), config=config)
    book.start()
    costs = np.empty(n_requests)
    clock = time.perf_counter
    start = clock()
    for i, batch in enumerate(batches):
        t0 = clock()
        book.log_predictions(batch)
        costs[i] = clock() - t0
    logged = clock()
    book.flush()
    end = clock()
    book.close()
    stats = book.stats
    assert stats.written_rows == total, stats
    print(
        f"write, requests of {rows:>3} row(s): {total / (end - start):>9,.0f} rows/s end to end "
        f"({n_requests:,} requests in {end - start:.2f} s, logging took {logged - start:.2f} s); "
        f"log_predictions {np.median(costs) * 1e6:.1f} µs median, "
        f"{np.percentile(costs, 99) * 1e6:.1f} µs p99; dropped {stats.dropped_rows}"
    )


def segment(
    first_row: int, n: int, total: int, day: datetime, rng: np.random.Generator
) -> pa.Table:
    index = np.arange(first_row, first_row + n)
    request_ids = pc.utf8_lpad(pa.array(index // REQUEST_ROWS).cast(pa.string()), 32, "0")
    seconds = index.astype(np.float64) / total * 86_000  # within the day, in order
    stamps = (day.timestamp() + seconds) * 1e6
    probabilities = rng.random(n).astype(np.float32)
    columns: dict[str, pa.Array] = {
        "request_id": request_ids,
        "row": pa.array((index % REQUEST_ROWS).astype(np.int32)),
        "timestamp": pa.array(stamps.astype(np.int64)).cast(pa.timestamp("us", tz="UTC")),
        "version": pa.array(np.ones(n, dtype=np.int32)),
        "role": pa.array(np.full(n, "primary", dtype=object), pa.string()),
        "routing_key": pa.nulls(n, pa.string()),
        "metadata": pa.nulls(n, pa.string()),
        "latency_ms": pa.array(rng.random(n).astype(np.float32)),
        "prediction": pa.array((probabilities > 0.5).astype(np.float64)),
        "prediction_label": pa.nulls(n, pa.string()),
        "probabilities": pa.FixedSizeListArray.from_arrays(
            pa.array(np.column_stack([1 - probabilities, probabilities]).ravel()), 2
        ).cast(pa.list_(pa.float32())),
        "classes": pa.array(np.full(n, '["no","yes"]', dtype=object), pa.string()),
    }
    for name in FEATURES:
        columns[f"feature_{name}"] = pa.array(rng.normal(size=n))
    return pa.table(columns)


def generate(root: Path, rows: int) -> None:
    rng = np.random.default_rng(1)
    for offset in (0, 1):
        day = DAY + timedelta(days=offset)
        directory = root / "predictions" / "model=bench" / f"date={day.date()}"
        directory.mkdir(parents=True)
        for k, first in enumerate(range(0, rows, SEGMENT_ROWS)):
            table = segment(first, min(SEGMENT_ROWS, rows - first), rows, day, rng)
            path = directory / f"part-{k:04d}.parquet"
            pq.write_table(table, path, **parquet_options(table.schema))
            if offset == 0:
                write_feedback(root, table, k, rng)


def write_feedback(root: Path, table: pa.Table, k: int, rng: np.random.Generator) -> None:
    picked = table.take(pa.array(np.flatnonzero(rng.random(table.num_rows) < 0.1)))
    n = picked.num_rows
    delay = pa.array((rng.exponential(3600, n) * 1e6).astype(np.int64)).cast(pa.duration("us"))
    feedback = pa.table(
        {
            "request_id": picked["request_id"],
            "row": picked["row"],
            "label": pa.array(rng.integers(0, 2, n).astype(np.float64)),
            "label_text": pa.nulls(n, pa.string()),
            "timestamp": pc.add(picked["timestamp"], delay),
            "received_at": pc.add(picked["timestamp"], delay),
        }
    )
    directory = root / "feedback" / f"date={DAY.date()}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"part-{k:04d}.parquet"
    pq.write_table(feedback, path, **parquet_options(feedback.schema))


def operations(root: Path) -> dict[str, Callable[[], pa.Table]]:
    day_dir = root / "predictions" / "model=bench" / f"date={DAY.date()}"
    files = sorted(str(p) for p in day_dir.glob("*.parquet"))
    book = Logbook(str(root))
    start, end = DAY, DAY + timedelta(days=1)
    return {
        "floor": lambda: pq.read_table(files),
        "read": lambda: book.read("bench", start, end),
        "join": lambda: book.join_feedback("bench", start, end),
    }


def measure(root: Path, what: str, repeat: int) -> None:
    """Run in a child process and print JSON: with ``what`` = "times", the best time of each
    operation over ``repeat`` interleaved rounds; else one run of ``what`` and the peak RSS."""
    ops = operations(root)
    if what != "times":
        rows = ops[what]().num_rows
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"rows": rows, "peak_mb": peak_mb}))
        return
    best = dict.fromkeys(ops, float("inf"))
    for _ in range(repeat):
        for name, operation in ops.items():
            t0 = time.perf_counter()
            operation()
            best[name] = min(best[name], time.perf_counter() - t0)
    print(json.dumps(best))


def child(root: Path, what: str, repeat: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--measure", what, "--store", str(root)]
    command += ["--repeat", str(repeat)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def bench_read(tmp: Path, rows: int, repeat: int) -> None:
    root = tmp / "read"
    t0 = time.perf_counter()
    generate(root, rows)
    size = sum(p.stat().st_size for p in (root / "predictions").rglob("*.parquet")) / 2**20
    print(
        f"\ngenerated 2 days x {rows:,} rows x {len(FEATURES)} features ({size:,.0f} MiB zstd) "
        f"+ feedback for 10% of day 1 in {time.perf_counter() - t0:.1f} s"
    )
    times = child(root, "times", repeat)
    floor = times["floor"]
    labels = {
        "floor": "floor: pyarrow.parquet.read_table",
        "read": "Logbook.read(day 1)",
        "join": "Logbook.join_feedback(day 1)",
    }
    print(f"best of {repeat} interleaved rounds; peak RSS from one fresh process per operation")
    for name, label in labels.items():
        memory = child(root, name, 1)
        ratio = "" if name == "floor" else f" = {times[name] / floor:.2f}x floor"
        print(
            f"{label:<34} {times[name]:6.2f} s{ratio:<16} peak RSS {memory['peak_mb']:,.0f} MB "
            f"({memory['rows']:,.0f} rows)"
        )


def bench_serving(tmp: Path, duration: int, rounds: int = 3) -> None:
    """The server's LR throughput at 32 connections with the logbook on and off, alternated."""
    import serve as serve_bench  # bench/serve.py, beside this file

    if shutil.which("wrk") is None:
        print("server on/off: skipped (wrk is needed: apt-get install wrk)")
        return
    home = tmp / "serve-home"
    data = serve_bench.setup_registry(home)
    body = json.dumps({"instances": data["row"]})
    env = {**os.environ, "WATCHKEEPER_HOME": str(home)}
    port = serve_bench.free_port()
    url = f"http://127.0.0.1:{port}"
    results: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(rounds):
        for mode, flag in (("on", "--logbook"), ("off", "--no-logbook")):
            server = serve_bench.start(serve_bench.serve_command(port, flag), env, url)
            figures = serve_bench.wrk(f"{url}/v1/models/lr:predict", body, "application/json",
                                      32, duration, tmp)  # fmt: skip
            serve_bench.stop(server)
            results[mode].append(figures["rps"])
    on, off = statistics.median(results["on"]), statistics.median(results["off"])
    print(
        f"server, LR, 32 connections: logging on {on:,.0f} req/s, off {off:,.0f} req/s "
        f"= {on / off:.2f} of the off figure (target >= 0.90; medians of {rounds})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="records per day (read part)")
    parser.add_argument("--write-requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve-seconds", type=int, default=5, help="wrk duration per run")
    parser.add_argument(
        "--measure", choices=["times", "floor", "read", "join"], help=argparse.SUPPRESS
    )
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.store, args.measure, args.repeat)
        return
    tmp = Path(tempfile.mkdtemp(prefix="wk-bench-logbook-"))
    try:
        bench_write(tmp, args.write_requests, 1)
        bench_write(tmp, max(1, args.write_requests // 10), 100)
        bench_read(tmp, args.rows, args.repeat)
        bench_serving(tmp, args.serve_seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
