"""The batcher's model call: a forest asked for probabilities walks its trees once, and answers
exactly what its own ``predict`` and ``predict_proba`` give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from watchkeeper.models import load_model, save_model
from watchkeeper.serving.warmup import predict_fn


def _counting(loaded: Any) -> dict[str, int]:
    """Count the estimator's own calls behind a loaded model."""
    estimator = loaded._predictor.model
    calls = {"predict": 0, "predict_proba": 0}
    for name in calls:
        method = getattr(estimator, name)

        def counted(x: Any, _method: Any = method, _name: str = name) -> Any:
            calls[_name] += 1
            return _method(x)

        setattr(estimator, name, counted)
    return calls


def test_a_forest_gives_predictions_and_probabilities_in_one_pass(tmp_path: Path) -> None:
    X, y = make_classification(n_samples=400, n_features=6, n_classes=3, n_informative=4,
                               random_state=0)  # fmt: skip
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    save_model(forest, tmp_path / "rf", input_example=X[:50])
    loaded = load_model(tmp_path / "rf")
    calls = _counting(loaded)
    predictions, probabilities = predict_fn(loaded)(X[:64], True)
    assert calls == {"predict": 0, "predict_proba": 1}
    np.testing.assert_array_equal(predictions, forest.predict(X[:64]))
    assert probabilities is not None
    np.testing.assert_array_equal(probabilities, forest.predict_proba(X[:64]))
    predictions, probabilities = predict_fn(loaded)(X[:64], False)
    assert probabilities is None
    assert calls["predict"] == 1  # (a forest's predict calls its predict_proba itself)


def test_a_model_whose_predict_is_its_own_calls_both(tmp_path: Path) -> None:
    X, y = make_classification(n_samples=400, n_features=6, random_state=1)
    model = LogisticRegression(max_iter=500).fit(X, y)
    save_model(model, tmp_path / "lr", input_example=X[:50])
    loaded = load_model(tmp_path / "lr")
    calls = _counting(loaded)
    predictions, probabilities = predict_fn(loaded)(X[:64], True)
    assert calls == {"predict": 1, "predict_proba": 1}  # its predict is not an argmax by rule
    np.testing.assert_array_equal(predictions, model.predict(X[:64]))
    assert probabilities is not None
    np.testing.assert_array_equal(probabilities, model.predict_proba(X[:64]))
