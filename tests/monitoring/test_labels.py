"""Labels of any type matched to a classifier's classes (issue 19, item 4), and boolean
categories counted from 0/1 numbers (item 3): checked against scikit-learn and worked examples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from watchkeeper.monitoring.drift import count_categories
from watchkeeper.monitoring.labels import (
    label_name,
    match_labels,
    numeric_labels,
    sorted_classes,
)
from watchkeeper.monitoring.performance import evaluate
from watchkeeper.monitoring.profile import category_counts, profile_categorical

RNG = np.random.default_rng(19)


def _stored(values: np.ndarray) -> list[object]:
    """Values as the logbook gives them back: strings as text, numbers and booleans as floats."""
    return [v if isinstance(v, str) else float(v) for v in values.tolist()]


@pytest.mark.parametrize(
    "classes",
    [
        np.array(["churned", "stayed"]),
        np.array([False, True]),
        np.array([0, 1, 2]),
        np.array([0.0, 1.0]),
    ],
    ids=["strings", "booleans", "integers", "floats"],
)
def test_labels_of_the_type_the_model_predicts_score_as_scikit_learn_does(classes) -> None:
    y_true = RNG.choice(classes, size=400)
    y_pred = np.where(RNG.random(400) < 0.7, y_true, RNG.choice(classes, size=400))
    names = [str(c) for c in classes.tolist()]  # how serving logs a classifier's classes
    found = match_labels(_stored(y_true), _stored(y_pred), classes=names)
    assert found.mismatched == 0
    assert found.kept.all()
    report = evaluate("classification", found.y_true, found.y_pred, classes=found.classes,
                      n_boot=0)  # fmt: skip
    assert report["accuracy"].value == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    binary = len(classes) == 2
    if binary:
        expected = f1_score(y_true, y_pred, pos_label=classes[-1])
    else:
        expected = f1_score(y_true, y_pred, average="macro")
    key = "f1" if binary else "f1_macro"
    assert report[key].value == pytest.approx(expected, abs=1e-12)


def test_labels_sent_as_text_or_json_booleans_find_their_class() -> None:
    found = match_labels(["True", "false", 1.0, "1", " 2.0", "churned"],
                         [True, 0.0, 1.0, 1.0, 2.0, 1.0], classes=["0", "1", "2"])  # fmt: skip
    assert found.y_true.tolist() == ["1", "0", "1", "1", "2"]
    assert found.mismatched == 1
    assert found.example == "churned"
    booleans = match_labels([1.0, 0.0, "TRUE"], [1.0, 1.0, 0.0], classes=["False", "True"])
    assert booleans.y_true.tolist() == ["True", "False", "True"]
    assert booleans.y_pred.tolist() == ["True", "True", "False"]


def test_a_label_of_a_type_no_class_can_be_is_counted_not_scored() -> None:
    found = match_labels([1.0, 0.0, "stayed", None], ["churned", "stayed", "stayed", "stayed"],
                         classes=["churned", "stayed"])  # fmt: skip
    assert found.mismatched == 2
    assert found.example == 1.0
    assert found.kept.tolist() == [False, False, True, False]
    assert "cannot match the model's classes (churned, stayed)" in found.message()
    assert match_labels([2.0], [1.0], classes=["False", "True"]).mismatched == 1


def test_an_unknown_class_of_the_right_type_scores_as_a_miss_and_pads_probabilities() -> None:
    found = match_labels(["churned", "paused", "stayed"], ["churned", "stayed", "stayed"],
                         classes=["churned", "stayed"])  # fmt: skip
    assert found.mismatched == 0
    assert found.classes == ("churned", "stayed", "paused")
    report = evaluate("classification", found.y_true, found.y_pred, classes=found.classes,
                      n_boot=0)  # fmt: skip
    assert report["accuracy"].value == pytest.approx(2 / 3)
    padded = found.pad([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    assert padded.tolist() == [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.4, 0.6, 0.0]]


def test_without_classes_the_predictions_give_them_in_a_classifier_order() -> None:
    found = match_labels([10.0, 9.0], [9.0, 10.0])
    assert found.classes == ("9", "10")
    assert sorted_classes(["b", "a", "10"]) == ["10", "a", "b"]
    assert [label_name(v) for v in (3.0, 0.5, "x", False)] == ["3", "0.5", "x", "False"]


def test_regression_labels_are_read_as_numbers_and_words_are_counted() -> None:
    values, bad, example = numeric_labels([2.5, "3", None, "tall", "true"])
    np.testing.assert_array_equal(values, [2.5, 3.0, np.nan, np.nan, np.nan])
    assert (bad, example) == (2, "tall")


def test_boolean_categories_count_zero_and_one_as_false_and_true() -> None:
    reference = profile_categorical(np.array([True, False, True, True]))
    assert reference.frequencies == {"True": 3, "False": 1}
    served = np.array([1.0, 0.0, 1.0, np.nan, 2.0])  # as serving hands bool features on
    counts, unseen = category_counts(served, list(reference.frequencies))
    assert counts.tolist() == [2, 1]
    assert unseen == 1  # 2 is no boolean
    binned = count_categories(served, list(reference.frequencies))
    assert binned.counts.tolist() == [2, 1, 1]
    assert binned.nulls == 1
    # numeric categories are left alone: 1 is "1", not "True"
    assert category_counts(np.array([1.0, 1.0]), ["1", "True"])[0].tolist() == [2, 0]
