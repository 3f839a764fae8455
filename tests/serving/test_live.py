"""Live aggregates: exact sums across replicas, bins that match the reference profile's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from watchkeeper.config import Settings
from watchkeeper.monitoring.profile import bin_counts, profile_frame, profile_values
from watchkeeper.registry import Registry
from watchkeeper.registry.live import LiveStatsStore, latency_sketch
from watchkeeper.serving.live import LiveStats, Publisher

T0 = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)


@pytest.fixture
def store(settings: Settings):
    with Registry(settings) as registry:
        yield LiveStatsStore(registry.engine)


def _frame(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n), "city": rng.choice(["a", "b", "zz"], size=n)})


def test_two_replicas_sum_exactly_in_the_database(store: LiveStatsStore) -> None:
    reference = _frame(0, 2000)
    profile = profile_frame(
        reference[["x"]].assign(city=reference["city"].where(reference["city"] != "zz", "a"))
    ).with_predictions(profile_values(np.zeros(10)))
    now = [T0]
    replicas = [LiveStats(replica=f"r{i}", clock=lambda: now[0]) for i in range(2)]
    sent = {"x": [], "city": [], "latency": [], "statuses": []}
    for i, stats in enumerate(replicas):
        live = _frame(i + 1, 500)
        for start in range(0, 500, 50):
            chunk = live.iloc[start : start + 50]
            stats.observe_batch("m", 1, ["x", "city"], chunk, np.zeros(len(chunk)), profile)
            latency, status = 0.003 * (start // 50 + 1), 200 if start else 422
            stats.observe_request("m", 1, latency, status)
            sent["latency"].append(latency * 1000)
            sent["statuses"].append(status)
        sent["x"].append(live["x"].to_numpy())
        sent["city"].extend(live["city"].tolist())
        Publisher(stats, store.write).publish()
    merged = store.merged("m", T0 - timedelta(minutes=1), T0 + timedelta(minutes=1))

    assert merged[(1, "rows")] == [1000]
    assert merged[(1, "requests")] == [20, 18, 2, 0]
    sketches = store.sketches("m", T0 - timedelta(minutes=1), T0 + timedelta(minutes=1))
    assert sketches[(1, "latency_ms")] == latency_sketch().update(sent["latency"])
    edges = profile.features["x"].edges
    assert merged[(1, "feature:x")] == bin_counts(np.concatenate(sent["x"]), edges).tolist()
    categories = list(profile.features["city"].frequencies)
    counts = [sent["city"].count(c) for c in categories]
    assert merged[(1, "feature:city")] == [*counts, sent["city"].count("zz"), 0]


def test_publishing_twice_overwrites_instead_of_double_counting(store: LiveStatsStore) -> None:
    now = [T0]
    stats = LiveStats(replica="r", clock=lambda: now[0])
    publisher = Publisher(stats, store.write)
    stats.observe_request("m", 2, 0.001, 200)
    publisher.publish()
    stats.observe_request("m", 2, 0.001, 500)
    publisher.publish()
    publisher.publish()  # nothing new: nothing written
    merged = store.merged("m", T0 - timedelta(minutes=1), T0 + timedelta(minutes=1))
    assert merged[(2, "requests")] == [2, 1, 0, 1]


def test_a_failed_publication_is_sent_again(store: LiveStatsStore) -> None:
    stats = LiveStats(replica="r", clock=lambda: T0)
    stats.observe_request("m", 1, 0.001, 200)
    calls = []

    def flaky(items):
        calls.append(len(items))
        if len(calls) == 1:
            raise ConnectionError("database went away")
        return store.write(items)

    publisher = Publisher(stats, flaky)
    with pytest.raises(ConnectionError, match="went away"):
        publisher.publish()
    assert publisher.publish() > 0
    merged = store.merged("m", T0 - timedelta(minutes=1), T0 + timedelta(minutes=1))
    assert merged[(1, "requests")] == [1, 1, 0, 0]


def test_minutes_are_separate_windows(store: LiveStatsStore) -> None:
    now = [T0]
    stats = LiveStats(replica="r", clock=lambda: now[0])
    stats.observe_request("m", 1, 0.001, 200)
    now[0] = T0 + timedelta(minutes=1)
    stats.observe_request("m", 1, 0.001, 200)
    Publisher(stats, store.write).publish()
    first = store.merged("m", T0 - timedelta(seconds=30), T0 + timedelta(seconds=30))
    both = store.merged("m", T0 - timedelta(minutes=1), T0 + timedelta(minutes=2))
    assert first[(1, "requests")][0] == 1
    assert both[(1, "requests")][0] == 2


def test_one_row_requests_of_two_versions_are_binned_each_on_its_own_profile(
    store: LiveStatsStore,
) -> None:
    """Queued requests are binned together per version and minute (one numpy pass per
    feature, however many requests), and the counts are those of binning each one alone."""
    rng = np.random.default_rng(5)
    profiles = {1: profile_frame(pd.DataFrame({"x": rng.normal(size=500)})),
                2: profile_frame(pd.DataFrame({"x": rng.normal(3, 2, size=500)}))}  # fmt: skip
    now = [T0]
    stats = LiveStats(replica="r", clock=lambda: now[0])
    sent: dict[tuple[int, int], list[float]] = {(v, m): [] for v in (1, 2) for m in (0, 1)}
    for i, value in enumerate(rng.normal(1, 2, size=400)):
        version, minute = 1 + i % 2, i // 200
        now[0] = T0 + timedelta(minutes=minute)
        row = np.array([[value]])
        stats.observe_batch("m", version, ["x"], row, np.zeros(1), profiles[version])
        sent[(version, minute)].append(value)
    Publisher(stats, store.write).publish()
    for (version, minute), values in sent.items():
        start = T0 + timedelta(minutes=minute, seconds=-30)
        merged = store.merged("m", start, start + timedelta(minutes=1))
        assert merged[(version, "rows")] == [len(values)]
        edges = profiles[version].features["x"].edges
        assert merged[(version, "feature:x")] == bin_counts(values, edges).tolist()


def test_latency_over_five_seconds_is_counted_where_it_is(store: LiveStatsStore) -> None:
    """Latencies past the old histogram's last edge (5 s) are no longer lumped into one open
    bin: each lands in its own bucket of the sketch."""
    stats = LiveStats(replica="r", clock=lambda: T0)
    for seconds in (0.002, 4.7, 6.0, 60.0):
        stats.observe_request("m", 1, seconds, 200)
    Publisher(stats, store.write).publish()
    sketch = store.sketches("m", T0 - timedelta(minutes=1), T0 + timedelta(minutes=1))[
        (1, "latency_ms")
    ]
    assert (sketch.count_above(5000.0), sketch.count_above(10_000.0)) == (2, 1)
    assert sketch.quantile(1.0) == pytest.approx(60_000.0, rel=0.01)
