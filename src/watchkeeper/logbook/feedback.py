"""Feedback records (labels and outcomes), their de-duplication, and the join to predictions.

Feedback lives apart from predictions, under ``feedback/date=<YYYY-MM-DD>/`` (the UTC day it was
*received*), because one label may arrive days after its prediction and need not know its model:

=================  ==================  =========================================================
column             type                meaning
=================  ==================  =========================================================
``request_id``     string              the request the label belongs to
``row``            int32               the row inside that request
``label``          float64, null       the label when a number or a boolean (true as 1, false
                                       as 0)
``label_text``     string, null        the label when a string, as sent
``outcome_<name>`` float64, null       one column per named outcome
``timestamp``      timestamp[us, UTC]  when the outcome happened (the caller's clock)
``received_at``    timestamp[us, UTC]  when the logbook accepted it; the latest one wins
=================  ==================  =========================================================

At most one of ``label`` and ``label_text`` is set. Labels are matched to a model's classes when
a monitor scores them (``watchkeeper.monitoring.labels``): a string label matches the class of
that name, a number or boolean the class of that value (``1`` matches a class ``1`` or ``True``),
so labels of any type the model predicts join and score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.logbook.entries import FeedbackItem, is_missing
from watchkeeper.logbook.records import TIMESTAMP, micros

OUTCOME_PREFIX = "outcome_"
KEYS = ["request_id", "row"]
FEEDBACK_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string()),
        pa.field("row", pa.int32()),
        pa.field("label", pa.float64()),
        pa.field("label_text", pa.string()),
        pa.field("timestamp", TIMESTAMP),
        pa.field("received_at", TIMESTAMP),
    ]
)
_NUMBER = (bool, int, float, np.number, np.bool_)


def feedback_table(items: Sequence[tuple[FeedbackItem, int]]) -> pa.Table:
    """Items with the microsecond each was received, as one table in ``FEEDBACK_SCHEMA``."""
    labels: list[Any] = [None if is_missing(item.label) else item.label for item, _ in items]
    numeric = [isinstance(v, _NUMBER) for v in labels]
    names = sorted({name for item, _ in items for name in item.outcome or {}})
    columns: dict[str, pa.Array] = {
        "request_id": pa.array([item.request_id for item, _ in items], type=pa.string()),
        "row": pa.array([item.row for item, _ in items], type=pa.int32()),
        "label": pa.array(
            [float(v) if k else None for v, k in zip(labels, numeric, strict=True)],
            type=pa.float64(),
        ),
        "label_text": pa.array(
            [None if k or v is None else str(v) for v, k in zip(labels, numeric, strict=True)],
            type=pa.string(),
        ),
    }
    for name in names:
        values = [(item.outcome or {}).get(name) for item, _ in items]
        columns[OUTCOME_PREFIX + name] = pa.array(values, type=pa.float64())
    stamps = [micros(item.timestamp) if item.timestamp else received for item, received in items]
    columns["timestamp"] = pa.array(stamps, type=pa.int64()).cast(TIMESTAMP)
    columns["received_at"] = pa.array([r for _, r in items], type=pa.int64()).cast(TIMESTAMP)
    return pa.table(columns)


def latest(feedback: pa.Table) -> pa.Table:
    """One row per (request_id, row): the one received last (ties: the one written last)."""
    if feedback.num_rows == 0:
        return feedback
    n = feedback.num_rows
    with_position = feedback.append_column("__position", pa.array(np.arange(n)))
    order = pc.sort_indices(
        with_position, [("received_at", "ascending"), ("__position", "ascending")]
    )
    ordered = feedback.take(order)
    ranks = pa.table({**{k: ordered[k] for k in KEYS}, "__rank": pa.array(np.arange(n))})
    last = ranks.group_by(KEYS, use_threads=False).aggregate([("__rank", "max")])
    keep = np.sort(last["__rank_max"].to_numpy())
    return ordered.take(pa.array(keep))


def match(left: pa.Table, right: pa.Table) -> np.ndarray:
    """For each row of ``left``, the index of the row of ``right`` with the same keys, or -1.

    ``right`` must hold each key at most once (see ``latest``).
    """
    positions = np.full(left.num_rows, -1, dtype=np.int64)
    if left.num_rows == 0 or right.num_rows == 0:
        return positions
    lhs = pa.table({**{k: left[k] for k in KEYS}, "__l": pa.array(np.arange(left.num_rows))})
    rhs = pa.table({**{k: right[k] for k in KEYS}, "__r": pa.array(np.arange(right.num_rows))})
    pairs = lhs.join(rhs, KEYS, join_type="inner")
    positions[pairs["__l"].to_numpy()] = pairs["__r"].to_numpy()
    return positions


def attach(predictions: pa.Table, feedback: pa.Table) -> pa.Table:
    """``predictions`` with the matching feedback's columns, ``feedback_timestamp`` and
    ``label_delay_s`` appended (null where no feedback matched); prediction order is kept."""
    positions = match(predictions, feedback)
    indices = pa.array(positions, mask=positions < 0)
    out = predictions
    for name in feedback.column_names:
        if name in KEYS or name in ("received_at", "date"):
            continue
        target = "feedback_timestamp" if name == "timestamp" else name
        out = out.append_column(target, feedback[name].take(indices))
    delay = pc.subtract(out["feedback_timestamp"], out["timestamp"]).cast(pa.int64())
    return out.append_column("label_delay_s", pc.divide(delay, 1_000_000.0))
