"""Registry figures: register and resolve on SQLite and PostgreSQL; model load vs joblib.load.

    .venv/bin/python bench/registry.py [--rounds 30] [--postgres-url URL]

Prints the median milliseconds per operation, and the time to load a 100-tree random forest
from the registry (sha256 check of every file + load) against ``joblib.load`` of the very same
file, measured in the same run (the floor), as a ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from _pg import postgres_schema
from watchkeeper import Registry, Settings


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_backend(label: str, settings: Settings, rounds: int) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 20))
    y = (X[:, 0] + rng.normal(size=1000) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    with Registry(settings) as registry:
        registry.register("bench", model, input_example=X[:100])  # warm-up
        register = median_ms(
            lambda: registry.register("bench", model, input_example=X[:100]), rounds
        )
        registry.promote("bench", 1, "production")
        resolve = median_ms(lambda: registry.get("bench@production"), rounds * 10)
    print(f"{label:<11} register {register:7.2f} ms   resolve name@production {resolve:6.2f} ms")


def bench_load(tmp: Path, rounds: int) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5000, 20))
    y = (X[:, :3].sum(axis=1) > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    path = tmp / "forest.joblib"
    joblib.dump(forest, path)
    with Registry(Settings(home=tmp / "load-home")) as registry:
        registry.register("forest", path, input_example=X[:100])
        registry.register("forest-skops", forest, input_example=X[:100])
        floor = median_ms(lambda: joblib.load(path), rounds)
        ours = median_ms(lambda: registry.load("forest@1"), rounds)
        skops = median_ms(lambda: registry.load("forest-skops@1"), rounds)
    size = path.stat().st_size / 1e6
    print(f"load 100-tree forest ({size:.1f} MB): joblib.load {floor:.1f} ms (floor)")
    print(
        f"  registry.load, same joblib file, sha256 checked: {ours:.1f} ms = "
        f"{ours / floor:.2f}x floor"
    )
    print(
        f"  registry.load, skops (the default format):       {skops:.1f} ms = "
        f"{skops / floor:.2f}x floor"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wk-bench-"))
    try:
        bench_backend("SQLite", Settings(home=tmp / "sqlite-home"), args.rounds)
        with postgres_schema(args.postgres_url) as url:
            if url is not None:
                bench_backend(
                    "PostgreSQL", Settings(home=tmp / "pg-home", database_url=url), args.rounds
                )
        bench_load(tmp, max(5, args.rounds // 3))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
