"""How long the CLI takes to start and answer, against the interpreter's own start.

    .venv/bin/python bench/cli_startup.py [--repeats 9]

Runs each command as a new process (the console scripts beside this Python), several times
after one warm-up run, and prints the median and fastest wall time and the median's ratio to
``python -c pass``. ``models list`` runs on an empty state folder and on one holding three
registered models. The load average is printed too: on a busy machine every figure grows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def wall(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, timeout=120)
    return time.perf_counter() - start


def timings(argv: list[str], env: dict[str, str], repeats: int) -> list[float]:
    wall(argv, env)  # warm-up: byte-code compiled, files in the page cache
    return [wall(argv, env) for _ in range(repeats)]


def home_with_models(root: Path) -> Path:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from watchkeeper.config import Settings
    from watchkeeper.registry import Registry

    home = root / "three-models"
    X = np.random.default_rng(0).normal(size=(100, 3))
    with Registry(Settings(home=home)) as registry:
        for name in ("churn", "fraud", "iris"):
            registry.register(name, LogisticRegression().fit(X, X[:, 0] > 0))
        registry.promote("churn", 1, "production")
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    # A fresh environment for watchkeeper; and byte-code cached as any installed package has it
    # (an editable install under PYTHONDONTWRITEBYTECODE would compile every module every run).
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("WATCHKEEPER_") and k != "PYTHONDONTWRITEBYTECODE"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="wk-bench-") as tmp:
        empty = {**base, "WATCHKEEPER_HOME": str(Path(tmp) / "empty")}
        three = {**base, "WATCHKEEPER_HOME": str(home_with_models(Path(tmp)))}
        cases = [
            ("python -c pass (floor)", [sys.executable, "-c", "pass"], empty),
            ("wk --version", [str(BIN / "wk"), "--version"], empty),
            ("watchkeeper --help", [str(BIN / "watchkeeper"), "--help"], empty),
            ("watchkeeper models list (empty)", [str(BIN / "watchkeeper"), "models", "list"],
             empty),
            ("watchkeeper models list (3 models)",
             [str(BIN / "watchkeeper"), "models", "list"], three),
        ]  # fmt: skip
        load = os.getloadavg()
        print(f"{args.repeats} runs each after a warm-up; load average {load[0]:.2f} "
              f"{load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")  # fmt: skip
        print(f"{'command':<36} {'median s':>9} {'fastest s':>10} {'x floor':>8}")
        floor = 0.0
        for label, argv, env in cases:
            runs = timings(argv, env, args.repeats)
            median = statistics.median(runs)
            floor = floor or median
            print(f"{label:<36} {median:>9.3f} {min(runs):>10.3f} {median / floor:>8.1f}")


if __name__ == "__main__":
    main()
