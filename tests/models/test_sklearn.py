from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

from tests.models.helpers import CustomScaler
from watchkeeper.errors import InvalidInput, UnreadableModel
from watchkeeper.models import load_model, save_model
from watchkeeper.models.flavors._skops import is_auto_trusted


@pytest.mark.parametrize(
    ("serialization", "model_file"),
    [("skops", "model.skops"), ("joblib", "model.joblib"), ("pickle", "model.pkl")],
)
def test_round_trip_each_serialization(
    tmp_path: Path, logreg, iris, serialization: str, model_file: str
) -> None:
    X, _ = iris
    manifest = save_model(logreg, tmp_path / "m", input_example=X, serialization=serialization)
    assert manifest.flavor == "sklearn"
    assert manifest.options["serialization"] == serialization
    assert set(manifest.files) == {model_file}
    assert manifest.options["has_proba"] is True
    assert manifest.options["classes"] == [0, 1, 2]
    assert "scikit-learn" in manifest.library_versions
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), logreg.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), logreg.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes, [0, 1, 2])


def test_random_forest_with_tree_type_loads_from_skops(tmp_path: Path, forest, iris) -> None:
    X, _ = iris
    save_model(forest, tmp_path / "rf", input_example=X)
    loaded = load_model(tmp_path / "rf")
    np.testing.assert_array_equal(loaded.predict_proba(X), forest.predict_proba(X))


def test_pipeline_with_string_column_gives_same_results_for_every_batch_form(
    tmp_path: Path, pipeline, mixed
) -> None:
    X, _ = mixed
    save_model(pipeline, tmp_path / "p", input_example=X)
    loaded = load_model(tmp_path / "p")
    expected = pipeline.predict_proba(X)
    batches = {
        "frame": X,
        "reordered frame": X[X.columns[::-1]],
        "dict of arrays": {c: X[c].to_numpy() for c in X.columns},
        "dict of lists": {c: X[c].tolist() for c in X.columns},
        "object array": X.to_numpy(dtype=object),
    }
    for form, batch in batches.items():
        np.testing.assert_array_equal(loaded.predict_proba(batch), expected, err_msg=form)
        np.testing.assert_array_equal(loaded.predict(batch), pipeline.predict(X), err_msg=form)


def test_frame_fitted_model_takes_arrays_without_warning(tmp_path: Path, forest, iris) -> None:
    X, _ = iris
    save_model(forest, tmp_path / "rf")  # no signature: the model's feature names are used
    loaded = load_model(tmp_path / "rf")
    assert loaded.input_names == list(X.columns)
    # warnings are errors in this suite: "X does not have valid feature names" would fail it
    np.testing.assert_array_equal(loaded.predict(X.to_numpy()), forest.predict(X))


def test_array_fitted_model_takes_frames_without_warning(
    tmp_path: Path, array_forest, iris
) -> None:
    X, _ = iris
    save_model(array_forest, tmp_path / "rf", input_example=X)
    loaded = load_model(tmp_path / "rf")
    expected = array_forest.predict(X.to_numpy())
    np.testing.assert_array_equal(loaded.predict(X), expected)
    np.testing.assert_array_equal(loaded.predict({c: X[c] for c in X.columns}), expected)
    np.testing.assert_array_equal(loaded.predict(X.to_numpy()), expected)


def test_regressor_has_no_proba(tmp_path: Path, diabetes) -> None:
    X, y = diabetes
    model = LinearRegression().fit(X, y)
    save_model(model, tmp_path / "r", input_example=X)
    loaded = load_model(tmp_path / "r")
    assert not loaded.has_proba
    assert loaded.classes is None
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    with pytest.raises(InvalidInput, match="has no predict_proba"):
        loaded.predict_proba(X)


def test_svc_without_probability_has_no_proba(tmp_path: Path, iris) -> None:
    X, y = iris
    save_model(SVC().fit(X, y), tmp_path / "svc")
    assert load_model(tmp_path / "svc").has_proba is False


def test_unknown_serialization_is_refused(tmp_path: Path, logreg) -> None:
    with pytest.raises(InvalidInput, match="not 'yaml'"):
        save_model(logreg, tmp_path / "m", serialization="yaml")
    assert not (tmp_path / "m").exists()


def test_untrusted_skops_type_needs_trusted_types(
    tmp_path: Path, iris, caplog: pytest.LogCaptureFixture
) -> None:
    X, y = iris
    model = make_pipeline(CustomScaler(), SVC()).fit(X, y)
    with caplog.at_level(logging.WARNING, logger="watchkeeper.models"):
        save_model(model, tmp_path / "m")
    assert "tests.models.helpers.CustomScaler" in caplog.text
    with pytest.raises(UnreadableModel, match=r"helpers\.CustomScaler.*trusted_types=") as info:
        load_model(tmp_path / "m")
    assert "model.skops" in info.value.message
    loaded = load_model(tmp_path / "m", trusted_types=["tests.models.helpers.CustomScaler"])
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize(
    ("name", "trusted"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("numpy.dtype", True),
        ("sklearn.linear_model._logistic.LogisticRegression", True),
        ("sklearn.utils._bunch.Bunch", True),
        ("numpy.testing._private.utils.runstring", False),
        ("numpy.testing._private.utils.assert_equal", False),
        ("sklearn.utils.validation.check_array", False),
        ("scipy.sparse._csr.csr_matrix", False),
        ("builtins.eval", False),
        ("builtins.exec", False),
        ("collections.namedtuple", False),
        ("mypackage.MyModel", False),
        ("sklearnx.Model", False),
    ],
)
def test_auto_trust_is_a_list_of_named_classes_never_a_module_prefix(
    name: str, trusted: bool
) -> None:
    """Only named data-holding classes are trusted without the user naming them."""
    assert is_auto_trusted(name) is trusted


def test_corrupt_model_file_with_verify_off_is_unreadable(tmp_path: Path, logreg) -> None:
    save_model(logreg, tmp_path / "m", serialization="pickle")
    (tmp_path / "m" / "model.pkl").write_bytes(pickle.dumps("not a model")[:5])
    with pytest.raises(UnreadableModel, match=r"model\.pkl as a pickle scikit-learn model"):
        load_model(tmp_path / "m", verify=False)


def test_multi_column_frame_output_is_numpy(tmp_path: Path, iris) -> None:
    X, _ = iris
    targets = pd.DataFrame({"a": X.iloc[:, 0] * 2, "b": X.iloc[:, 1] + 1})
    model = LinearRegression().fit(X, targets)
    save_model(model, tmp_path / "m", input_example=X)
    out = load_model(tmp_path / "m").predict(X)
    assert isinstance(out, np.ndarray)
    assert out.shape == (len(X), 2)
