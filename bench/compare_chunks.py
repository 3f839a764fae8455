"""``monitor compare`` over chunks: one call against one call per chunk, and the numpy floor.

    .venv/bin/python bench/compare_chunks.py [--reference 50000] [--chunks 20]
                                             [--chunk-size 5000] [--seed 0] [--keep DIR]

The data (issue 19's figure): a reference of 50 000 rows and ten features (seven numeric of
varied shapes, three categorical), and a current set of 20 chunks of 5 000 rows drawn from the
same law except that from chunk 10 on two features move (``n0``'s mean by 0.2 sd, ``c0``'s
shares by 8 points). Everything is written to Parquet first (the current set whole, and each
chunk alone); generation is not timed. Three steps, each in fresh processes, so interpreter
start, imports and the Parquet reads are part of every wall time:

* floor: one process reads both files with pyarrow and, per feature, computes the reference's
  100 quantile edges (``np.quantile``) and every chunk's histogram on them (``np.searchsorted``
  + ``np.bincount``; ``value_counts`` for categories). Counting, nothing else: no statistic, no
  threshold, no data quality.
* one call: ``watchkeeper monitor compare reference.parquet current.parquet --chunk-size 5000
  --json``.
* twenty calls: ``watchkeeper monitor compare reference.parquet chunk_NN.parquet --json``, one
  per chunk, one after the other (what a loop in a CI job or a notebook cell did before).

The one call's chunks must give the twenty calls' results (same statistics, thresholds and
verdicts); the script says whether they do, and which chunks were flagged. Read the ratios,
taken within one run: other work on the machine moves the absolute times.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NUMERIC = [f"n{i}" for i in range(7)]
CATEGORICAL = ["c0", "c1", "c2"]
DRIFT_FROM = 10


def make_columns(rng: Any, n: int, *, drifted: bool) -> dict[str, Any]:
    import numpy as np

    d = 1.0 if drifted else 0.0
    share = [0.4 - 0.08 * d, 0.3, 0.2 + 0.04 * d, 0.1 + 0.04 * d]
    return {
        "n0": rng.normal(0.2 * d, 1.0, n),
        "n1": rng.gamma(2.0, 1.0, n),
        "n2": rng.lognormal(0.0, 1.0, n),
        "n3": rng.uniform(-1.0, 1.0, n),
        "n4": rng.standard_t(5, n),
        "n5": np.round(rng.normal(40.0, 12.0, n)),
        "n6": rng.exponential(2.0, n),
        "c0": rng.choice(list("abcd"), n, p=share),
        "c1": rng.choice([f"k{i}" for i in range(10)], n),
        "c2": rng.choice(["web", "ios", "android"], n, p=[0.5, 0.3, 0.2]),
    }


def generate(root: Path, n_reference: int, chunks: int, size: int, seed: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    pd.DataFrame(make_columns(rng, n_reference, drifted=False)).to_parquet(
        root / "reference.parquet"
    )
    parts = [pd.DataFrame(make_columns(rng, size, drifted=i >= DRIFT_FROM)) for i in range(chunks)]
    for i, part in enumerate(parts):
        part.to_parquet(root / f"chunk_{i:02d}.parquet")
    pd.concat(parts, ignore_index=True).to_parquet(root / "current.parquet")


FLOOR = """
import sys, time
import numpy as np
import pyarrow.parquet as pq
root, size = sys.argv[1], int(sys.argv[2])
numeric, categorical = sys.argv[3].split(","), sys.argv[4].split(",")
ref = pq.read_table(f"{root}/reference.parquet")
cur = pq.read_table(f"{root}/current.parquet")
levels = np.linspace(0.0, 1.0, 101)
for name in numeric:
    r, c = ref.column(name).to_numpy(), cur.column(name).to_numpy()
    inner = np.quantile(r, levels)[1:-1]
    np.bincount(np.searchsorted(inner, r, side="right"), minlength=100)
    for start in range(0, c.size, size):
        np.bincount(np.searchsorted(inner, c[start : start + size], side="right"), minlength=100)
for name in categorical:
    ref.column(name).to_pandas().value_counts()
    c = cur.column(name).to_pandas()
    for start in range(0, c.size, size):
        c.iloc[start : start + size].value_counts()
"""


def run(command: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"{' '.join(command[:6])}... failed: {tail}")
    return wall, done


def results(comparison: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (r["check"], r["feature"], r["statistic"], r["value"], r["threshold"], r["status"])
        for r in comparison["results"]
    ]


def compute_seconds(stderr: str) -> float | None:
    found = re.search(r"compared \d+ rows in \d+ chunk\(s\) in ([\d.]+) s", stderr)
    return float(found[1]) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reference", type=int, default=50_000, help="reference rows")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write the Parquet files here and keep them")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="wk-bench-compare-"))
    root.mkdir(parents=True, exist_ok=True)
    wk = [sys.executable, "-m", "watchkeeper", "monitor", "compare"]
    ref = str(root / "reference.parquet")
    try:
        generate(root, args.reference, args.chunks, args.chunk_size, args.seed)
        print(f"data: {args.reference:,} reference rows vs {args.chunks} chunks of "
              f"{args.chunk_size:,} rows, {len(NUMERIC)} numeric + {len(CATEGORICAL)} "
              f"categorical features; n0 and c0 move from chunk {DRIFT_FROM}")  # fmt: skip
        floor, _ = run([sys.executable, "-c", FLOOR, str(root), str(args.chunk_size),
                        ",".join(NUMERIC), ",".join(CATEGORICAL)])  # fmt: skip
        one, done = run([*wk, ref, str(root / "current.parquet"), "--chunk-size",
                         str(args.chunk_size), "--json"])  # fmt: skip
        chunked = json.loads(done.stdout)["chunks"]
        one_compute = compute_seconds(done.stderr)
        singles, many, computes = [], 0.0, []
        for i in range(args.chunks):
            wall, done = run([*wk, ref, str(root / f"chunk_{i:02d}.parquet"), "--json"])
            many += wall
            singles.append(json.loads(done.stdout))
            computes.append(compute_seconds(done.stderr) or 0.0)
        same = all(results(c) == results(s) for c, s in zip(chunked, singles, strict=True))
        flagged = [c["index"] for c in chunked if c["drift"]["drifted"]]
        print(f"{'step':<44} {'wall s':>8} {'x floor':>8}")
        for label, wall in (
            ("numpy floor (one process, histograms only)", floor),
            (f"one call, --chunk-size {args.chunk_size}", one),
            (f"{args.chunks} single calls, one per chunk", many),
        ):
            print(f"{label:<44} {wall:8.2f} {wall / floor:7.1f}x")
        print(f"{args.chunks} single calls / one call: {many / one:.1f}x")
        if one_compute is not None:
            print(f"inside the calls: the one call computed for {one_compute:.2f} s "
                  f"(start-up, imports and reads {one - one_compute:.2f} s); the single calls "
                  f"for {sum(computes):.2f} s in all (the rest, {many - sum(computes):.2f} s, "
                  f"is {args.chunks} start-ups)")  # fmt: skip
        print(f"the one call's chunks equal the single calls: {'yes' if same else 'NO'}")
        print(f"chunks flagged as drifted: {flagged} (drift injected from {DRIFT_FROM})")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
