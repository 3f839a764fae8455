"""Guard checks on step traffic: what fails a candidate, and what must not."""

from __future__ import annotations

import numpy as np
import pytest

from watchkeeper.errors import InvalidInput
from watchkeeper.registry.live import LATENCY_EDGES_MS
from watchkeeper.rollout.guards import StepTraffic, traffic_checks
from watchkeeper.rollout.plan import Plan
from watchkeeper.rollout.stats import distance_lower_bound, histogram_quantile, latency_guard

EDGES = np.asarray(LATENCY_EDGES_MS, dtype=float)


def _histogram(latencies_ms: np.ndarray) -> list[int]:
    """Binned as serving bins them (``serving/live.py``)."""
    bins = np.searchsorted(EDGES, latencies_ms)
    return np.bincount(bins, minlength=len(EDGES) + 1).tolist()


def _traffic(production_ms: np.ndarray, candidate_ms: np.ndarray) -> StepTraffic:
    n_p, n_c = len(production_ms), len(candidate_ms)
    return StepTraffic([n_p, n_p, 0, 0], [n_c, n_c, 0, 0], _histogram(production_ms),
                       _histogram(candidate_ms))  # fmt: skip


def _latency_check(traffic: StepTraffic, *, final: bool = True):
    (check,) = [c for c in traffic_checks(traffic, Plan(), final=final)
                if c.name == "latency_p99_ratio"]  # fmt: skip
    return check


def _busy_machine(rng: np.random.Generator, n: int) -> np.ndarray:
    """Server-side latencies seen on a loaded two-core machine: a few ms, a heavy tail."""
    return rng.lognormal(mean=np.log(5.0), sigma=0.8, size=n)


def test_a_candidate_as_fast_as_production_passes_a_small_canary_step() -> None:
    """Regression: the guard compared the p99 *bin edges* of both sides, so a 1-10% canary step
    (50-100 candidate requests, whose "p99" is their maximum) against production's thousands
    failed good candidates about half the time, seen in the end-to-end test as
    "latency_p99_ratio=2 (p99 candidate 100 ms, production 50 ms)"."""
    rng = np.random.default_rng(0)
    failures = sum(
        _latency_check(_traffic(_busy_machine(rng, 1000), _busy_machine(rng, 60))).status == "fail"
        for _ in range(300)
    )
    assert failures <= 0.02 * 300


@pytest.mark.parametrize("base", ["quiet", "busy"])
def test_a_candidate_30_ms_slower_fails_at_the_first_step(base: str) -> None:
    rng = np.random.default_rng(1)
    failures = 0
    for _ in range(100):
        if base == "quiet":  # p99 about 5 ms
            production, candidate = rng.gamma(4, 0.5, 1000), rng.gamma(4, 0.5, 100)
        else:  # p99 about 15 ms
            production, candidate = 1 + rng.exponential(3, 1000), 1 + rng.exponential(3, 100)
        check = _latency_check(_traffic(production, candidate + 30.0), final=False)
        failures += check.status == "fail"
    assert failures >= 99
    assert check.value is not None
    assert check.value > 1.5
    assert "p(worse)=" in check.detail


def test_histogram_quantile_is_in_the_right_bin_and_closer_than_its_edge() -> None:
    rng = np.random.default_rng(2)
    values = rng.lognormal(np.log(5.0), 0.8, 100_000)
    for q in (0.5, 0.9, 0.99):
        true = np.quantile(values, q)
        estimate = histogram_quantile(_histogram(values), LATENCY_EDGES_MS, q)
        upper = EDGES[np.searchsorted(EDGES, true)]
        assert np.searchsorted(EDGES, estimate) == np.searchsorted(EDGES, true)
        assert abs(estimate - true) <= abs(upper - true)


def test_latency_guard_p_value_is_the_binomial_tail() -> None:
    from scipy.stats import binom

    edges = [10.0, 20.0]
    production = [990, 10, 0]  # p99 = 10 ms: the limit is 15 ms at a ratio of 1.5
    candidate = [80, 20, 0]  # 10 of 100 in (15, 20] (half of the (10, 20] bin)
    r = latency_guard(production, candidate, edges, max_ratio=1.5)
    assert r.p_harm == pytest.approx(binom.sf(9, 100, 0.01))
    assert r.p_noninferiority == pytest.approx(binom.cdf(10, 100, 0.01))
    assert r.verdict == "worse"
    assert r.difference == pytest.approx(0.10 - 0.01)


def test_latency_guard_refuses_bad_input() -> None:
    with pytest.raises(InvalidInput, match="non-empty histograms"):
        latency_guard([0, 0, 0], [1, 0, 0], [1.0, 2.0])
    with pytest.raises(InvalidInput, match="max_ratio"):
        latency_guard([1, 0, 0], [1, 0, 0], [1.0, 2.0], max_ratio=0)


def test_distance_lower_bound_rarely_exceeds_the_limit_for_one_distribution() -> None:
    rng = np.random.default_rng(3)
    above = 0
    for _ in range(300):
        a, b = rng.binomial(1000, 0.5), rng.binomial(100, 0.5)
        above += distance_lower_bound([1000 - a, a], [100 - b, b], alpha=0.05) > 0.1
    assert above <= 3  # at most 1%, at alpha 0.05 per look
    assert distance_lower_bound([500, 500], [0, 100], alpha=0.005) > 0.5
    with pytest.raises(InvalidInput, match="count vectors"):
        distance_lower_bound([1, 2], [0, 0])
