"""Direct loss estimation: a regressor's MAE and RMSE estimated without labels (issue 19, item 7).

The regressor is a straight line fitted to ``y = a + 0.5 a**2 + b + 0.5 [c == "w"] + noise``
whose noise grows with ``|a|``; drift moves ``a`` (mean 0 -> 0.5 -> 1), so the line's error grows
(realised MAE about +50% at the largest shift). Tolerances on 4 000-row chunks: estimated MAE
within 10% of the realised value, RMSE within 15%. Over seeds 0-4 the MAE estimate was off by at
most 5% and the RMSE one by at most 9% (low, at the largest shift: RMSE is driven by the largest
errors, in the tail the reference saw least, and trees do not extrapolate).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm

from watchkeeper.errors import InvalidInput
from watchkeeper.monitoring.checks import Window, estimate_results
from watchkeeper.monitoring.loss_estimation import fit_loss_estimator

RELATIVE_TOLERANCE = {"mae": 0.10, "rmse": 0.15}
WINDOW = Window("m", 1, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))


def _data(rng, n, shift=0.0):
    x = pd.DataFrame({
        "a": rng.normal(shift, 1, n),
        "b": rng.normal(0, 1, n),
        "c": rng.choice(np.array(["u", "v", "w"], dtype=object), n),
    })  # fmt: skip
    noise = rng.normal(0, 0.3 + 0.3 * np.abs(x["a"].to_numpy()))
    y = x["a"] + 0.5 * x["a"] ** 2 + x["b"] + 0.5 * (x["c"] == "w") + noise
    return x, y.to_numpy()


def _line(x):
    """The regressor: least squares on the reference, refitted nowhere else."""
    return np.column_stack([np.ones(len(x)), x["a"], x["b"], x["c"] == "w"]).astype(float)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x, y = _data(rng, 8_000)
    coef, *_ = np.linalg.lstsq(_line(x), y, rcond=None)
    estimator = fit_loss_estimator(x, _line(x) @ coef, y)
    return rng, coef, estimator


def test_estimates_track_realised_errors_as_drift_grows(fitted):
    rng, coef, estimator = fitted
    realised_mae = []
    for shift in (0.0, 0.5, 1.0):
        x, y = _data(rng, 4_000, shift)
        pred = _line(x) @ coef
        estimate = estimator.estimate(x, pred, y_true=y)
        assert estimate["mae"].realised == pytest.approx(skm.mean_absolute_error(y, pred))
        assert estimate["rmse"].realised == pytest.approx(skm.root_mean_squared_error(y, pred))
        for name in ("mae", "rmse"):
            m = estimate[name]
            assert abs(m.error) <= RELATIVE_TOLERANCE[name] * m.realised, (shift, m)
        realised_mae.append(estimate["mae"].realised)
        found = {r.statistic: r for r in estimate_results(WINDOW, estimate, estimator.baselines)}
        assert found["mae"].threshold > estimator.baselines["mae"].value
        if shift == 0.0:  # a clean chunk: no alert
            assert [r for r in found.values() if r.status == "fail"] == []
        if shift == 1.0:  # realised MAE up by half: the estimates alert
            assert found["mae"].status == found["rmse"].status == "fail"
    assert realised_mae[-1] > 1.3 * realised_mae[0]  # the error really grows with drift


def test_baselines_are_the_realised_reference_errors(fitted):
    _, coef, estimator = fitted
    x, y = _data(np.random.default_rng(0), 8_000)  # the reference again
    pred = _line(x) @ coef
    assert estimator.baselines["mae"].value == pytest.approx(skm.mean_absolute_error(y, pred))
    assert estimator.baselines["rmse"].value == pytest.approx(skm.root_mean_squared_error(y, pred))
    assert estimator.baselines["mae"].direction == "lower"
    assert estimator.n == 8_000


def test_unseen_categories_and_missing_values_are_estimated_not_refused(fitted):
    rng, coef, estimator = fitted
    x, _ = _data(rng, 200)
    pred = _line(x) @ coef
    x.loc[:9, "c"] = "never-seen"
    x.loc[10:19, "a"] = np.nan
    estimate = estimator.estimate(x, pred)
    assert np.isfinite(estimate["mae"].estimated)
    assert estimate["mae"].realised is None


def test_invalid_inputs_are_refused(fitted):
    _, _, estimator = fitted
    x = pd.DataFrame({"a": [0.0, 1.0], "b": [0.0, 1.0], "c": ["u", "v"]})
    with pytest.raises(InvalidInput, match="2 feature rows but 3 predictions"):
        estimator.estimate(x, [1.0, 2.0, 3.0])
    with pytest.raises(InvalidInput, match="features missing for loss estimation: c"):
        estimator.estimate(x.drop(columns="c"), [1.0, 2.0])
    with pytest.raises(InvalidInput, match="at least 20 labelled rows"):
        fit_loss_estimator(x, [1.0, 2.0], [1.0, 2.0])
    with pytest.raises(InvalidInput, match="labels must be finite"):
        fit_loss_estimator(x, [1.0, 2.0], [1.0, np.nan])
