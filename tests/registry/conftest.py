from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from watchkeeper.config import Settings
from watchkeeper.registry import Registry


@pytest.fixture(scope="session")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in X.columns]
    return X, y


@pytest.fixture(scope="session")
def iris_model(iris: tuple[pd.DataFrame, pd.Series]) -> LogisticRegression:
    X, y = iris
    return LogisticRegression(max_iter=1000).fit(X, y)


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    with Registry(settings) as reg:
        yield reg
