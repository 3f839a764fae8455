"""Datasets and fitted models shared by the model tests (fitted once per session)."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from skl2onnx import to_onnx
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.models.helpers import ThresholdModel


@pytest.fixture(scope="session")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def diabetes() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def mixed(iris: tuple[pd.DataFrame, pd.Series]) -> tuple[pd.DataFrame, pd.Series]:
    """Iris plus a string column (pandas 3 ``str`` dtype)."""
    X, y = iris
    frame = X.copy()
    frame["kind"] = pd.Series(np.where(X["sepal width (cm)"] > 3.0, "wide", "narrow"), dtype=str)
    return frame, y


@pytest.fixture(scope="session")
def logreg(iris: tuple[pd.DataFrame, pd.Series]) -> LogisticRegression:
    X, y = iris
    return LogisticRegression(max_iter=500).fit(X, y)


@pytest.fixture(scope="session")
def forest(iris: tuple[pd.DataFrame, pd.Series]) -> RandomForestClassifier:
    X, y = iris
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)


@pytest.fixture(scope="session")
def array_forest(iris: tuple[pd.DataFrame, pd.Series]) -> RandomForestClassifier:
    """Fitted on a bare ndarray: has no feature names."""
    X, y = iris
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(X.to_numpy(), y)


@pytest.fixture(scope="session")
def pipeline(mixed: tuple[pd.DataFrame, pd.Series]) -> Any:
    X, y = mixed
    numeric = [c for c in X.columns if c != "kind"]
    columns = ColumnTransformer(
        [
            ("num", StandardScaler(), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["kind"]),
        ]
    )
    return make_pipeline(columns, LogisticRegression(max_iter=500)).fit(X, y)


@pytest.fixture(scope="session")
def models(iris: tuple[pd.DataFrame, pd.Series]) -> dict[str, Any]:
    """One fitted model of every kind flavor detection distinguishes."""
    X, y = iris
    X32 = X.to_numpy(np.float32)
    return {
        "lgbm wrapper": lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y),
        "lgbm booster": lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(X, y), 3),
        "xgb wrapper": xgb.XGBRegressor(n_estimators=3).fit(X, y),
        "xgb booster": xgb.train({}, xgb.DMatrix(X, y), 3),
        "onnx proto": to_onnx(LogisticRegression(max_iter=500).fit(X32, y), X32[:1]),
        "sklearn": LogisticRegression(max_iter=500).fit(X, y),
        "python object": ThresholdModel("sepal length (cm)", 5.0),
        "python function": lambda frame: frame.sum(axis=1),
    }
