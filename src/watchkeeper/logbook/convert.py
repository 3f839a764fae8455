"""From buffered entries to segments: grouping by partition, conversion, isolation of bad data.

A batch that cannot be converted (say, a DataFrame lacking a named feature) is dropped and
counted on its own; it never blocks the rows logged with it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from watchkeeper.logbook.config import LogbookConfig
from watchkeeper.logbook.entries import FeedbackItem, PredictionBatch
from watchkeeper.logbook.feedback import feedback_table
from watchkeeper.logbook.records import RecordBuilder, day_of
from watchkeeper.logbook.store import SegmentStore

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Segment:
    """One file to write: the rows of one partition (``model`` None: feedback)."""

    model: str | None
    day: str
    table: pa.Table
    rows: int

    def directory(self, store: SegmentStore) -> str:
        return store.partition_dir(self.model, self.day)


class SegmentBuilder:
    """Converts buffered entries into segments, one per partition (more if schemas clash)."""

    def __init__(self, config: LogbookConfig) -> None:
        self._records = RecordBuilder(config)

    def predictions(self, batches: Sequence[PredictionBatch]) -> tuple[list[Segment], int]:
        """Segments for ``batches``, and the number of rows that could not be converted."""
        groups: dict[tuple[str, date, tuple[str, ...], int], list[PredictionBatch]] = {}
        for batch in batches:  # one signature per table: its features' types set their encoding
            key = (batch.model, day_of(batch.timestamp), tuple(batch.feature_names),
                   id(batch.signature))  # fmt: skip
            groups.setdefault(key, []).append(batch)
        tables: dict[tuple[str, str], list[pa.Table]] = {}
        rejected = 0
        for (model, day, *_), group in groups.items():
            converted, lost = self._convert(group)
            rejected += lost
            tables.setdefault((model, day.isoformat()), []).extend(converted)
        segments = [
            Segment(model, day, table, table.num_rows)
            for (model, day), parts in tables.items()
            for table in _merge(parts)
        ]
        return segments, rejected

    def _convert(self, group: list[PredictionBatch]) -> tuple[list[pa.Table], int]:
        try:
            return [self._records.table(group)], 0
        except Exception:  # isolate the culprit: convert batch by batch
            if len(group) == 1:
                batch = group[0]
                log.exception(
                    "logbook dropped request %s of %s v%s: its rows cannot be recorded",
                    batch.request_id,
                    batch.model,
                    batch.version,
                )
                return [], batch.n_rows
        tables, rejected = [], 0
        for batch in group:
            converted, lost = self._convert([batch])
            tables += converted
            rejected += lost
        return tables, rejected

    def feedback(self, items: Sequence[tuple[FeedbackItem, int]]) -> tuple[list[Segment], int]:
        by_day: dict[str, list[tuple[FeedbackItem, int]]] = {}
        for item, received in items:
            by_day.setdefault(day_of_micros(received), []).append((item, received))
        segments, rejected = [], 0
        for day, chunk in by_day.items():
            try:
                table = feedback_table(chunk)
            except Exception:  # conversion of checked items should not fail; never block
                log.exception("logbook dropped %d feedback items: cannot be recorded", len(chunk))
                rejected += len(chunk)
                continue
            segments.append(Segment(None, day, table, table.num_rows))
        return segments, rejected


def _merge(tables: list[pa.Table]) -> list[pa.Table]:
    """One table when the schemas agree (missing columns become null), else several."""
    if len(tables) == 1:
        return tables
    try:
        return [pa.concat_tables(tables, promote_options="permissive")]
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return tables


def day_of_micros(received: int) -> str:
    return (_EPOCH + timedelta(microseconds=received)).date().isoformat()
