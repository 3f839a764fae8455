"""Reading windows of the logbook: predictions, feedback, and the two joined.

Only the partitions of the asked model and days are listed and opened. Segments written by
versions with different features are read under one unified schema (a missing column is null;
a feature stored as a number in one segment and as text in another reads as text). A day
partition is trusted to hold that UTC day's rows only, as the writer makes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

import pyarrow as pa
import pyarrow.dataset as ds

from watchkeeper.errors import InvalidInput, StoreUnavailable
from watchkeeper.logbook.feedback import (
    FEEDBACK_SCHEMA,
    KEYS,
    OUTCOME_PREFIX,
    attach,
    latest,
)
from watchkeeper.logbook.records import (
    BASE_SCHEMA,
    FEATURE_PREFIX,
    PARTITION_FIELDS,
    TIMESTAMP,
    as_utc,
)
from watchkeeper.logbook.store import SegmentStore

# Feedback is joined from this long before a window's start (clocks of replicas differ).
CLOCK_SKEW = timedelta(hours=1)
_ATTEMPTS = 3
T = TypeVar("T")


class Reader:
    """Reads the segments of one ``SegmentStore``: the reading half of a
    :class:`~watchkeeper.logbook.Logbook`."""

    def __init__(self, store: SegmentStore) -> None:
        self._store = store

    def read(
        self,
        model: str,
        start: datetime,
        end: datetime,
        *,
        version: int | None = None,
        role: str | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Predictions of ``model`` with ``start <= timestamp < end`` (naive datetimes are UTC).

        ``columns`` selects and orders the columns (``feature_*``/``outcome_*`` names that no
        segment holds come back as nulls); by default every column, ``model`` and ``date``
        last.
        """
        start, end = as_utc(start), as_utc(end)
        condition = _between("timestamp", start, end)
        if version is not None:
            condition &= ds.field("version") == pa.scalar(version, pa.int32())
        if role is not None:
            condition &= ds.field("role") == role
        return _retrying(lambda: self._scan(model, start, end, condition, columns))

    def _scan(
        self,
        model: str,
        start: datetime,
        end: datetime,
        condition: ds.Expression,
        columns: Sequence[str] | None,
    ) -> pa.Table:
        first, last = start.date(), (end - timedelta(microseconds=1)).date()
        fragments: list[ds.ParquetFileFragment] = []
        for day in self._store.children(self._store.model_dir(model), "date"):
            if _in_days(day, first, last):
                directory = self._store.partition_dir(model, day)
                expression = (ds.field("model") == model) & (ds.field("date") == day)
                expression &= _within_day("timestamp", day)
                fragments += self._store.partition(directory, expression).fragments
        base = pa.schema(list(BASE_SCHEMA) + PARTITION_FIELDS)
        return self._to_table(fragments, base, PARTITION_FIELDS, condition, columns)

    def read_feedback(self, start: datetime | None = None, end: datetime | None = None) -> pa.Table:
        """Feedback *received* in ``[start, end)``; of duplicates (same request_id and row) the
        one received last."""
        return latest(_retrying(lambda: self._scan_feedback(start, end)))

    def _scan_feedback(self, start: datetime | None, end: datetime | None) -> pa.Table:
        first = as_utc(start).date() if start else date.min
        last = (as_utc(end) - timedelta(microseconds=1)).date() if end else date.max
        condition = _between("received_at", start, end)
        fragments: list[ds.ParquetFileFragment] = []
        for day in self._store.children(self._store.feedback_dir, "date"):
            if _in_days(day, first, last):
                directory = self._store.partition_dir(None, day)
                expression = _within_day("received_at", day)
                fragments += self._store.partition(directory, expression).fragments
        return self._to_table(fragments, FEEDBACK_SCHEMA, [], condition, None)

    def join_feedback(
        self,
        model: str,
        start: datetime,
        end: datetime,
        *,
        version: int | None = None,
        role: str | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """``read(...)`` left-joined with feedback on (request_id, row), adding ``label``,
        ``label_text``, ``outcome_*``, ``feedback_timestamp`` and ``label_delay_s`` (null where
        no feedback came back). ``request_id``, ``row`` and ``timestamp`` are always included.
        Feedback received from an hour before ``start`` until now is considered."""
        if columns is not None:
            columns = [*KEYS, "timestamp", *(c for c in columns if c not in (*KEYS, "timestamp"))]
        predictions = self.read(model, start, end, version=version, role=role, columns=columns)
        feedback = self.read_feedback(as_utc(start) - CLOCK_SKEW)
        return attach(predictions, feedback)

    def unmatched_feedback(
        self,
        model: str | None,
        start: datetime,
        end: datetime,
        *,
        lookback: timedelta = timedelta(days=7),
    ) -> int:
        """How much feedback received in ``[start, end)`` matches no prediction of ``model``
        (of any model when None) made from ``lookback`` before ``start`` on. Feedback carries no
        model name: with several models, pass None to count ids no model knows. Feedback for
        sampled-out requests counts here too."""
        feedback = self.read_feedback(start, end).select(KEYS)
        models = (
            [model]
            if model is not None
            else self._store.children(self._store.predictions_dir, "model")
        )
        since, until = as_utc(start) - lookback, as_utc(end) + CLOCK_SKEW
        keys = [self.read(m, since, until, columns=KEYS) for m in models]
        known = pa.concat_tables(keys) if keys else pa.table({"request_id": [], "row": []})
        if known.num_rows == 0:
            return int(feedback.num_rows)
        known = known.cast(feedback.schema)
        return int(feedback.join(known, KEYS, join_type="left anti").num_rows)

    def _to_table(
        self,
        fragments: list[ds.ParquetFileFragment],
        base: pa.Schema,
        partition_fields: list[pa.Field],
        condition: ds.Expression,
        columns: Sequence[str] | None,
    ) -> pa.Table:
        physical = [f.physical_schema for f in fragments]
        schema = unify([base.remove_metadata(), *physical], partition_fields)
        wanted = list(schema.names) if columns is None else list(columns)
        _check_columns(wanted, schema)
        present = [c for c in wanted if c in schema.names]
        dataset = ds.FileSystemDataset(
            fragments, schema=schema, format=ds.ParquetFileFormat(), filesystem=self._store.arrow_fs
        )
        table = dataset.to_table(columns=present, filter=condition)
        for name in wanted:
            if name not in table.column_names:  # a feature or outcome no segment holds
                table = table.append_column(name, pa.nulls(table.num_rows, pa.float64()))
        return table.select(wanted)


def unify(schemas: Sequence[pa.Schema], partition_fields: Sequence[pa.Field]) -> pa.Schema:
    """One schema for all ``schemas`` (permissive promotion; booleans beside numbers become
    float64, other conflicting types strings), with ``partition_fields`` at the end."""
    names = {f.name for f in partition_fields}
    cleaned = [pa.schema([f for f in s if f.name not in names]) for s in schemas]
    try:
        merged = pa.unify_schemas(cleaned, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        types: dict[str, pa.DataType] = {}
        for field in (f for s in cleaned for f in s):
            seen = types.setdefault(field.name, field.type)
            if seen != field.type and not pa.types.is_null(field.type):
                was_null = pa.types.is_null(seen)
                types[field.name] = field.type if was_null else _common(seen, field.type)
        merged = pa.schema(list(types.items()))
    return pa.schema(list(merged) + list(partition_fields))


def _common(one: pa.DataType, other: pa.DataType) -> pa.DataType:
    """Booleans beside numbers are numbers (a bool feature in segments of either encoding, see
    ``records``); any other conflict is text."""
    kinds = (pa.types.is_boolean, pa.types.is_integer, pa.types.is_floating)
    if all(any(kind(t) for kind in kinds) for t in (one, other)):
        return pa.float64()
    return pa.string()


def _check_columns(wanted: Sequence[str], schema: pa.Schema) -> None:
    unknown = [
        c
        for c in wanted
        if c not in schema.names and not c.startswith((FEATURE_PREFIX, OUTCOME_PREFIX))
    ]
    if unknown:
        raise InvalidInput(f"unknown logbook column(s): {', '.join(unknown)}")


def _between(column: str, start: datetime | None, end: datetime | None) -> ds.Expression:
    condition = ds.scalar(True)
    if start is not None:
        condition &= ds.field(column) >= pa.scalar(as_utc(start), TIMESTAMP)
    if end is not None:
        condition &= ds.field(column) < pa.scalar(as_utc(end), TIMESTAMP)
    return condition


def _within_day(column: str, day: str) -> ds.Expression:
    """What a partition guarantees: its rows' ``column`` lies within its UTC day. Given to
    the scanner, it turns the window filter into "true" for days the window covers whole, so
    those rows are not filtered one by one."""
    first = datetime.combine(date.fromisoformat(day), time(), tzinfo=UTC)
    return _between(column, first, first + timedelta(days=1))


def _in_days(day: str, first: date, last: date) -> bool:
    try:
        return first <= date.fromisoformat(day) <= last
    except ValueError:  # not a partition of ours
        return False


def _retrying(scan: Callable[[], T]) -> T:
    """Run ``scan`` again when a segment vanished between listing and opening it (compaction
    or pruning ran meanwhile): the next listing no longer holds it."""
    for attempt in range(_ATTEMPTS):
        try:
            return scan()
        except FileNotFoundError as exc:
            if attempt == _ATTEMPTS - 1:
                raise StoreUnavailable(f"logbook segments kept vanishing: {exc}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the logbook: {exc}") from exc
    raise AssertionError("unreachable")
