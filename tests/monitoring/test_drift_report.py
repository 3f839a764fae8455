"""Whole-window drift: injected drift found, no false alarms, nulls, JSON, streaming."""

from __future__ import annotations

import functools
import json
import operator

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.drift import (
    DriftPolicy,
    count_window,
    detect_drift,
    detect_drift_binned,
)
from watchkeeper.monitoring.profile import profile_frame

LABELS = np.array(["a", "b", "c", "d", "e"], dtype=object)
DRIFTED_NUMERIC = {"n0": 0.5, "n3": 0.1, "n7": 0.1, "n11": 0.2, "n15": 0.1}  # shift in sd
DRIFTED_CATEGORICAL = {"c1", "c3"}
DRIFTED = set(DRIFTED_NUMERIC) | DRIFTED_CATEGORICAL


def synthetic(n, seed, drift=False):
    """20 numeric (normal and skewed) + 5 categorical features, as in PERFORMANCE.md."""
    rng = np.random.default_rng(seed)
    columns = {}
    for i in range(20):
        x = rng.normal(0, 1 + i % 3, n) if i % 2 else rng.exponential(1 + i % 4, n)
        if drift and f"n{i}" in DRIFTED_NUMERIC:
            x += DRIFTED_NUMERIC[f"n{i}"] * (1 + i % 3 if i % 2 else 1 + i % 4)
        columns[f"n{i}"] = x
    for j in range(5):
        moved = drift and f"c{j}" in DRIFTED_CATEGORICAL
        p = [0.33, 0.25, 0.15, 0.14, 0.13] if moved else [0.4, 0.25, 0.15, 0.12, 0.08]
        columns[f"c{j}"] = rng.choice(LABELS, p=p, size=n)
    return columns


def test_injected_drift_is_found_and_nothing_else():
    report = detect_drift(synthetic(20_000, 1), synthetic(20_000, 2, drift=True))
    assert set(report.drifted) == DRIFTED
    assert report.drift_share == pytest.approx(7 / 25)
    assert not report.dataset_drift
    assert {report[n].result.method for n in DRIFTED_NUMERIC} == {"wasserstein"}
    assert report["c1"].result.method == "jensenshannon"
    assert report["n3"].threshold_source == "calibrated"


def test_false_alarm_rate_on_undrifted_windows():
    """50 clean windows x 25 features: calibrated at 3 sigma (nominal 0.13% per feature);
    allow 0.5% per feature, and at most 10% of windows with any alarm."""
    alarms, windows_with_alarm = 0, 0
    for rep in range(50):
        report = detect_drift(synthetic(4000, 100 + rep), synthetic(1500, 200 + rep))
        alarms += len(report.drifted)
        windows_with_alarm += bool(report.drifted)
    assert alarms / (50 * 25) < 0.005
    assert windows_with_alarm / 50 < 0.10


def test_small_windows_use_corrected_p_values():
    alarms = 0
    for rep in range(50):
        report = detect_drift(synthetic(2000, 300 + rep), synthetic(300, 400 + rep))
        assert report["n1"].result.method == "ks"
        assert report["c0"].result.method == "chisquare"
        assert report["n1"].adjusted_p_value == pytest.approx(
            min(1.0, report["n1"].result.p_value * 25)
        )
        alarms += bool(report.drifted)
    assert alarms <= 6  # Bonferroni: family-wise 5% (2.5 expected), plus a margin


def test_large_samples_raise_no_false_alarm_and_find_small_shifts():
    """The key property: 100k reference rows against 1M current rows."""
    reference = synthetic(100_000, 1)
    profile = profile_frame(reference)
    clean = detect_drift(reference, synthetic(1_000_000, 2), profile=profile)
    assert clean.drifted == []
    drifted = detect_drift(reference, synthetic(1_000_000, 3, drift=True), profile=profile)
    assert set(drifted.drifted) == DRIFTED
    assert drifted["n3"].result.threshold == pytest.approx(0.02)  # the floor


def test_nulls_are_dropped_and_an_all_null_window_is_reported_untested():
    reference = synthetic(5000, 1)
    reference["n5"][::100] = np.nan  # 1% nulls: alibi-detect's NaN p-value pitfall
    current = synthetic(3000, 2, drift=True)
    current["n3"][::100] = np.nan
    current["n5"] = np.full(3000, np.nan)
    current["c2"] = np.array([None] * 3000, dtype=object)
    report = detect_drift(reference, current)
    assert report["n3"].drifted
    assert report["n3"].result.n_current == 2970
    assert report["n3"].null_rate_current == pytest.approx(0.01)
    for name in ("n5", "c2"):
        assert report[name].result is None
        assert not report[name].drifted
        assert report[name].null_rate_current == 1.0
        assert "no non-null values in the current window" in report[name].note
    assert report["n5"].null_rate_reference == pytest.approx(0.01)
    assert report.drift_share == pytest.approx(7 / 23)


def test_missing_features_and_pandas_frames():
    reference = pd.DataFrame(synthetic(3000, 1))
    current = pd.DataFrame(synthetic(3000, 2)).drop(columns=["n4"])
    report = detect_drift(reference, current)
    assert report["n4"].result is None
    assert "missing" in report["n4"].note


def test_importance_weights_the_drift_share():
    report = detect_drift(
        synthetic(5000, 1), synthetic(5000, 2, drift=True), importance={"n0": 3.0, "n1": 1.0}
    )
    assert report.drift_share == pytest.approx(0.75)
    with pytest.raises(InvalidInput, match="importance"):
        detect_drift(synthetic(2000, 1), synthetic(2000, 2), importance={"n0": -1.0})


def test_policy_overrides_method_threshold_and_correction():
    policy = DriftPolicy(
        method={"n0": "ks", "n1": "psi", "c0": "chisquare"},
        threshold={"n2": 10.0},
        correction="bh",
    )
    report = detect_drift(synthetic(5000, 1), synthetic(5000, 2, drift=True), policy=policy)
    assert report["n0"].result.method == "ks"
    assert report["n0"].drifted
    assert report["n1"].result.method == "psi"
    assert report["n1"].threshold_source == "calibrated"
    assert report["n2"].threshold_source == "policy"
    assert report["n2"].result.threshold == 10.0
    assert report["c0"].adjusted_p_value is not None


def test_report_is_json_serialisable():
    report = detect_drift(synthetic(3000, 1), synthetic(2000, 2, drift=True))
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["drifted"] == report.drifted
    assert data["features"][0]["result"]["method"] == "wasserstein"


def test_streamed_counts_add_up_and_binned_detection_needs_only_the_profile():
    profile = profile_frame(synthetic(20_000, 1))
    window = synthetic(20_000, 2, drift=True)
    whole = count_window(profile, window)
    halves = [count_window(profile, {k: v[i::2] for k, v in window.items()}) for i in (0, 1)]
    for name, counted in whole.items():
        merged = halves[0][name] + halves[1][name]
        assert merged.counts.tolist() == counted.counts.tolist()
    report = detect_drift_binned(profile, whole)
    assert {"n0", "n11"} <= set(report.drifted)
    sources = {f.name: f.threshold_source for f in report.features}
    assert {sources[f"n{i}"] for i in range(20)} == {"calibrated"}
    assert {sources[f"c{j}"] for j in range(5)} == {"chi2"}  # 5 labels: few-valued


def test_binned_detection_refuses_counts_on_other_bins():
    profile = profile_frame({"x": np.arange(100.0)}, bins=10)
    other = count_window(profile_frame({"x": np.arange(100.0)}, bins=5), {"x": [1.0]})
    with pytest.raises(InvalidInput, match="bins"):
        detect_drift_binned(profile, other)


def mixed_window(n, seed, shift=0.0):
    """Every kind of feature, nulls in each: floats, integers, strings, ints and bools used as
    categories, a categorical float."""
    rng = np.random.default_rng(seed)
    gaps = rng.random(n) < 0.05
    x = rng.normal(shift, 1.0, n)
    x[gaps] = np.nan
    strings = rng.choice(np.array(["a", "b", "c", "new"], dtype=object), size=n,
                         p=[0.5, 0.3, 0.2 - shift / 10, shift / 10])  # fmt: skip
    strings[gaps] = None
    return pd.DataFrame({
        "x": x,
        "count": rng.poisson(3.0, n),
        "plan": strings,
        "code": pd.array(np.where(gaps, None, rng.integers(0, 4, n)), dtype="Int64"),
        "flag": pd.array(np.where(gaps, None, rng.random(n) < 0.3), dtype="boolean"),
        "tier": np.where(gaps, np.nan, rng.integers(1, 3, n).astype(float)),
    })  # fmt: skip


def assert_same_counts(got, expected):
    assert got.keys() == expected.keys()
    for name in expected:
        a, b = got[name], expected[name]
        assert (a.counts.tolist(), a.nulls) == (b.counts.tolist(), b.nulls), name
        assert (a.below_excess, a.above_excess) == pytest.approx((b.below_excess, b.above_excess))


def test_count_window_on_an_arrow_table_equals_the_dataframe_result():
    reference = mixed_window(3000, 1)
    profile = profile_frame(reference, categorical=["code", "tier"])
    window = mixed_window(2000, 2, shift=0.5)
    expected = count_window(profile, window)
    table = pa.Table.from_pandas(window, preserve_index=False)
    assert min(table.column(name).null_count for name in ("x", "plan", "code", "flag")) > 0
    assert_same_counts(count_window(profile, table), expected)
    batches = [count_window(profile, b) for b in table.to_batches(max_chunksize=700)]
    summed = {name: functools.reduce(operator.add, (b[name] for b in batches)) for name in expected}
    assert_same_counts(summed, expected)
    dictionary = table.set_column(2, "plan", table.column("plan").dictionary_encode())
    assert_same_counts(count_window(profile, dictionary), expected)
    assert (
        detect_drift(reference, table, profile=profile).to_dict()
        == detect_drift(reference, window, profile=profile).to_dict()
    )
