"""Labels that come back, matched to a classifier's classes whatever their type.

Labels arrive as strings, numbers or booleans. The logbook keeps numbers and booleans in one
float column (booleans as 0/1) and strings in another; predictions are logged the same way, and
a classifier's classes as their text (``str(c)``: ``"churned"``, ``"1"``, ``"1.0"``,
``"True"``). So a value matches a class by this rule:

* a **string** matches the class of that exact name; else, when it reads as a number or a
  boolean (``"1"``, ``" 2.0"``, ``"true"``), the class of that value;
* a **number** matches the class whose name reads as that number (``1`` matches ``"1"`` and
  ``"1.0"``); boolean class names read as 0 and 1 (``"False"``, ``"True"``, any case), so a
  label sent as JSON ``true`` matches the class ``True``.

A label that matches no class is one of two things. Of the classes' type (a word among word
classes, a number among number classes) it is a class the model never predicts: it scores as a
wrong prediction and joins the class list after the model's. Of a type no class can be (a word
among number or boolean classes, a number among word classes, any other value among booleans)
it is **mismatched**: it cannot be scored, is left out of the metrics and is counted, so the
monitor reports it instead of scoring nothing in silence.

>>> found = match_labels(["churned", "stayed", 1.0], ["churned", "churned", "stayed"],
...                      classes=["churned", "stayed"])
>>> found.y_true.tolist(), found.y_pred.tolist(), found.mismatched
(['churned', 'stayed'], ['churned', 'churned'], 1)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from watchkeeper.errors import InvalidInput

__all__ = ["MatchedLabels", "label_name", "match_labels", "numeric_labels", "sorted_classes"]

ObjectArray: TypeAlias = npt.NDArray[np.object_]
_BOOLEAN_NAMES = {"false": 0.0, "true": 1.0}


@dataclass(frozen=True)
class MatchedLabels:
    """Labelled rows as class names, ready for :func:`~watchkeeper.monitoring.performance.evaluate`.

    ``kept`` marks, among the rows given, those scored (labelled and not mismatched); ``y_true``
    and ``y_pred`` hold their class names. ``classes`` are the model's, in their order (the
    columns of its probabilities), then labels outside them; ``mismatched`` counts labelled
    rows whose label cannot be a class, ``example`` is the first of them.
    """

    y_true: ObjectArray
    y_pred: ObjectArray
    classes: tuple[str, ...]
    kept: npt.NDArray[np.bool_]
    model_classes: int
    mismatched: int = 0
    example: object = None

    def pad(self, proba: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Probabilities of the kept rows (columns in the model's class order) with a zero
        column for each class outside the model's."""
        matrix = np.asarray(proba, dtype=np.float64)[self.kept]
        extra = len(self.classes) - self.model_classes
        return np.pad(matrix, ((0, 0), (0, extra))) if extra else matrix

    def message(self) -> str:
        """One line on the mismatched labels ("" when none)."""
        if not self.mismatched:
            return ""
        shown = ", ".join(self.classes[: self.model_classes][:5])
        return (
            f"{self.mismatched} label(s) cannot match the model's classes ({shown}), e.g. "
            f"{self.example!r}: send labels of the type the model predicts"
        )


def label_name(value: object) -> str:
    """A label's text as the profile writes it: integral numbers without ``.0``.

    >>> label_name(1.0), label_name(2.5), label_name("a"), label_name(True)
    ('1', '2.5', 'a', 'True')
    """
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def sorted_classes(names: Iterable[str]) -> list[str]:
    """Class names in the order a classifier sorts its classes: by value when every name reads
    as a number (or all are booleans'), else as text; the last is the positive class of a
    binary one, as in scikit-learn.

    >>> sorted_classes(["10", "9", "1"]), sorted_classes(["True", "False"]), sorted_classes("ba")
    (['1', '9', '10'], ['False', 'True'], ['a', 'b'])
    """
    found = list(names)
    values = [_number(n) for n in found]
    if all(v is not None for v in values):
        return [n for _, n in sorted(zip(values, found, strict=True))]
    return sorted(found)


def _number(value: object) -> float | None:
    """The number a value stands for (booleans and their names as 0/1), or None."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _BOOLEAN_NAMES:
            return _BOOLEAN_NAMES[text]
        try:
            number = float(text)
        except ValueError:
            return None
    elif isinstance(value, bool | int | float | np.number | np.bool_):
        number = float(value)
    else:
        return None
    return number if math.isfinite(number) else None


Kind = Literal["bool", "number", "text"]


class _Classes:
    """Class names and how values find them."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        if len(set(self.names)) != len(self.names):
            raise InvalidInput(f"the model's classes repeat: {self.names}")
        self.by_name = set(self.names)
        self.by_value: dict[float, str] = {}
        for name in self.names:
            number = _number(name)
            if number is not None:
                self.by_value.setdefault(number, name)
        self.kind: Kind = "text"
        if self.names and all(n.strip().lower() in _BOOLEAN_NAMES for n in self.names):
            self.kind = "bool"
        elif self.names and len(self.by_value) == len(self.names):
            self.kind = "number"

    def find(self, value: object) -> str | None:
        if isinstance(value, str) and value in self.by_name:
            return value
        number = _number(value)
        return None if number is None else self.by_value.get(number)

    def fits(self, value: object) -> bool:
        """Whether a value no class matched is of the classes' type (an unknown class)."""
        if self.kind == "bool":
            return False
        if self.kind == "number":
            return _number(value) is not None
        return isinstance(value, str)


def match_labels(
    labels: Sequence[object] | npt.NDArray[Any],
    predictions: Sequence[object] | npt.NDArray[Any],
    *,
    classes: Sequence[str] | None = None,
) -> MatchedLabels:
    """Match labels and predictions (strings, numbers or booleans; None: no label) to the
    model's ``classes`` (module docstring). Without ``classes``, the distinct predictions are
    the classes."""
    truth = np.asarray(labels, dtype=object)
    guessed = np.asarray(predictions, dtype=object)
    if truth.shape != guessed.shape or truth.ndim != 1:
        raise InvalidInput(f"{truth.size} labels but {guessed.size} predictions")
    if classes is None:
        classes = sorted_classes({label_name(p) for p in guessed.tolist() if p is not None})
    known = _Classes(classes)
    extra: dict[str, None] = {}
    kept = np.zeros(truth.size, dtype=bool)
    y_true: list[str] = []
    y_pred: list[str] = []
    mismatched, example = 0, None
    cache: dict[tuple[type, object], str | None] = {}
    for i, (label, predicted) in enumerate(zip(truth.tolist(), guessed.tolist(), strict=True)):
        if label is None or predicted is None:
            continue
        key = (type(label), label)
        if key not in cache:
            name = known.find(label)
            cache[key] = name if name is not None or not known.fits(label) else label_name(label)
        name = cache[key]
        if name is None:
            mismatched += 1
            example = label if example is None else example
            continue
        kept[i] = True
        y_true.append(name)
        y_pred.append(known.find(predicted) or label_name(predicted))
    for name in (*y_true, *y_pred):
        if name not in known.by_name:
            extra.setdefault(name)
    return MatchedLabels(
        y_true=np.array(y_true, dtype=object),
        y_pred=np.array(y_pred, dtype=object),
        classes=(*known.names, *sorted(extra)),
        kept=kept,
        model_classes=len(known.names),
        mismatched=mismatched,
        example=example,
    )


def numeric_labels(labels: Sequence[object] | npt.NDArray[Any]) -> tuple[
    npt.NDArray[np.float64], int, object
]:  # fmt: skip
    """Labels of a regression as numbers (NaN where none), how many could not be read as
    numbers, and the first of those.

    >>> numeric_labels([1.5, "2", None, "high"])
    (array([1.5, 2. , nan, nan]), 1, 'high')
    """
    out = np.full(len(labels), np.nan)
    bad, example = 0, None
    for i, label in enumerate(np.asarray(labels, dtype=object).tolist()):
        if label is None:
            continue
        number = _number(label)
        if number is None or isinstance(label, str) and label.strip().lower() in _BOOLEAN_NAMES:
            bad += 1
            example = label if example is None else example
            continue
        out[i] = number
    return out, bad, example
