"""Dashboard figures: 50 models with 30 days of hourly monitor results, one of them with a month
of per-minute live traffic; the time and size of each page's data and HTML.

    .venv/bin/python bench/dashboard.py [--models 50] [--days 30] [--rounds 5]

Prints the first (cold) and median milliseconds and the bytes of the overview's data, and of
one model page's data and HTML at each time range. Charts never send more than 300 points a
series.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fleet seeder of the tests

from tests.ui.conftest import serving  # noqa: E402
from tests.ui.fleet import name_of, seed_fleet  # noqa: E402

from watchkeeper.config import Settings  # noqa: E402
from watchkeeper.registry import Registry  # noqa: E402
from watchkeeper.ui import create_app  # noqa: E402


def measure(url: str, rounds: int) -> tuple[float, float, int]:
    """First (nothing cached) and median milliseconds, and the bytes sent."""
    times, size = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        response = httpx.get(url, timeout=120)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        size = len(response.content)
    return times[0], statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), user="bench")
        started = time.perf_counter()
        with Registry(settings) as registry:
            rows = seed_fleet(registry, models=args.models, days=args.days, now=datetime.now(UTC))
        print(f"seeded {rows:,} rows in {time.perf_counter() - started:.1f} s "
              f"({args.models} models, {args.days} days)")  # fmt: skip
        with serving(create_app(settings)) as base:
            print(f"{'request':<24} {'first ms':>9} {'median ms':>10} {'bytes':>10}")
            cases = [("overview data", "/ui/data/overview"), ("overview page", "/ui")]
            for span in ("24h", "7d", "30d"):
                cases.append((f"model data, {span}", f"/ui/data/models/{name_of(0)}?range={span}"))
            cases.append(("model page, 30d", f"/ui/models/{name_of(0)}?range=30d"))
            for label, path in cases:
                first, median, size = measure(base + path, args.rounds)
                print(f"{label:<24} {first:>9.0f} {median:>10.0f} {size:>10,}")


if __name__ == "__main__":
    main()
