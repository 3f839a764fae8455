"""A model that takes its time, to have requests in flight when the server is stopped."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd


class SlowModel:
    delay = 1.0

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        time.sleep(self.delay)
        return np.asarray(X.iloc[:, 0]) * 2
