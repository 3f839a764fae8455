from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.models.helpers import ThresholdModel
from watchkeeper.errors import InvalidInput, UnreadableModel
from watchkeeper.models import load_model, save_model

FRAME = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [10.0, 20.0, 30.0]})


def test_cloudpickled_lambda(tmp_path: Path) -> None:
    offset = 0.5
    manifest = save_model(lambda df: df["a"] * 2 + offset, tmp_path / "m", input_example=FRAME)
    assert manifest.flavor == "python"
    assert manifest.options["kind"] == "callable"
    assert manifest.files.keys() == {"model.pkl"}
    loaded = load_model(tmp_path / "m")
    assert not loaded.has_proba
    for batch in (FRAME, FRAME.to_numpy(), {"b": [10, 20, 30], "a": [1.0, 2.0, 3.0]}):
        out = loaded.predict(batch)
        assert isinstance(out, np.ndarray)
        np.testing.assert_array_equal(out, [2.5, 4.5, 6.5])


def test_cloudpickled_object_with_proba(tmp_path: Path) -> None:
    model = ThresholdModel("b", 15.0)
    manifest = save_model(model, tmp_path / "m", input_example=FRAME)
    assert manifest.options["has_proba"] is True
    assert manifest.options["classes"] == ["low", "high"]
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.classes, ["low", "high"])
    np.testing.assert_array_equal(loaded.predict(FRAME), ["low", "high", "high"])
    np.testing.assert_array_equal(
        loaded.predict_proba(FRAME.to_numpy()), model.predict_proba(FRAME)
    )


@pytest.mark.parametrize(
    ("import_path", "expected"),
    [
        ("tests.models.helpers:Doubler", [2.0, 4.0, 6.0]),
        ("tests.models.helpers:DOUBLER", [2.0, 4.0, 6.0]),
        ("tests.models.helpers:row_sum", [11.0, 22.0, 33.0]),
    ],
)
def test_import_path(tmp_path: Path, import_path: str, expected: list[float]) -> None:
    manifest = save_model(None, tmp_path / "m", import_path=import_path, input_example=FRAME)
    assert manifest.flavor == "python"
    assert manifest.options["import_path"] == import_path
    assert manifest.files == {}
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(FRAME), expected)


@pytest.mark.parametrize(
    ("import_path", "error", "message"),
    [
        ("tests.models.helpers", InvalidInput, "not of the form"),
        ("tests.models.nowhere:Model", UnreadableModel, "cannot import"),
        ("tests.models.helpers:Missing", UnreadableModel, "cannot import"),
        ("tests.models.helpers:NeedsArguments", UnreadableModel, "without arguments"),
        ("tests.models.helpers:NOT_A_MODEL", InvalidInput, "not callable"),
    ],
)
def test_bad_import_paths(tmp_path: Path, import_path: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        save_model(None, tmp_path / "m", import_path=import_path)
    assert not (tmp_path / "m").exists()


def test_import_path_excludes_a_model_object(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not both"):
        save_model(
            ThresholdModel("a", 1.0), tmp_path / "m", import_path="tests.models.helpers:Doubler"
        )
    with pytest.raises(InvalidInput, match="python-flavor"):
        save_model(
            None, tmp_path / "m", import_path="tests.models.helpers:Doubler", flavor="sklearn"
        )


class _Locked:
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(frame))


def test_unpicklable_object_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot pickle"):
        save_model(_Locked(), tmp_path / "m")
    assert list(tmp_path.iterdir()) == []
