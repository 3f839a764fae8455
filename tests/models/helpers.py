"""Small importable things the model tests need (import paths, custom types, pickles)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.preprocessing import StandardScaler


class Doubler:
    """A python-flavor model built by import path (no-argument constructor)."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return frame.iloc[:, 0].to_numpy() * 2


class NeedsArguments:
    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return frame.iloc[:, 0].to_numpy() * self.factor


def row_sum(frame: pd.DataFrame) -> np.ndarray:
    return frame.sum(axis=1).to_numpy()


DOUBLER = Doubler()
NOT_A_MODEL = 42


class ThresholdModel:
    """A python-flavor classifier with predict_proba and classes_."""

    classes_ = np.array(["low", "high"])

    def __init__(self, column: str, threshold: float) -> None:
        self.column = column
        self.threshold = threshold

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = (frame[self.column].to_numpy() > self.threshold).astype(float) * 0.8 + 0.1
        return np.column_stack([1 - p, p])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(frame).argmax(axis=1)]


class CustomScaler(StandardScaler):
    """A scikit-learn subclass outside sklearn: skops does not trust it automatically."""


class TouchOnUnpickle:
    """Unpickling this creates ``marker``: proves whether a pickle was deserialized."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def write_mlmodel(
    directory: Path,
    flavors: dict[str, Any],
    *,
    inputs: list[dict[str, Any]] | None = None,
) -> Path:
    """Write an ``MLmodel`` file the way MLflow does, plus its environment files."""
    directory.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "artifact_path": "model",
        "flavors": flavors,
        "mlflow_version": "2.16.2",
        "model_size_bytes": 1234,
        "model_uuid": "5c7a2f0e1d9b4f3aa6c1e2d3f4a5b6c7",
        "run_id": "0123456789abcdef0123456789abcdef",
        "utc_time_created": "2024-09-01 12:00:00.000000",
    }
    if inputs is not None:
        document["signature"] = {
            "inputs": json.dumps(inputs),
            "outputs": json.dumps([{"type": "long", "required": True}]),
            "params": None,
        }
    (directory / "MLmodel").write_text(yaml.safe_dump(document, sort_keys=True))
    (directory / "conda.yaml").write_text("name: mlflow-env\ndependencies:\n- python=3.11\n")
    (directory / "python_env.yaml").write_text("python: 3.11\n")
    (directory / "requirements.txt").write_text("mlflow==2.16.2\n")
    return directory


def pyfunc(loader: str, data_key: str, data: str) -> dict[str, Any]:
    return {
        "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
        "loader_module": loader,
        data_key: data,
        "python_version": "3.11.7",
    }
