"""Reference profiles checked against numpy, collections.Counter and brute-force binning."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring import profile as profile_module
from watchkeeper.monitoring.profile import (
    QUANTILE_LEVELS,
    CategoricalProfile,
    DatasetProfile,
    NumericProfile,
    bin_counts,
    category_counts,
    profile_categorical,
    profile_frame,
    profile_numeric,
    profile_values,
)


def brute_force_counts(values, edges):
    """The documented convention, spelled out with comparisons: bin i holds
    edges[i] <= v < edges[i+1], the last bin is closed, and values outside the edges
    belong to the first or last bin."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    e = list(edges)
    k = len(e) - 1
    counts = []
    for i in range(k):
        inside = (x >= e[i]) & (x < e[i + 1])
        if i == 0:
            inside |= x < e[0]
        if i == k - 1:
            inside |= x >= e[k]
        counts.append(int(inside.sum()))
    return counts


def with_nans(seed, size=5000, null_fraction=0.1):
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=seed, scale=1 + seed, size=size)
    x[rng.random(size) < null_fraction] = np.nan
    return x


# ----------------------------------------------------------------------------- numeric


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("bins", [1, 7, 100])
def test_numeric_profile_matches_numpy(seed, bins):
    x = with_nans(seed)
    present = x[~np.isnan(x)]

    p = profile_numeric(x, bins=bins)

    assert p.count == present.size
    assert p.null_count == x.size - present.size
    assert p.min == present.min()
    assert p.max == present.max()
    assert math.isclose(p.mean, np.mean(present), rel_tol=1e-12)
    assert math.isclose(p.std, np.std(present, ddof=0), rel_tol=1e-12)
    expected_q = np.quantile(present, list(QUANTILE_LEVELS.values()))
    assert list(p.quantiles) == ["p01", "p05", "p25", "p50", "p75", "p95", "p99"]
    assert list(p.quantiles.values()) == expected_q.tolist()
    expected_edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)))
    assert p.edges == tuple(expected_edges.tolist())
    assert len(p.edges) == bins + 1
    assert p.edges[0] == p.min
    assert p.edges[-1] == p.max


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_counts_match_brute_force_and_bin_counts(seed):
    x = with_nans(seed)

    p = profile_numeric(x)

    assert sum(p.counts) == p.count
    assert list(p.counts) == brute_force_counts(x, p.edges)
    assert bin_counts(x, p.edges).tolist() == list(p.counts)
    assert bin_counts(x, p.edges).dtype == np.int64


def test_ties_on_small_integers_give_exact_edges():
    p = profile_numeric([3, 0, 1, 2, 0, 1, 2, 3], bins=4)

    assert p.edges == (0.0, 0.75, 1.5, 2.25, 3.0)
    assert p.counts == (2, 2, 2, 2)


@pytest.mark.parametrize("seed", [0, 1])
def test_discrete_data_edges_are_deduplicated(seed):
    x = np.random.default_rng(seed).integers(0, 4, size=2000)

    p = profile_numeric(x)

    expected = np.unique(np.quantile(x.astype(float), np.linspace(0, 1, 101)))
    assert p.edges == (*expected.tolist(), 3.0)  # the tied maximum gets a bin of its own
    assert all(a < b for a, b in zip(p.edges[:-1], p.edges[1:-1], strict=False))
    assert (p.edges[0], p.edges[-2], p.edges[-1]) == (0.0, 3.0, 3.0)
    assert p.counts[-1] == np.count_nonzero(x == 3)
    assert list(p.counts) == brute_force_counts(x, p.edges)
    assert bin_counts(x, p.edges).tolist() == list(p.counts)


def test_constant_column_has_one_bin():
    p = profile_numeric(np.full(50, 5.0))

    assert p.edges == (5.0, 5.0)
    assert p.counts == (50,)
    assert (p.min, p.max, p.mean, p.std) == (5.0, 5.0, 5.0, 0.0)
    assert bin_counts([4.0, 5.0, 6.0, None], p.edges).tolist() == [3]


def test_all_null_column_has_no_bins():
    p = profile_numeric([None, float("nan"), np.nan])

    assert (p.count, p.null_count) == (0, 3)
    assert (p.edges, p.counts) == ((), ())
    assert all(math.isnan(v) for v in (p.min, p.max, p.mean, p.std, *p.quantiles.values()))
    assert p.null_rate == 1.0
    assert bin_counts([1.0, 2.0], p.edges).tolist() == []


def test_empty_input():
    p = profile_numeric([])

    assert (p.count, p.null_count, p.edges, p.counts) == (0, 0, (), ())
    assert p.null_rate == 0.0
    assert bin_counts([], [0.0, 1.0]).tolist() == [0]


def test_infinities_are_values_and_edges_stay_ordered():
    x = [-np.inf, -np.inf, 1.0, 2.0, 3.0, np.inf, np.inf, None]

    p = profile_numeric(x, bins=10)

    assert (p.count, p.null_count) == (7, 1)
    assert (p.min, p.max) == (-math.inf, math.inf)
    assert math.isnan(p.mean)
    assert not any(math.isnan(e) for e in p.edges)
    assert (p.edges[0], p.edges[-1]) == (-math.inf, math.inf)
    assert list(p.counts) == brute_force_counts(x, p.edges)
    assert bin_counts(x, p.edges).tolist() == list(p.counts)


def test_huge_values_do_not_overflow_the_edges():
    x = [-1.7e308, 0.0, 1.7e308]

    p = profile_numeric(x, bins=4)

    assert all(math.isfinite(e) for e in p.edges)
    assert (p.edges[0], p.edges[-1]) == (-1.7e308, 1.7e308)
    assert list(p.counts) == brute_force_counts(x, p.edges)


def test_new_values_outside_the_edges_go_to_the_end_bins():
    counts = bin_counts([-5.0, 0.0, 0.5, 1.0, 2.0, 7.0, np.nan], [0.0, 1.0, 2.0])

    assert counts.tolist() == [3, 3]


def test_nullable_and_object_numbers():
    series = pd.Series([1, None, 3], dtype="Int64")

    assert profile_numeric(series).counts == profile_numeric([1.0, 3.0]).counts
    assert profile_numeric(series).null_count == 1
    assert profile_numeric(np.array([1, None, 3], dtype=object)).count == 2
    assert profile_numeric([True, False, True]).mean == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: profile_numeric([1.0], bins=0), "bins must be a positive integer"),
        (lambda: profile_numeric(["a", "b"]), "expected numbers"),
        (lambda: profile_numeric(np.zeros((2, 2))), "expected a 1-D column"),
        (lambda: profile_numeric(np.array(["2020-01-01"], "M8[D]")), "cannot profile values"),
        (lambda: bin_counts([1.0], [1.0]), "at least 2 values"),
        (lambda: bin_counts([1.0], [2.0, 1.0]), "sorted and free of NaN"),
        (lambda: bin_counts([1.0], [0.0, np.nan]), "sorted and free of NaN"),
        (lambda: profile_categorical(["a"], max_categories=0), "max_categories must be"),
        (lambda: category_counts(["a"], ["a", "a"]), "must not repeat"),
        (lambda: profile_categorical([["a"], ["b"]]), "expected a 1-D column"),
        (lambda: profile_categorical(np.array([[1], "a"], dtype=object)), "hashable"),
        (lambda: profile_values([1], label_limit=-1), "label_limit must be"),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(InvalidInput, match=message):
        call()


def test_profile_invariants_are_checked():
    with pytest.raises(InvalidInput, match="len\\(counts\\) == len\\(edges\\) - 1"):
        NumericProfile(
            count=1,
            null_count=0,
            min=0,
            max=1,
            mean=0,
            std=0,
            edges=(0, 1),
            counts=(),
            quantiles={},
        )
    with pytest.raises(InvalidInput, match="add up to count"):
        CategoricalProfile(count=3, null_count=0, frequencies={"a": 1}, other_count=0, distinct=1)


# ----------------------------------------------------------------------------- categorical


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_categorical_frequencies_match_counter(seed):
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(30)]
    values = [None if rng.random() < 0.1 else words[int(rng.zipf(1.5)) % 30] for _ in range(3000)]
    expected = Counter(v for v in values if v is not None)

    p = profile_categorical(values)

    assert p.frequencies == dict(expected)
    assert (p.count, p.null_count) == (sum(expected.values()), values.count(None))
    assert (p.other_count, p.distinct) == (0, len(expected))


def test_top_k_keeps_most_frequent_and_counts_the_rest():
    values = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] * 2 + ["e"] + [None] * 2

    p = profile_categorical(values, max_categories=3)

    assert list(p.frequencies.items()) == [("a", 5), ("b", 3), ("c", 3)]
    assert (p.other_count, p.distinct, p.count, p.null_count) == (3, 5, 14, 2)
    assert p.null_rate == pytest.approx(2 / 16)


def test_labels_are_strings_with_integral_floats_as_integers():
    assert profile_categorical(np.array([1.0, 2.0, 2.0, np.nan])).frequencies == {"2": 2, "1": 1}
    assert profile_categorical(pd.Series([1, 2, 2, None], dtype="Int64")).frequencies == {
        "2": 2,
        "1": 1,
    }
    assert profile_categorical([True, False, True]).frequencies == {"True": 2, "False": 1}
    mixed = profile_categorical(np.array([1, 1.0, True, 2.5, b"x", pd.NA], dtype=object))
    assert mixed.frequencies == {"1": 2, "2.5": 1, "True": 1, "x": 1}
    assert mixed.null_count == 1


def test_category_counts_reports_unseen_values():
    counts, unseen = category_counts(["a", "z", "z", "a", "a", None, "q"], ["a", "b"])

    assert counts.tolist() == [3, 0]
    assert unseen == 3


def test_category_counts_against_a_reference_profile():
    reference = profile_categorical(np.array([0, 1, 1, 2, 2, 2]))
    live = np.array([2.0, 2.0, 1.0, 7.0, np.nan])  # read as float because of the null

    counts, unseen = category_counts(live, reference.frequencies)

    assert dict(zip(reference.frequencies, counts.tolist(), strict=True)) == {
        "2": 2,
        "1": 1,
        "0": 0,
    }
    assert unseen == 1


# ----------------------------------------------------------------------------- frames


@pytest.fixture
def mixed_frame():
    rng = np.random.default_rng(7)
    n = 200
    return pd.DataFrame(
        {
            "score": rng.normal(size=n),
            "age": rng.integers(18, 90, size=n),
            "active": rng.random(n) < 0.5,
            "city": rng.choice(["oslo", "lima", "pune"], size=n).astype(object),
            "plan": pd.Categorical(rng.choice(["free", "pro"], size=n)),
            "visits": pd.array([None if i % 10 == 0 else i for i in range(n)], dtype="Int64"),
        }
    )


def test_profile_frame_picks_the_kind_per_column(mixed_frame):
    ref = profile_frame(mixed_frame)

    kinds = {name: type(p).__name__ for name, p in ref.features.items()}
    assert kinds == {
        "score": "NumericProfile",
        "age": "NumericProfile",
        "active": "CategoricalProfile",
        "city": "CategoricalProfile",
        "plan": "CategoricalProfile",
        "visits": "NumericProfile",
    }
    assert ref.row_count == 200
    assert (ref.features["visits"].count, ref.features["visits"].null_count) == (180, 20)
    assert set(ref.features["active"].frequencies) == {"True", "False"}
    assert ref.features["plan"].frequencies == dict(Counter(mixed_frame["plan"].astype(str)))
    assert ref.predictions is None


def test_profile_frame_honours_the_categorical_list(mixed_frame):
    ref = profile_frame(mixed_frame, categorical=["age"], max_categories=5)

    age = ref.features["age"]
    assert isinstance(age, CategoricalProfile)
    assert len(age.frequencies) == 5
    assert age.distinct == mixed_frame["age"].nunique()


def test_profile_frame_of_an_arrow_table_equals_the_dataframe_profile(mixed_frame):
    table = pa.Table.from_pandas(mixed_frame, preserve_index=False)
    for categorical in ([], ["age", "visits"]):
        expected = profile_frame(mixed_frame, categorical=categorical).to_dict()
        assert profile_frame(table, categorical=categorical).to_dict() == expected
    with pytest.raises(InvalidInput, match="'x' appears twice"):
        profile_frame(pa.table([pa.array([1.0]), pa.array([2.0])], names=["x", "x"]))


def test_profile_frame_from_a_dict_of_columns():
    ref = profile_frame({"x": [1.0, None, 3.0], "n": [1, None, 2], "s": np.array(["a", "b", "a"])})

    assert ref.row_count == 3
    assert isinstance(ref.features["x"], NumericProfile)
    assert isinstance(ref.features["n"], NumericProfile)
    assert ref.features["s"].frequencies == {"a": 2, "b": 1}
    assert profile_frame({}).row_count == 0


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        ({"x": [1.0], "y": [1.0, 2.0]}, {}, "columns differ in length"),
        ({"x": [1.0]}, {"categorical": ["nope"]}, "unknown columns: nope"),
        ({"t": pd.Series(pd.to_datetime(["2024-01-01"]))}, {}, "cannot profile values"),
    ],
)
def test_profile_frame_refuses(frame, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        profile_frame(frame, **kwargs)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (np.random.default_rng(0).random(100), NumericProfile),
        (np.array([0, 1, 1, 0, 2]), CategoricalProfile),
        (np.arange(1000), NumericProfile),
        (["yes", "no", None], CategoricalProfile),
        (np.array([True, False]), CategoricalProfile),
        (pd.Series(["a", "b"], dtype="category"), CategoricalProfile),
        (pd.Series([1, None, 0], dtype="Int64"), CategoricalProfile),
    ],
)
def test_profile_values_chooses_by_dtype(values, kind):
    assert isinstance(profile_values(values), kind)


def test_label_limit_decides_for_integers():
    labels = np.arange(30) % 25

    assert isinstance(profile_values(labels), NumericProfile)
    assert isinstance(profile_values(labels, label_limit=25), CategoricalProfile)


# ----------------------------------------------------------------------------- JSON


def roundtrip(ref):
    text = json.dumps(ref.to_dict(), allow_nan=False)
    return DatasetProfile.from_dict(json.loads(text))


def test_round_trip_through_json_keeps_everything(mixed_frame):
    ref = profile_frame(mixed_frame).with_predictions(profile_values(np.array([0, 1, 1])))

    back = roundtrip(ref)

    assert back == ref
    assert back.features["score"].edges == ref.features["score"].edges
    assert isinstance(back.predictions, CategoricalProfile)


def test_round_trip_keeps_infinities_and_nans():
    ref = profile_frame({"x": [1.0, np.inf, -np.inf, None], "empty": [None, None, None, None]})
    data = ref.to_dict()

    back = roundtrip(ref)

    assert data["features"]["x"]["max"] == "Infinity"
    assert data["features"]["empty"]["kind"] == "categorical"
    assert back.to_dict() == data
    assert back.features["x"].max == math.inf
    assert back.features["x"].min == -math.inf
    assert math.isnan(back.features["x"].mean)
    assert back.features["x"].edges == ref.features["x"].edges


def test_round_trip_of_an_all_null_numeric_profile():
    ref = DatasetProfile(row_count=2, features={"x": profile_numeric(np.array([np.nan, np.nan]))})

    back = roundtrip(ref)

    assert back.to_dict() == ref.to_dict()
    assert math.isnan(back.features["x"].quantiles["p50"])


def test_with_predictions_returns_a_copy():
    ref = profile_frame({"x": [1.0, 2.0]})
    scored = ref.with_predictions(profile_values([0.1, 0.9]))

    assert ref.predictions is None
    assert isinstance(scored.predictions, NumericProfile)
    assert scored.with_predictions(None) == ref


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format_version=2), "format_version 2 is not supported"),
        (lambda d: d.pop("row_count"), "malformed dataset profile"),
        (lambda d: d["features"]["x"].update(kind="ordinal"), "unknown feature profile kind"),
        (lambda d: d["features"]["x"].update(min="big"), "malformed numeric profile"),
        (lambda d: d["features"]["x"].update(counts=[1]), "len\\(counts\\)"),
        (lambda d: d["features"]["c"].pop("distinct"), "malformed categorical profile"),
    ],
)
def test_from_dict_refuses_bad_documents(mutate, message):
    data = profile_frame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "b"]}).to_dict()
    mutate(data)

    with pytest.raises(InvalidInput, match=message):
        DatasetProfile.from_dict(data)


def test_public_surface():
    from watchkeeper import monitoring

    assert all(hasattr(profile_module, name) for name in profile_module.__all__)

    assert monitoring.__all__ == sorted(monitoring.__all__)
    assert all(hasattr(monitoring, name) for name in monitoring.__all__)


# ----------------------------------------------------------------------------- properties

float_arrays = hnp.arrays(
    np.float64,
    st.integers(0, 60),
    elements=st.floats(allow_nan=True, allow_infinity=True, width=64),
)
edge_arrays = hnp.arrays(
    np.float64, st.integers(2, 8), elements=st.floats(allow_nan=False, width=64)
).map(np.sort)


@settings(max_examples=200, deadline=None)
@given(values=float_arrays, edges=edge_arrays)
def test_bin_counts_property(values, edges):
    counts = bin_counts(values, edges)

    assert counts.sum() == np.count_nonzero(~np.isnan(values))
    assert counts.tolist() == brute_force_counts(values, edges)


@settings(max_examples=200, deadline=None)
@given(values=float_arrays, bins=st.integers(1, 12))
def test_profile_counts_property(values, bins):
    p = profile_numeric(values, bins=bins)

    assert p.count == np.count_nonzero(~np.isnan(values))
    assert list(p.counts) == brute_force_counts(values, p.edges)
    assert bin_counts(values, p.edges).tolist() == list(p.counts)
    if p.count:
        assert (p.edges[0], p.edges[-1]) == (p.min, p.max)
        assert not any(math.isnan(e) for e in p.edges)
        head = p.edges[:-1]  # a tied maximum repeats the last edge (its own bin)
        assert len(p.edges) == 2 or all(a < b for a, b in zip(head, head[1:], strict=False))
        assert len(p.edges) == 2 or p.edges[-1] > p.edges[-2] or p.counts[-1] > 1
