"""The rows a retraining run learns from and is judged on, from the logbook's labelled window.

The newest ``evaluation_window`` of labelled predictions is held out for the gate; training uses
the ``window`` before it, so the gate never scores a candidate on rows it was trained on. A
declared evaluation set replaces the held-out window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import Logbook
from watchkeeper.logbook.records import merged_values
from watchkeeper.registry.registry import read_table
from watchkeeper.retraining.spec import RetrainSpec

LABEL = "label"
MIN_TRAIN_ROWS = 50
MIN_EVALUATION_ROWS = 30


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame  # features + LABEL
    evaluation: pd.DataFrame  # features + LABEL
    train_window: tuple[datetime, datetime]
    evaluation_window: tuple[datetime, datetime] | None


def labelled(logbook: Logbook, model: str, start: datetime, end: datetime,
             features: list[str]) -> pd.DataFrame:  # fmt: skip
    """Answered predictions in [start, end) that have a label, as features + ``label``.

    Labels sent as text (``"churned"``, kept in ``label_text``) join like numeric ones; when
    every label of the window is text the column holds the strings, otherwise numbers.
    """
    columns = [f"feature_{f}" for f in features]
    joined = logbook.join_feedback(model, start, end, role="primary", columns=columns)
    if joined.num_rows == 0 or not {"label", "label_text"} & set(joined.column_names):
        return pd.DataFrame(columns=[*features, LABEL])
    labels = merged_values(joined, "label", "label_text")  # numbers or text, None if absent
    keep = np.asarray(pd.notna(labels), dtype=bool)
    present = [c for c in columns if c in joined.column_names]
    frame: pd.DataFrame = joined.filter(pa.array(keep)).select(present).to_pandas()
    frame.columns = [c.removeprefix("feature_") for c in present]
    kept = labels[keep]
    texts = np.zeros(joined.num_rows, dtype=bool)  # merged_values takes the text where set
    if "label_text" in joined.column_names:
        texts = joined.column("label_text").is_valid().to_numpy(zero_copy_only=False)
    texts = texts[keep]
    if texts.all():
        frame[LABEL] = kept.astype(str) if len(kept) else kept
    elif texts.any():
        raise InvalidInput(
            f"the labels of model '{model}' mix text and numbers in the window; send one type "
            "(the type of the model's classes)"
        )
    else:
        frame[LABEL] = kept.astype(float)
    return frame


def split(logbook: Logbook, spec: RetrainSpec, features: list[str], now: datetime) -> Split:
    if spec.evaluation_data is not None:
        evaluation = read_table(spec.evaluation_data)
        if spec.label_column not in evaluation.columns:
            raise InvalidInput(f"the evaluation set has no '{spec.label_column}' column")
        evaluation = evaluation.rename(columns={spec.label_column: LABEL})
        window = (now - spec.window, now)
        held_out = None
    else:
        held_out = (now - spec.evaluation_window, now)
        window = (held_out[0] - spec.window, held_out[0])
        evaluation = labelled(logbook, spec.model, *held_out, features)
    train = labelled(logbook, spec.model, *window, features)
    if len(train) < MIN_TRAIN_ROWS or len(evaluation) < MIN_EVALUATION_ROWS:
        raise InvalidInput(
            f"not enough labelled data: {len(train)} training rows (need {MIN_TRAIN_ROWS}) "
            f"and {len(evaluation)} evaluation rows (need {MIN_EVALUATION_ROWS})"
        )
    return Split(train, evaluation, window, held_out)
