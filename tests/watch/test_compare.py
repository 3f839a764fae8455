"""``watchkeeper.watch.compare``: a reference against successive chunks of the current data.

The data: a 20 000-row reference (a normal, a gamma and a four-category feature) and ten
2 000-row chunks drawn from the same law, except that from chunk 6 on the normal feature's mean
moves by half a standard deviation and the categories' shares move by 15 points: a clear
shift, which every drifted chunk must show and no clean chunk may.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ks_2samp

from watchkeeper.errors import InvalidInput
from watchkeeper.models.signature import infer_signature
from watchkeeper.monitoring.drift import DriftPolicy
from watchkeeper.monitoring.profile import profile_frame
from watchkeeper.watch.compare import compare, drift_policy

CHUNK = 2000
DRIFT_FROM = 6
CATEGORIES = ["w", "x", "y", "z"]
SHARES = [0.4, 0.3, 0.2, 0.1]
DRIFTED_SHARES = [0.25, 0.3, 0.25, 0.2]


def _frame(rng: np.random.Generator, n: int, *, drifted: bool = False) -> pd.DataFrame:
    return pd.DataFrame({
        "a": rng.normal(0.5 if drifted else 0.0, 1.0, n),
        "b": rng.gamma(2.0, 1.0, n),
        "c": rng.choice(CATEGORIES, n, p=DRIFTED_SHARES if drifted else SHARES),
    })  # fmt: skip


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(19)
    reference = _frame(rng, 20_000)
    chunks = [_frame(rng, CHUNK, drifted=i >= DRIFT_FROM) for i in range(10)]
    return reference, pd.concat(chunks, ignore_index=True)


def _results(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    """Check, feature, statistic, value, threshold and status of every result, in order."""
    kept = frame[["check", "feature", "statistic", "value", "threshold", "status"]]
    return [tuple(row) for row in kept.itertuples(index=False)]


def test_drift_from_chunk_k_is_flagged_in_chunks_k_and_later_only(data) -> None:
    reference, current = data
    found = compare(reference, current, chunk_size=CHUNK)
    assert [c.label for c in found.chunks][:2] == ["rows 0-1999", "rows 2000-3999"]
    assert [c.rows for c in found.chunks] == [CHUNK] * 10
    expected = [[] if i < DRIFT_FROM else ["a", "c"] for i in range(10)]
    assert [c.drifted for c in found.chunks] == expected
    assert [c.status == "fail" for c in found.chunks] == [i >= DRIFT_FROM for i in range(10)]
    summary = found.summary()
    assert summary["drift_share"].tolist() == [0.0] * DRIFT_FROM + [2 / 3] * (10 - DRIFT_FROM)


def test_each_chunk_equals_a_single_compare_of_its_rows(data) -> None:
    reference, current = data
    found = compare(reference, current, chunk_size=3000)  # 7 chunks, the last of 2 000 rows
    assert [c.rows for c in found.chunks] == [3000] * 6 + [2000]
    frame = found.to_frame()
    for chunk in found.chunks:
        alone = compare(reference, current.iloc[chunk.start : chunk.stop])
        assert len(alone.chunks) == 1
        assert alone.chunks[0].label == "all rows"
        assert _results(frame[frame["index"] == chunk.index]) == _results(alone.to_frame())


def test_quality_is_checked_against_the_inferred_signature(data) -> None:
    reference, current = data
    current = current.copy()
    current.loc[3 * CHUNK : 3 * CHUNK + 599, "b"] = np.nan  # 600 of chunk 3's 2 000 rows
    current.loc[4 * CHUNK : 4 * CHUNK + 199, "c"] = "new"  # 200 of chunk 4's rows
    found = compare(reference, current, chunks=10)
    assert found.signature.names == ["a", "b", "c"]
    assert [c.comparison.quality is not None for c in found.chunks] == [True] * 10
    statuses = [c.comparison.quality.status for c in found.chunks]  # type: ignore[union-attr]
    assert statuses[3] == statuses[4] == "fail"
    assert statuses[:3] + statuses[5:] == ["ok"] * 8
    frame = found.to_frame()
    quality = frame[frame["check"] == "quality"].set_index(["index", "feature", "statistic"])
    assert quality.loc[(3, "b", "null_rate"), "value"] == pytest.approx(600 / CHUNK, abs=1e-12)
    assert quality.loc[(4, "c", "unseen_category"), "value"] == pytest.approx(
        200 / CHUNK, abs=1e-12
    )


def test_a_method_for_every_feature_gives_scipys_p_values(data) -> None:
    """``method=["ks", "chisquare"]``: each feature's raw p-value is scipy's (to 1e-9
    relative), and the Bonferroni-adjusted one is it times the three features, capped at 1."""
    reference, current = data
    found = compare(reference, current, chunk_size=CHUNK, method=["ks", "chisquare"])
    assert found.policy.method == {"a": "ks", "b": "ks", "c": "chisquare"}
    for index in (0, DRIFT_FROM):
        chunk = current.iloc[index * CHUNK : (index + 1) * CHUNK]
        report = found.chunks[index].comparison.drift
        for name in ("a", "b"):
            expected = ks_2samp(reference[name], chunk[name]).pvalue
            assert report[name].result.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)
            assert report[name].adjusted_p_value == pytest.approx(min(1.0, 3 * expected),
                                                                  rel=1e-9, abs=1e-300)  # fmt: skip
        table = pd.crosstab(
            np.r_[np.zeros(len(reference)), np.ones(CHUNK)],
            np.r_[reference["c"].to_numpy(), chunk["c"].to_numpy()],
        )
        expected = chi2_contingency(table.to_numpy(), correction=False).pvalue
        assert report["c"].result.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_thresholds_and_fit_reach_the_policy(data) -> None:
    reference, current = data
    found = compare(reference, current.iloc[:CHUNK], threshold={"a": 0.001}, fit="chi2")
    assert found.policy.fit == "chi2"
    feature = found.chunks[0].comparison.drift["a"]
    assert (feature.threshold_source, feature.result.threshold) == ("policy", 0.001)
    assert feature.drifted  # a clean chunk is still 0.001 sd away from the reference


def test_chunk_by_a_time_column_compares_each_period(data) -> None:
    reference, current = data
    start = pd.Timestamp("2026-11-01")
    times = start + pd.to_timedelta(np.arange(len(current)) * 36, unit="s")  # 2 400 a day
    timed = current.assign(ts=times.astype(str)).iloc[::-1]  # order does not matter
    found = compare(reference.assign(ts="x"), timed, chunk_by="ts:1d")
    assert [c.label for c in found.chunks] == [f"2026-11-{d:02d}" for d in range(1, 10)]
    assert [c.rows for c in found.chunks] == [2400] * 8 + [800]
    first = found.chunks[0]
    assert (first.window.start.isoformat(), first.window.end.isoformat()) == (
        "2026-11-01T00:00:00+00:00", "2026-11-02T00:00:00+00:00")  # fmt: skip
    assert "ts" not in found.profile.features
    assert "ts" not in found.signature.names
    assert first.comparison.quality is not None
    assert first.comparison.quality.status == "ok"
    # days 1-5 hold only clean rows (drift starts at row 12 000, 36 s * 12 000 = 5 days)
    assert [bool(c.drifted) for c in found.chunks] == [False] * 5 + [True] * 4
    for chunk in (found.chunks[0], found.chunks[-1]):
        alone = compare(reference, timed.iloc[chunk.positions].drop(columns="ts"))
        assert _results(alone.to_frame()) == _results(
            found.to_frame().query(f"index == {chunk.index}"))  # fmt: skip
    monthly = compare(reference, timed, chunk_by="ts:month")
    assert [(c.label, c.rows) for c in monthly.chunks] == [("2026-11", len(current))]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunk_by": "ts"}, "must look like COLUMN:PERIOD"),
        ({"chunk_by": "ts:fortnight"}, "'fortnight' is not a period"),
        ({"chunk_by": "when:1d"}, "no column 'when'"),
        ({"chunk_by": "a:1d"}, "holds float64 values, not times"),
        ({"chunk_size": 100, "chunks": 2}, "give one of chunk_size, chunks and chunk_by"),
        ({"chunk_size": 0}, "chunk_size must be at least 1"),
        ({"chunks": 10**6}, "chunks must be between 1 and the 20000 current rows"),
        ({"method": "anova"}, "unknown drift method 'anova'"),
        ({"method": {"c": "ks"}}, "'ks' does not apply to categorical features"),
        ({"method": ["ks", "wasserstein"]}, "'ks' and 'wasserstein' both apply"),
        ({"threshold": {"ghost": 0.1}}, "threshold names features the reference lacks: ghost"),
        ({"fit": "cauchy"}, "fit must be 'lognormal', 'chi2' or 'normal'"),
    ],
)
def test_mistakes_are_refused_with_their_reason(data, options, message) -> None:
    reference, current = data
    with pytest.raises(InvalidInput, match=message):
        compare(reference, current, **options)


def test_times_that_are_not_times_are_refused(data) -> None:
    reference, current = data
    bad = current.iloc[:10].assign(ts=["2026-11-01"] * 9 + ["yesterday"])
    with pytest.raises(InvalidInput, match="column 'ts' does not hold ISO-8601 times"):
        compare(reference, bad, chunk_by="ts:1d")
    missing = current.iloc[:10].assign(ts=["2026-11-01"] * 8 + [None, None])
    with pytest.raises(InvalidInput, match="2 rows have no time in column 'ts'"):
        compare(reference, missing, chunk_by="ts:1d")


def test_per_feature_settings_win_over_bare_ones() -> None:
    profile = profile_frame({"x": [1.0, 2.0, 3.0], "y": [1.0, 5.0, 2.0], "c": ["a", "b", "a"]})
    base = DriftPolicy(method={"x": "psi"}, threshold={"y": 0.3})
    policy = drift_policy(profile, base, method="ks", threshold=0.05)
    assert policy.method == {"x": "psi", "y": "ks"}
    assert policy.threshold == {"x": 0.05, "y": 0.3, "c": 0.05}
    named = drift_policy(profile, base, method={"y": "wasserstein"}, threshold={"x": 0.2})
    assert named.method == {"x": "psi", "y": "wasserstein"}
    assert named.threshold == {"y": 0.3, "x": 0.2}
    assert math.isclose(drift_policy(profile, threshold=0).threshold["c"], 0.0)


def test_a_given_signature_must_name_columns_of_the_reference(data) -> None:
    reference, current = data
    timed = current.iloc[:100].assign(ts="2026-11-01")
    signature = infer_signature(timed)  # names ts, which chunk_by takes out of the features
    with pytest.raises(InvalidInput, match="the reference has no column 'ts' of the signature"):
        compare(reference.assign(ts="x"), timed, chunk_by="ts:1d", signature=signature)
