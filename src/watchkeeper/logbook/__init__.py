"""The logbook: every prediction and every label that comes back, as Parquet segments.

Writers append without blocking (a background thread converts and writes); readers prune by
model and day and join feedback to predictions by (request_id, row). The on-disk format is
public and documented in ``watchkeeper.logbook.records`` and ``watchkeeper.logbook.feedback``.
"""

from watchkeeper.logbook.book import Logbook
from watchkeeper.logbook.config import LogbookConfig, LogbookStats
from watchkeeper.logbook.entries import (
    OUTCOME_NAME,
    OUTCOME_NAME_RULE,
    FeedbackItem,
    PredictionBatch,
)

__all__ = [
    "FeedbackItem",
    "Logbook",
    "LogbookConfig",
    "LogbookStats",
    "OUTCOME_NAME",
    "OUTCOME_NAME_RULE",
    "PredictionBatch",
]
