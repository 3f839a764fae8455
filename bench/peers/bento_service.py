"""The BentoML side of ``bench/peers/run.py``: one model behind a BentoML 1.4 service.

Written the way BentoML's docs show a scikit-learn model served with adaptive batching: a
``@bentoml.service`` class (default: one worker) whose ``@bentoml.api(batchable=True)`` method
takes a NumPy array (one request's rows; the dispatcher stacks the rows of concurrent requests
along axis 0 and splits the answers back) and returns the model's ``predict`` on it. The batch
window and size are BentoML's defaults. Runs in the peer venv only:

    WK_PEER_MODEL=/path/lr.joblib bentoml serve bento_service:Classifier --port 3000

The request body is ``{"inputs": [[...20 floats...]]}`` (the method's parameter is named
``inputs``, so the body is the one MLflow and watchkeeper take); the answer is ``[1]``.
"""

from __future__ import annotations

import os

import bentoml  # type: ignore[import-not-found]  # only in the peer venv
import joblib
import numpy as np


@bentoml.service
class Classifier:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["WK_PEER_MODEL"])

    @bentoml.api(batchable=True)  # type: ignore[untyped-decorator]
    def predict(self, inputs: np.ndarray) -> np.ndarray:
        result: np.ndarray = self.model.predict(inputs)
        return result
