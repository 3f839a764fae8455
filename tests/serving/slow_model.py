"""A model that takes its time, to have requests in flight when the server is stopped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

# a folder where each call marks the rows it started on (a file per value of the first column),
# so a test can tell when requests are inside the model without assuming how fast the server is
STARTED_DIR = "WATCHKEEPER_TEST_SLOW_STARTED"


class SlowModel:
    delay = 1.0

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        started = os.environ.get(STARTED_DIR)
        if started:
            for value in X.iloc[:, 0]:
                Path(started, f"{value:g}").touch()
        time.sleep(self.delay)
        return np.asarray(X.iloc[:, 0]) * 2
