"""At most one production version, whatever 20 processes do at once."""

from __future__ import annotations

import multiprocessing as mp

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from watchkeeper.config import Settings
from watchkeeper.registry import Registry

WORKERS = 20


def _promote(
    settings: Settings, version: int, barrier: mp.synchronize.Barrier, out: mp.Queue
) -> None:
    registry = Registry(settings)
    try:
        barrier.wait(timeout=60)
        registry.promote("iris", version, "production", reason=f"worker {version}")
        out.put((version, "ok"))
    except Exception as exc:  # reported to the parent, which fails the test
        out.put((version, f"{type(exc).__name__}: {exc}"))
    finally:
        registry.close()


@pytest.mark.slow
def test_twenty_processes_promoting_end_with_one_production(
    settings: Settings, iris: tuple[pd.DataFrame, pd.Series], iris_model: LogisticRegression
) -> None:
    X, _ = iris
    with Registry(settings) as registry:
        for _ in range(WORKERS):
            registry.register("iris", iris_model, input_example=X)
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(WORKERS)
    results: mp.Queue = ctx.Queue()
    procs = [
        ctx.Process(target=_promote, args=(settings, v, barrier, results))
        for v in range(1, WORKERS + 1)
    ]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert outcomes == {v: "ok" for v in range(1, WORKERS + 1)}

    with Registry(settings) as registry:
        versions = registry.list_versions("iris")
        production = [v.version for v in versions if v.stage == "production"]
        assert len(production) == 1
        assert {v.stage for v in versions if v.version != production[0]} == {"archived"}
        events = list(reversed(registry.history("iris")))
    promotions = [e.version for e in events if e.action == "stage" and e.to_value == "production"]
    demotions = [e.version for e in events if e.action == "stage" and e.from_value == "production"]
    # every worker's promotion is recorded once; each one but the last replaced its predecessor
    assert sorted(promotions) == list(range(1, WORKERS + 1))
    assert promotions[-1] == production[0]
    assert demotions == promotions[:-1]
