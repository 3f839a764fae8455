"""``Registry.register`` gives every version the signature the information allows: an input
example (object or file), else the reference data, else what the model carries; else none."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pandas as pd
import pytest

from tests.models.helpers import row_sum
from watchkeeper.errors import InvalidInput
from watchkeeper.registry import Registry

Iris = tuple[pd.DataFrame, pd.Series]


def _columns(signature: dict | None) -> list[tuple[str, str]]:
    assert signature is not None
    return [(c["name"], c["dtype"]) for c in signature["columns"]]


def test_reference_data_with_a_target_column(
    registry: Registry, iris: Iris, iris_model, tmp_path: Path
) -> None:
    """A model file with Parquet training data holding the target: the signature is the model's
    inputs with the data's ranges, and the data is still profiled."""
    X, y = iris
    joblib.dump(iris_model, tmp_path / "lr.joblib")
    X.assign(species=y).to_parquet(tmp_path / "train.parquet")
    version = registry.register(
        "iris", tmp_path / "lr.joblib", reference_data=tmp_path / "train.parquet"
    )
    assert _columns(version.signature) == [(n, "float") for n in X.columns]
    assert version.signature["columns"][0]["min"] == X.iloc[:, 0].min()
    assert version.has_profile


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_input_example_file(
    registry: Registry, iris: Iris, iris_model, tmp_path: Path, suffix: str
) -> None:
    """An input example file is read by its extension and wins over the model's own types."""
    X, _ = iris
    example = (X.head(20) * 10).round().astype("int64")
    path = tmp_path / f"example{suffix}"
    if suffix == ".csv":
        example.to_csv(path, index=False)
    elif suffix == ".parquet":
        example.to_parquet(path)
    else:
        path.write_text(json.dumps(example.to_dict(orient="records")))
    version = registry.register("iris", iris_model, input_example=path)
    assert _columns(version.signature) == [(n, "int") for n in X.columns]


def test_input_example_file_errors(registry: Registry, iris_model, tmp_path: Path) -> None:
    """An unknown extension, a missing file or JSON of another shape is a one-line InvalidInput,
    and nothing is registered."""
    (tmp_path / "example.txt").write_text("a,b\n1,2\n")
    (tmp_path / "scalar.json").write_text("3")
    with pytest.raises(InvalidInput, match=r"expected a \.csv, \.parquet, \.json file, not \.txt"):
        registry.register("iris", iris_model, input_example=tmp_path / "example.txt")
    with pytest.raises(InvalidInput, match="does not exist"):
        registry.register("iris", iris_model, input_example=tmp_path / "missing.csv")
    with pytest.raises(InvalidInput, match="expected a list of records"):
        registry.register("iris", iris_model, input_example=tmp_path / "scalar.json")
    assert registry.list_models() == []


def test_disagreeing_example_registers_nothing(registry: Registry, iris: Iris, iris_model) -> None:
    """An example lacking one of the model's inputs is refused, naming it."""
    X, _ = iris
    with pytest.raises(InvalidInput, match="lacks the model's input.*petal_width"):
        registry.register("iris", iris_model, input_example=X.drop(columns="petal_width"))
    assert registry.list_models() == []


def test_model_signature_and_none(registry: Registry, iris: Iris, iris_model) -> None:
    """Without data, an estimator's feature_names_in_ are the signature; a plain function
    carries none and its version says so (signature None)."""
    X, _ = iris
    named = registry.register("iris", iris_model)
    assert _columns(named.signature) == [(n, "float") for n in X.columns]
    assert registry.register("sums", row_sum, flavor="python").signature is None
