"""Data-quality findings on crafted windows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from watchkeeper.errors import InvalidInput
from watchkeeper.models.signature import ColumnSpec, Signature
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
