"""Data-quality findings on crafted windows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from watchkeeper.errors import InvalidInput
from watchkeeper.models.signature import ColumnSpec, Signature
from watchkeeper.monitoring.drift import count_window
from watchkeeper.monitoring.profile import profile_frame
from watchkeeper.monitoring.quality import QualityPolicy, check_quality

SIGNATURE = Signature(
    (
        ColumnSpec(name="age", dtype="int", min=0, max=120),
        ColumnSpec(name="income", dtype="float", nullable=True),
        ColumnSpec(name="plan", dtype="string", categories=("basic", "pro")),
    )
)


def reference():
    rng = np.random.default_rng(0)
    income = rng.normal(50, 10, 1000)
    income[::10] = np.nan  # 10% nulls in the reference
    return {
        "age": rng.integers(18, 90, 1000).astype(float),
        "income": income,
        "plan": rng.choice(["basic", "pro"], 1000),
    }


def findings(report, column):
    return {f.check: f for f in report.findings if f.column == column}


def test_a_clean_window_is_ok():
    report = check_quality(reference(), SIGNATURE, profile_frame(reference()))
    assert report.status == "ok"
    assert report.problems() == []
    assert findings(report, "income")["null_rate"].reference == pytest.approx(0.1)


def test_null_rate_is_judged_by_its_increase_over_the_reference():
    profile = profile_frame(reference())
    window = reference()
    window["income"][:200] = np.nan  # 10% -> about 28%
    found = findings(check_quality(window, SIGNATURE, profile), "income")["null_rate"]
    assert found.status == "warn"
    assert found.value == pytest.approx(0.28, abs=0.01)
    window["income"][:] = np.nan
    found = findings(check_quality(window, SIGNATURE, profile), "income")
    assert found["all_null"].status == "fail"


def test_out_of_range_and_unseen_categories():
    window = reference()
    window["age"][:30] = 150.0  # 3% out of range: warn
    window["plan"] = np.array(["enterprise"] * 100 + ["basic"] * 900, dtype=object)
    report = check_quality(window, SIGNATURE)
    assert findings(report, "age")["out_of_range"].status == "warn"
    assert findings(report, "age")["out_of_range"].value == pytest.approx(0.03)
    assert findings(report, "plan")["unseen_category"].status == "fail"
    assert report.status == "fail"


def test_missing_extra_and_mistyped_columns():
    window = reference()
    del window["income"]
    window["age"] = np.array(["young"] * 1000, dtype=object)
    window["surprise"] = np.zeros(1000)
    report = check_quality(window, SIGNATURE)
    checks = {(f.check, f.column): f.status for f in report.problems()}
    assert checks[("missing_column", "income")] == "fail"
    assert checks[("extra_column", "surprise")] == "warn"
    assert checks[("type", "age")] == "fail"


def test_constant_columns_and_row_count():
    window = pd.DataFrame({"age": [30.0] * 50, "income": [1.0] * 50, "plan": ["pro"] * 50})
    report = check_quality(window, SIGNATURE, profile_frame(reference()))
    assert findings(report, "age")["constant"].status == "warn"
    assert findings(report, "plan")["constant"].status == "warn"
    empty = check_quality({"age": [], "income": [], "plan": []}, SIGNATURE)
    assert findings(empty, None)["row_count"].status == "fail"


def test_report_is_json_serialisable_and_policy_is_checked():
    report = check_quality(reference(), SIGNATURE, policy=QualityPolicy(null_rate=(0.0, 0.05)))
    assert findings(report, "income")["null_rate"].status == "fail"  # no profile: reference 0
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False))["status"] == "fail"
    with pytest.raises(InvalidInput, match="warn <= fail"):
        QualityPolicy(unseen=(0.5, 0.1))
    with pytest.raises(InvalidInput, match="differ in length"):
        check_quality({"age": [1.0], "income": [1.0, 2.0]}, SIGNATURE)


def plan_cases():
    """Windows whose categorical column is judged from drift counts, or must be recounted."""
    rng = np.random.default_rng(3)
    pick = rng.choice(np.array(["basic", "pro", "new", "other"], dtype=object), size=1000)
    pick[::7] = None
    return {
        "clean": reference()["plan"],
        "unseen and nulls": pick,
        "constant": np.array(["pro"] * 1000, dtype=object),
        "one known, one unseen label": np.array(["pro", "new"] * 500, dtype=object),
        "only one unseen label": np.array(["new"] * 1000, dtype=object),
        "only unseen labels": np.array(["new", "newer"] * 500, dtype=object),
        "only nulls": np.array([None] * 1000, dtype=object),
    }


@pytest.mark.parametrize("case", sorted(plan_cases()))
@pytest.mark.parametrize(
    "signature",
    [
        SIGNATURE,  # known categories = the profile's
        Signature((ColumnSpec(name="plan", dtype="string", categories=("basic", "pro", "new")),)),
        Signature((ColumnSpec(name="plan", dtype="string"),)),  # known from the profile
    ],
)
@pytest.mark.parametrize("max_categories", [100, 1])  # 1: the profile folds "pro" into other
def test_drift_counts_give_the_same_findings_as_counting_again(case, signature, max_categories):
    profile = profile_frame(reference(), max_categories=max_categories)
    window = {**reference(), "plan": plan_cases()[case]}
    counts = count_window(profile, window)
    expected = check_quality(window, signature, profile).to_dict()
    assert check_quality(window, signature, profile, counts=counts).to_dict() == expected
    table = pa.table({k: pa.array(v, from_pandas=True) for k, v in window.items()})
    assert check_quality(table, signature, profile, counts=counts).to_dict() == expected
    assert check_quality(table, signature, profile).to_dict() == expected


def test_check_quality_on_an_arrow_table_equals_the_dataframe_result():
    frame = pd.DataFrame(reference())
    frame.loc[:99, "age"] = 150.0
    frame.loc[:199, "income"] = np.nan
    frame.loc[:49, "plan"] = "enterprise"
    frame.loc[50:59, "plan"] = None
    frame["surprise"] = 1
    profile = profile_frame(reference())
    expected = check_quality(frame, SIGNATURE, profile).to_dict()
    assert expected["status"] == "fail"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    assert check_quality(table, SIGNATURE, profile).to_dict() == expected
    assert check_quality(table.to_batches()[0], SIGNATURE, profile).to_dict() == expected
