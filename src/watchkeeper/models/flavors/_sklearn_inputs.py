"""What a fitted scikit-learn estimator knows of its inputs (the ``model_inputs`` option).

Names come from ``feature_names_in_``; without them ``n_features_in_`` gives unnamed columns
``f0 .. f{n-1}``. Every column is ``float``, except those an encoder (anything with
``categories_``: ``OneHotEncoder``, ``OrdinalEncoder``, ``TargetEncoder``) at the start of the
model, alone or inside a ``ColumnTransformer``, was fitted on as strings: those are ``string``.
Columns are nullable unless NaN reaches a step that refuses it (scikit-learn's own
``allow_nan`` tag) before an imputer or encoder fills it in (see ``_nan_handling``).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from watchkeeper.models.inputs import carried_option
from watchkeeper.models.signature import ColumnType

NanHandling = Literal["fills", "passes", "refuses"]


def model_inputs(model: Any) -> dict[str, Any] | None:
    names = getattr(model, "feature_names_in_", None)
    count = getattr(model, "n_features_in_", None)
    if names is not None:
        labels: list[str] | None = [str(n) for n in names]
        width = len(names)
    elif isinstance(count, (int, np.integer)) and not isinstance(count, bool) and count > 0:
        labels, width = None, int(count)
    else:
        return None
    strings = _string_columns(model)
    types: list[ColumnType] = [
        "string" if i in strings or (labels is not None and labels[i] in strings) else "float"
        for i in range(width)
    ]
    return carried_option(labels, types, nullable=_allows_nan(model))


def _first_step(model: Any) -> Any:
    from sklearn.pipeline import Pipeline

    while isinstance(model, Pipeline) and model.steps:
        model = model.steps[0][1]
    return model


def _string_columns(model: Any) -> set[object]:
    """Positions (ints) or names (strs) of the columns fitted as strings by an encoder."""
    from sklearn.compose import ColumnTransformer

    step = _first_step(model)
    if not isinstance(step, ColumnTransformer):
        return _encoded_strings(step, None)
    found: set[object] = set()
    for _, transformer, columns in getattr(step, "transformers_", []):
        if isinstance(columns, (list, tuple, np.ndarray)):
            found |= _encoded_strings(_first_step(transformer), list(columns))
    return found


def _encoded_strings(step: Any, columns: list[Any] | None) -> set[object]:
    categories = getattr(step, "categories_", None)
    if not isinstance(categories, list):
        return set()
    labels = columns if columns is not None else list(range(len(categories)))
    return {
        label.item() if isinstance(label, np.generic) else label
        for label, values in zip(labels, categories, strict=False)
        if np.asarray(values).dtype.kind in "OUST"
    }


def _allows_nan(model: Any) -> bool:
    return _nan_handling(model) != "refuses"


def _nan_handling(step: Any) -> NanHandling:
    """Whether ``step`` fills NaN in (an imputer, an encoder), passes it on, or refuses it.

    A pipeline is decided by its first step that does not pass NaN on; a ``ColumnTransformer``
    refuses when one of its transformers does and fills in when all of them do.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(step, Pipeline):
        for _, inner in step.steps:
            handling = _nan_handling(inner)
            if handling != "passes":
                return handling
        return "passes"
    if isinstance(step, ColumnTransformer):
        found = {
            "passes" if t == "passthrough" else _nan_handling(t)
            for _, t, _ in getattr(step, "transformers_", [])
            if t != "drop"
        }
        return "refuses" if "refuses" in found else "fills" if found == {"fills"} else "passes"
    if type(step).__module__.startswith("sklearn.impute") or hasattr(step, "categories_"):
        return "fills"
    try:
        allowed = bool(step.__sklearn_tags__().input_tags.allow_nan)
    except AttributeError:
        allowed = False
    return "passes" if allowed else "refuses"
