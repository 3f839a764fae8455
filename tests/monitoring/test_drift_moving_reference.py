"""A reference that moves (issue 19, item 2): calibrated on shuffled chunks, a slowly trending
reference made 17 of 24 clean out-of-sample cells drift; checked and calibrated on adjacent
rows, none, and the report says the reference itself moves."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from watchkeeper.monitoring.drift import DriftPolicy, detect_drift
from watchkeeper.monitoring.drift.calibration import rank_p_value
from watchkeeper.monitoring.html import _verdict

N = 40_000
CHUNK = 5_000


def trending(start, n, seed, shift=0.0):
    """One slow cycle per N rows: a share, a numeric mean and a count rate follow a sine."""
    rng = np.random.default_rng(seed)
    phase = np.sin(2 * np.pi * np.arange(start, start + n) / N)
    return {
        "plan": np.where(rng.random(n) < 0.4 + 0.05 * phase, "yes", "no"),
        "spend": rng.normal(0.15 * phase + shift, 1.0),
        "visits": np.minimum(rng.poisson(1.5 + 0.2 * phase), 4),
    }


def out_of_sample():
    """Eight clean windows from the next cycle of the same process."""
    return [trending(N + i * CHUNK, CHUNK, 10 + i) for i in range(8)]


def test_a_moving_reference_raises_no_alarm_on_clean_windows_and_says_it_moves():
    reference = trending(0, N, 1)
    reports = [detect_drift(reference, window) for window in out_of_sample()]
    assert sum(len(r.drifted) for r in reports) == 0
    for report in reports:
        assert report.reference_moves == ["plan", "spend", "visits"]
        data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
        assert data["reference_moves"] == ["plan", "spend", "visits"]
        for feature in data["features"]:
            assert feature["reference_moves"]
            assert feature["calibration"]["contiguous"]
            assert feature["calibration"]["moves_p_value"] < 1e-3
            assert "reference itself moves" in feature["note"]


def test_the_html_report_says_the_reference_moves():
    report = detect_drift(trending(0, N, 1), out_of_sample()[0])
    assert _verdict("spend", report, []).endswith("(the reference itself moves)")


def test_shuffled_calibration_is_what_raised_the_false_alarms():
    """The regression pinned: the old behaviour, still available with contiguous=False."""
    reference = trending(0, N, 1)
    policy = DriftPolicy(contiguous=False)
    reports = [detect_drift(reference, window, policy=policy) for window in out_of_sample()]
    assert sum(len(r.drifted) for r in reports) >= 8
    assert all(r.reference_moves == [] for r in reports)


def test_a_real_shift_is_still_found_against_a_moving_reference():
    reference = trending(0, N, 1)
    report = detect_drift(reference, trending(N, CHUNK, 99, shift=0.5))
    assert report.drifted == ["spend"]
    assert report["spend"].reference_moves


@pytest.mark.parametrize("seed", range(5))
def test_a_stationary_reference_is_not_said_to_move(seed):
    rng = np.random.default_rng(seed)
    reference = {
        "plan": rng.choice(["yes", "no"], p=[0.4, 0.6], size=N),
        "spend": rng.normal(size=N),
        "visits": np.minimum(rng.poisson(1.5, size=N), 4),
        "city": rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=N),
    }
    window = {name: values[:CHUNK] for name, values in reference.items()}
    report = detect_drift(reference, window)
    assert report.reference_moves == []
    assert all(f.calibration.moves_p_value > 1e-3 for f in report.features)


def test_rank_p_value_is_scipys_one_sided_mann_whitney():
    rng = np.random.default_rng(0)
    larger, smaller = rng.gamma(2.0, 1.1, size=20), rng.gamma(2.0, 1.0, size=50)
    expected = mannwhitneyu(
        larger, smaller, alternative="greater", method="asymptotic", use_continuity=False
    ).pvalue
    assert rank_p_value(larger, smaller) == pytest.approx(expected, rel=1e-12)
