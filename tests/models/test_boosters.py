"""LightGBM and XGBoost: scikit-learn wrappers and raw boosters, saved in native formats."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

from watchkeeper.errors import InvalidInput
from watchkeeper.models import load_model, save_model


@pytest.fixture(scope="module")
def lgb_binary(cancer) -> lgb.LGBMClassifier:
    X, y = cancer
    return lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y)


@pytest.fixture(scope="module")
def xgb_binary(cancer) -> xgb.XGBClassifier:
    X, y = cancer
    return xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y)


def _check_same(tmp_path: Path, model, X, *, proba: bool = True) -> None:
    loaded = load_model(tmp_path)
    for batch in (X, X.to_numpy(), {c: X[c].to_numpy() for c in X.columns}):
        np.testing.assert_array_equal(loaded.predict(batch), model.predict(X))
        if proba:
            np.testing.assert_array_equal(loaded.predict_proba(batch), model.predict_proba(X))


def test_lightgbm_binary_classifier(tmp_path: Path, lgb_binary, cancer) -> None:
    X, _ = cancer
    manifest = save_model(lgb_binary, tmp_path / "m", input_example=X)
    assert manifest.flavor == "lightgbm"
    assert manifest.files.keys() == {"model.txt"}
    assert manifest.options["objective"] == "binary"
    assert manifest.options["classes"] == [0, 1]
    assert "lightgbm" in manifest.library_versions
    _check_same(tmp_path / "m", lgb_binary, X)
    assert load_model(tmp_path / "m").predict_proba(X).shape == (len(X), 2)


def test_lightgbm_multiclass_with_string_labels(tmp_path: Path, iris) -> None:
    X, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, labels)
    save_model(model, tmp_path / "m", input_example=X)
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.classes, model.classes_)
    _check_same(tmp_path / "m", model, X)


def test_lightgbm_regressor(tmp_path: Path, diabetes) -> None:
    X, y = diabetes
    model = lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(X, y)
    save_model(model, tmp_path / "m", input_example=X)
    assert not load_model(tmp_path / "m").has_proba
    _check_same(tmp_path / "m", model, X, proba=False)


def test_lightgbm_raw_boosters(tmp_path: Path, cancer, diabetes) -> None:
    X, y = cancer
    binary = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), 5)
    save_model(binary, tmp_path / "b", input_example=X)  # LightGBM stored "mean_radius"
    loaded = load_model(tmp_path / "b")
    p = binary.predict(X.to_numpy())
    np.testing.assert_array_equal(loaded.predict_proba(X), np.column_stack([1 - p, p]))
    np.testing.assert_array_equal(loaded.predict(X), (p > 0.5).astype(int))
    np.testing.assert_array_equal(loaded.classes, [0, 1])

    Xr, yr = diabetes
    regression = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(Xr, yr), 5)
    save_model(regression, tmp_path / "r")
    loaded = load_model(tmp_path / "r")
    assert not loaded.has_proba
    np.testing.assert_array_equal(loaded.predict(Xr.to_numpy()), regression.predict(Xr.to_numpy()))


def test_lightgbm_unfitted_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not fitted"):
        save_model(lgb.LGBMClassifier(), tmp_path / "m")


@pytest.mark.parametrize(
    ("serialization", "model_file"), [(None, "model.ubj"), ("json", "model.json")]
)
def test_xgboost_binary_classifier(
    tmp_path: Path, xgb_binary, cancer, serialization: str | None, model_file: str
) -> None:
    X, _ = cancer
    manifest = save_model(xgb_binary, tmp_path / "m", input_example=X, serialization=serialization)
    assert manifest.flavor == "xgboost"
    assert manifest.files.keys() == {model_file}
    assert manifest.options["model_class"] == "XGBClassifier"
    assert manifest.options["classes"] == [0, 1]
    # recorded whichever build is installed (xgboost, xgboost-cpu...): compared at load
    assert manifest.library_versions["xgboost"] == xgb.__version__
    _check_same(tmp_path / "m", xgb_binary, X)


def test_xgboost_regressor(tmp_path: Path, diabetes) -> None:
    X, y = diabetes
    model = xgb.XGBRegressor(n_estimators=10, max_depth=3).fit(X, y)
    save_model(model, tmp_path / "m", input_example=X)
    loaded = load_model(tmp_path / "m")
    assert not loaded.has_proba
    _check_same(tmp_path / "m", model, X, proba=False)


def test_xgboost_raw_boosters(tmp_path: Path, iris, diabetes) -> None:
    X, y = iris
    softprob = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 2}, xgb.DMatrix(X, y), 5
    )
    save_model(softprob, tmp_path / "s", input_example=X)
    loaded = load_model(tmp_path / "s")
    expected = softprob.inplace_predict(X.to_numpy())
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    np.testing.assert_array_equal(loaded.predict(X.to_numpy()), expected.argmax(axis=1))
    np.testing.assert_array_equal(loaded.classes, [0, 1, 2])

    Xr, yr = diabetes
    regression = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(Xr, yr), 5)
    save_model(regression, tmp_path / "r")
    loaded = load_model(tmp_path / "r")
    assert not loaded.has_proba
    np.testing.assert_array_equal(
        loaded.predict(Xr.to_numpy()), regression.inplace_predict(Xr.to_numpy())
    )


def test_xgboost_rejects_unknown_serialization(tmp_path: Path, xgb_binary) -> None:
    with pytest.raises(InvalidInput, match="not 'skops'"):
        save_model(xgb_binary, tmp_path / "m", serialization="skops")
