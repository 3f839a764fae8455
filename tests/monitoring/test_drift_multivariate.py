"""The domain-classifier test: silent on identical data, finds marginal, joint and categorical
shifts, names the features that moved, and refuses inputs it cannot judge."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.drift.multivariate import MultivariateDrift, domain_classifier_drift


def normal_frame(rng: np.random.Generator, n: int, columns: str = "abc") -> pd.DataFrame:
    return pd.DataFrame({name: rng.normal(size=n) for name in columns})


def correlated(rng: np.random.Generator, n: int, rho: float) -> pd.DataFrame:
    xy = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "z": rng.normal(size=n)})


def top_names(result: MultivariateDrift, k: int) -> set[str]:
    return {name for name, _ in result.top_features[:k]}


@pytest.mark.parametrize("seed", range(4))
def test_identical_distributions_are_not_flagged(seed: int) -> None:
    rng = np.random.default_rng(seed)
    result = domain_classifier_drift(normal_frame(rng, 600), normal_frame(rng, 600), seed=seed)
    assert abs(result.auc - 0.5) < 0.05
    assert not result.drifted


def test_mean_shift_in_one_feature_is_found_and_named_first() -> None:
    rng = np.random.default_rng(1)
    reference, current = normal_frame(rng, 1000), normal_frame(rng, 1000)
    current["b"] += 0.5
    result = domain_classifier_drift(reference, current)
    assert result.drifted
    assert result.auc > 0.55
    assert result.p_value < 1e-3
    assert result.top_features[0][0] == "b"
    importances = [value for _, value in result.top_features]
    assert importances == sorted(importances, reverse=True)


def test_joint_shift_invisible_marginally_is_found() -> None:
    """Same N(0, 1) marginals, correlation +0.9 then -0.9: only the joint law moved."""
    rng = np.random.default_rng(2)
    result = domain_classifier_drift(correlated(rng, 1500, 0.9), correlated(rng, 1500, -0.9))
    assert result.drifted
    assert result.auc > 0.8
    assert top_names(result, 2) == {"x", "y"}


def test_categorical_shift_is_found() -> None:
    rng = np.random.default_rng(3)
    n = 1000
    reference = pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.6, 0.3, 0.1]),
            "v": rng.normal(size=n),
        }
    )
    current = pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.3, 0.3, 0.4]),
            "v": rng.normal(size=n),
        }
    )
    result = domain_classifier_drift(reference, current)
    assert result.drifted
    assert result.top_features[0][0] == "colour"


def test_category_only_in_current_and_category_dtype() -> None:
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"c": pd.Categorical(rng.choice(["a", "b"], 500))})
    current = pd.DataFrame({"c": pd.Categorical(rng.choice(["a", "b", "new"], 500))})
    assert domain_classifier_drift(reference, current).drifted


def test_integer_codes_can_be_declared_categorical() -> None:
    rng = np.random.default_rng(5)
    reference = {"code": rng.choice([3, 7, 11], 800), "v": rng.normal(size=800)}
    current = {"code": rng.choice([3, 7, 11], 800, p=[0.1, 0.1, 0.8]), "v": rng.normal(size=800)}
    result = domain_classifier_drift(reference, current, categorical=["code"])
    assert result.drifted
    assert result.top_features[0][0] == "code"


def test_nulls_in_numeric_and_categorical_features_are_handled() -> None:
    rng = np.random.default_rng(6)
    reference, current = normal_frame(rng, 800), normal_frame(rng, 800)
    reference.loc[rng.random(800) < 0.2, "a"] = np.nan
    current.loc[rng.random(800) < 0.2, "a"] = np.nan
    reference["s"] = pd.array(rng.choice(["u", "v", None], 800), dtype="string")
    current["s"] = pd.array(rng.choice(["u", "v", None], 800), dtype="string")
    reference["n"] = pd.array(rng.integers(0, 5, 800), dtype="Int64")
    current["n"] = pd.array(rng.integers(0, 5, 800), dtype="Int64")
    current.loc[:99, "n"] = pd.NA
    assert not domain_classifier_drift(reference, current.assign(n=reference["n"])).drifted
    current.loc[rng.random(800) < 0.6, "a"] = np.nan  # the null rate moves
    result = domain_classifier_drift(reference, current)
    assert result.drifted
    assert result.top_features[0][0] == "a"


def test_constant_data_gives_half_and_no_drift() -> None:
    reference = {"a": np.ones(50), "b": np.full(50, "k")}
    current = {"a": np.ones(60), "b": np.full(60, "k")}
    result = domain_classifier_drift(reference, current)
    assert result.auc == 0.5
    assert result.auc_std == 0.0
    assert result.p_value == 0.5
    assert not result.drifted
    assert all(value == 0.0 for _, value in result.top_features)


def test_subsampling_respects_max_rows_and_balances() -> None:
    rng = np.random.default_rng(7)
    result = domain_classifier_drift(normal_frame(rng, 3000), normal_frame(rng, 1200), max_rows=500)
    assert (result.n_reference, result.n_current) == (500, 500)
    small = domain_classifier_drift(normal_frame(rng, 3000), normal_frame(rng, 300))
    assert (small.n_reference, small.n_current) == (300, 300)


def test_same_seed_same_result_and_json_safe() -> None:
    rng = np.random.default_rng(8)
    reference, current = normal_frame(rng, 400), normal_frame(rng, 400)
    first = domain_classifier_drift(reference, current, seed=3)
    assert first == domain_classifier_drift(reference, current, seed=3)
    payload = json.loads(json.dumps(first.to_dict(), allow_nan=False))
    assert payload["method"] == "domain_classifier"
    assert payload["folds"] == 5
    assert {f["name"] for f in payload["top_features"]} == {"a", "b", "c"}


def test_features_restrict_and_common_columns_default() -> None:
    rng = np.random.default_rng(9)
    reference = normal_frame(rng, 300, "abc")
    current = normal_frame(rng, 300, "bcd")
    assert top_names(domain_classifier_drift(reference, current), 3) == {"b", "c"}
    only = domain_classifier_drift(reference, current, features=["c"])
    assert [name for name, _ in only.top_features] == ["c"]


def test_no_common_features() -> None:
    with pytest.raises(InvalidInput, match="no common features"):
        domain_classifier_drift({"a": np.zeros(20)}, {"b": np.zeros(20)})


def test_named_feature_missing() -> None:
    with pytest.raises(InvalidInput, match=r"missing from the current sample: \['b'\]"):
        domain_classifier_drift(
            {"a": np.zeros(20), "b": np.zeros(20)}, {"a": np.zeros(20)}, features=["a", "b"]
        )


def test_too_few_rows() -> None:
    with pytest.raises(InvalidInput, match="current sample has 9 rows; 5 folds need at least 10"):
        domain_classifier_drift({"a": np.zeros(20)}, {"a": np.zeros(9)})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"folds": 1}, "folds must be an integer >= 2"),
        ({"max_rows": 5}, "max_rows must be an integer >= 2 \\* folds"),
        ({"threshold": 0.4}, r"threshold must be an AUC in \[0.5, 1\)"),
        ({"alpha": 0.0}, r"alpha must be in \(0, 1\]"),
    ],
)
def test_bad_settings(settings: dict[str, float], message: str) -> None:
    data = {"a": np.zeros(20)}
    with pytest.raises(InvalidInput, match=message):
        domain_classifier_drift(data, data, **settings)  # type: ignore[arg-type]


def test_bad_containers() -> None:
    with pytest.raises(InvalidInput, match="must be a DataFrame or a mapping"):
        domain_classifier_drift([[1.0]], {"a": np.zeros(20)})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="1-D and of equal length"):
        domain_classifier_drift({"a": np.zeros(20), "b": np.zeros(5)}, {"a": np.zeros(20)})
