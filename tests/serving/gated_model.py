"""A model that says when a call is inside it, to have gRPC calls in flight at SIGTERM without
guessing how long the machine takes to get them there."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

GATE = 42.0  # the row value at which the model says it started


class GatedModel:
    """Answers 2·x; a row with x == GATE first writes the file named by ``WK_TEST_STARTED``,
    then takes ``delay`` seconds."""

    delay = 2.0

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        x = X["x"].to_numpy(dtype=float)
        if (x == GATE).any():
            Path(os.environ["WK_TEST_STARTED"]).write_text("started")
            time.sleep(self.delay)
        return x * 2
