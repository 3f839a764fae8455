"""Calibrated thresholds: held-out chunks, size scaling, floors and fixed defaults."""

from __future__ import annotations

import numpy as np
import pytest

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.drift import (
    CalibrationSettings,
    calibrate,
    calibrate_counts,
    jensenshannon_binned,
)


def js(ref, cur):
    return jensenshannon_binned(ref, cur).statistic


COUNTS = [4000, 3000, 2000, 1000]


def test_chunks_are_compared_with_the_rest_never_with_themselves():
    seen = []

    def distance(rows):
        seen.append(rows)
        return 0.1

    calibrate(distance, method="wasserstein", n_reference=1000, n_current=100)
    assert len(seen) == 50
    assert all(rows.size == 100 and np.unique(rows).size == 100 for rows in seen)


def test_threshold_shrinks_with_the_window_size():
    small = calibrate_counts(COUNTS, js, method="jensenshannon", n_current=200)
    large = calibrate_counts(COUNTS, js, method="jensenshannon", n_current=2000)
    assert small.source == large.source == "calibrated"
    assert small.threshold > large.threshold


def test_floor_stops_huge_samples_from_flagging_trivia():
    big = [400_000, 300_000, 200_000, 100_000]
    cal = calibrate_counts(big, js, method="jensenshannon", n_current=10**7)
    assert cal.threshold == 0.02
    custom = calibrate_counts(
        big, js, method="jensenshannon", n_current=10**7, settings=CalibrationSettings(floor=0.0)
    )
    assert custom.threshold < 0.02


def test_too_small_a_reference_falls_back_to_the_fixed_default():
    cal = calibrate_counts([20, 20], js, method="jensenshannon", n_current=1000)
    assert (cal.source, cal.threshold) == ("default", 0.1)


def test_contiguous_chunks_need_codes():
    settings = CalibrationSettings(contiguous=True)
    with pytest.raises(InvalidInput, match="codes"):
        calibrate_counts(COUNTS, js, method="jensenshannon", n_current=100, settings=settings)
    codes = np.repeat(np.arange(4), COUNTS)  # sorted by category: chunks look drifted
    cal = calibrate_counts(
        COUNTS, js, method="jensenshannon", n_current=100, settings=settings, codes=codes
    )
    shuffled = calibrate_counts(COUNTS, js, method="jensenshannon", n_current=100)
    assert cal.threshold > shuffled.threshold


@pytest.mark.parametrize("fit", ["lognormal", "chi2", "normal"])
def test_every_fit_gives_a_threshold_above_the_typical_distance(fit):
    settings = CalibrationSettings(fit=fit)
    cal = calibrate_counts(COUNTS, js, method="jensenshannon", n_current=500, settings=settings)
    typical = np.median(
        [
            js(COUNTS, np.random.default_rng(s).multinomial(500, np.array(COUNTS) / 10_000))
            for s in range(50)
        ]
    )
    assert cal.threshold > typical


def test_p_value_tests_are_not_calibrated():
    with pytest.raises(InvalidInput, match="not a distance"):
        calibrate_counts(COUNTS, js, method="ks", n_current=100)
