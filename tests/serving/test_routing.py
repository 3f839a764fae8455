"""Traffic splitting: realised shares, stickiness per routing key, and the HTTP path."""

from __future__ import annotations

import random

import numpy as np
import pytest

from watchkeeper.serving.routing import bucket, to_candidate


@pytest.mark.parametrize("share", [0.01, 0.05, 0.25, 0.5])
def test_realised_share_over_10000_requests_is_within_one_point(share: float) -> None:
    rng = random.Random(7)
    keyed = sum(to_candidate("churn", share, f"user-{i}", rng) for i in range(10_000))
    unkeyed = sum(to_candidate("churn", share, None, rng) for _ in range(10_000))
    assert abs(keyed / 10_000 - share) <= 0.01
    assert abs(unkeyed / 10_000 - share) <= 0.01


def test_a_key_sticks_to_its_arm_and_widening_only_adds_keys() -> None:
    rng = random.Random(0)
    keys = [f"user-{i}" for i in range(2_000)]
    at_5 = {k for k in keys if to_candidate("churn", 0.05, k, rng)}
    assert at_5 == {k for k in keys if to_candidate("churn", 0.05, k, rng)}  # same answer again
    at_25 = {k for k in keys if to_candidate("churn", 0.25, k, rng)}
    assert at_5 < at_25  # a widening canary never moves a user back
    assert not any(to_candidate("churn", 0.0, k, rng) for k in keys)
    assert all(to_candidate("churn", 1.0, k, rng) for k in keys)


def test_models_split_users_independently() -> None:
    a = np.array([bucket("churn", f"u{i}") for i in range(5_000)])
    b = np.array([bucket("fraud", f"u{i}") for i in range(5_000)])
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.05
    # uniform on [0, 1): compare with the uniform law's deciles
    counts = np.histogram(a, bins=10, range=(0, 1))[0]
    assert counts.min() > 400
    assert counts.max() < 600
