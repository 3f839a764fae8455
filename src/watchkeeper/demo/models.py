"""The demo's models: the churn pipeline, and a broken release to be caught by the canary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from watchkeeper.demo.world import CONTRACTS, FEATURES


def churn_model(X: pd.DataFrame, y: Any) -> Pipeline:
    numeric = [f for f in FEATURES if f != "contract"]
    prepare = ColumnTransformer([
        ("numbers", StandardScaler(), numeric),
        ("contract", OneHotEncoder(categories=[list(CONTRACTS)]), ["contract"]),
    ])  # fmt: skip
    return Pipeline([("prepare", prepare), ("classify", LogisticRegression(max_iter=1000))]).fit(
        X[FEATURES], y
    )


class BrokenRelease:
    """A release with a bug: it crashes on two-year customers who called support twice or more
    (about one row in seven after the drift; a warm-up row does not hit it)."""

    def __init__(self, model: Pipeline) -> None:
        self.model = model

    def predict(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        if ((frame["contract"] == "two-year") & (frame["support_calls"] >= 2)).any():
            raise ValueError("support_calls overflow in the new contract encoder")
        return np.asarray(self.model.predict(frame[FEATURES]))
