"""Candidate models that go wrong in one way each, for the rollout end-to-end tests.

Registered by reference (cloudpickle pickles an importable class by name), so a server process
loads them when ``tests`` is importable there (``PYTHONPATH`` = the repository root).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd


class Flaky:
    """Answers like ``inner`` but raises on inputs whose ``f0`` exceeds ``limit`` (~10%)."""

    def __init__(self, inner: Any, limit: float) -> None:
        self.inner = inner
        self.limit = limit
        self.classes_ = inner.classes_

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if (X["f0"] > self.limit).any():
            raise ValueError("flaky model: f0 out of the range it handles")
        return np.asarray(self.inner.predict(X))


class Slow:
    """Answers like ``inner``, ``delay`` seconds later on every call."""

    def __init__(self, inner: Any, delay: float = 0.03) -> None:
        self.inner = inner
        self.delay = delay
        self.classes_ = inner.classes_

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        time.sleep(self.delay)
        return np.asarray(self.inner.predict(X))


class Unwarmable:
    """Registers fine (nothing calls it then) but raises on every call: its warm-up fails."""

    def __init__(self, inner: Any) -> None:
        self.classes_ = inner.classes_

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("this model cannot answer anything")
