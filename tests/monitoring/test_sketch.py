"""The log-bucketed sketch against numpy: quantiles within alpha, exact merges, counts above."""

from __future__ import annotations

import json

import numpy as np
import pytest

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.sketch import LogSketch

ALPHA = 0.01
QUANTILES = (0.0, 0.01, 0.1, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0)


def _samples(seed: int, n: int = 20_000) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(mean=3.0, sigma=2.0, size=n)


@pytest.mark.parametrize("seed", range(5))
def test_quantiles_are_within_alpha_of_numpys(seed: int) -> None:
    values = _samples(seed)
    sketch = LogSketch(alpha=ALPHA).update(values)
    for q in QUANTILES:
        lower = np.quantile(values, q, method="lower")
        higher = np.quantile(values, q, method="higher")
        found = sketch.quantile(q)
        assert lower * (1 - ALPHA) <= found <= higher * (1 + ALPHA), q
        assert abs(found - lower) <= ALPHA * lower * (1 + 1e-9), q  # the rank is numpy's lower


def test_add_one_by_one_equals_update() -> None:
    values = _samples(7, 500)
    one_by_one = LogSketch(alpha=ALPHA)
    for v in values:
        one_by_one.add(float(v))
    assert one_by_one == LogSketch(alpha=ALPHA).update(values)


@pytest.mark.parametrize("seed", range(3))
def test_merge_equals_one_sketch_fed_both_streams(seed: int) -> None:
    a, b = _samples(seed, 5000), _samples(seed + 100, 3000) * 50
    b[:20] = 0.0  # the zero bucket merges too
    both = LogSketch(alpha=ALPHA).update(np.concatenate([a, b]))
    left, right = LogSketch(alpha=ALPHA).update(a), LogSketch(alpha=ALPHA).update(b)
    assert left + right == both
    assert right + left == both
    left += right
    assert left == both
    assert left.bins == both.bins
    assert left.zero == both.zero == 20
    assert LogSketch.merged([LogSketch(alpha=ALPHA).update(part) for part in
                             np.array_split(np.concatenate([a, b]), 7)]) == both  # fmt: skip


@pytest.mark.parametrize("seed", range(3))
def test_count_above_is_within_the_alpha_band_of_the_exact_count(seed: int) -> None:
    values = _samples(seed)
    sketch = LogSketch(alpha=ALPHA).update(values)
    for limit in np.quantile(values, [0.0, 0.1, 0.5, 0.9, 0.99, 0.9999]).tolist() + [1e-3, 1e9]:
        found = sketch.count_above(limit)
        assert (values > limit / (1 - ALPHA)).sum() <= found <= (values > limit / (1 + ALPHA)).sum()


def test_count_above_sees_the_whole_range() -> None:
    """Nothing is clipped at a largest edge: values far above any former histogram edge are
    counted above a limit below them, and the top quantile is theirs."""
    sketch = LogSketch(alpha=ALPHA).update([4700.0] * 99 + [60_000.0, 3_600_000.0])
    assert sketch.count_above(5000.0) == 2
    assert sketch.count_above(100_000.0) == 1
    assert sketch.quantile(1.0) == pytest.approx(3_600_000.0, rel=ALPHA)


def test_zero_bucket_holds_values_at_or_below_the_floor() -> None:
    sketch = LogSketch(alpha=ALPHA, floor=1e-3).update([0.0, -1.0, 1e-3, 1e-4, 2.0])
    assert sketch.zero == 4
    assert sketch.quantile(0.5) == 0.0
    assert sketch.count_above(0.0) == 1
    assert sketch.count_above(-5.0) == 5


def test_since_is_what_was_added_after_a_snapshot() -> None:
    first, second = _samples(1, 1000), _samples(2, 700)
    snapshot = LogSketch(alpha=ALPHA).update(first)
    later = snapshot.copy().update(second)
    assert later.since(snapshot) == LogSketch(alpha=ALPHA).update(second)
    assert snapshot.since(later).count == 0  # never below zero


def test_stored_form_is_sparse_json_and_reads_back() -> None:
    sketch = LogSketch(alpha=ALPHA, floor=1e-3).update(np.append(_samples(3, 2000), 0.0))
    stored = json.loads(json.dumps(sketch.to_dict()))
    assert stored["format"] == "logsketch"
    assert len(stored["bins"]) == len(sketch.bins) < 2000
    assert LogSketch.from_dict(stored) == sketch


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([1, 2, 3], "no format marker"),
        ({"format": "other"}, "no format marker"),
        ({"format": "logsketch", "floor": 1e-9, "bins": {}}, "malformed"),
        ({"format": "logsketch", "alpha": 0.01, "floor": 1e-9, "bins": {"x": 1}}, "malformed"),
        ({"format": "logsketch", "alpha": 0.01, "floor": 1e-9, "bins": {"1": -2}}, "malformed"),
        ({"format": "logsketch", "alpha": 0.01, "floor": 1e-9, "bins": [1]}, "mapping"),
        ({"format": "logsketch", "alpha": 2.0, "floor": 1e-9, "bins": {}}, "alpha must be"),
    ],
)
def test_from_dict_refuses_what_is_not_a_sketch(data: object, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        LogSketch.from_dict(data)  # type: ignore[arg-type]


def test_refuses_bad_input() -> None:
    sketch = LogSketch(alpha=ALPHA)
    with pytest.raises(InvalidInput, match="empty sketch"):
        sketch.quantile(0.5)
    with pytest.raises(InvalidInput, match="finite"):
        sketch.add(float("inf"))
    with pytest.raises(InvalidInput, match="finite"):
        sketch.update([1.0, float("nan")])
    with pytest.raises(InvalidInput, match="q must be"):
        sketch.add(1.0).quantile(1.5)
    with pytest.raises(InvalidInput, match="same alpha"):
        sketch.merge(LogSketch(alpha=0.02))
    with pytest.raises(InvalidInput, match="alpha must be"):
        LogSketch(alpha=0.0)
