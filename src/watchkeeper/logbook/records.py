"""Prediction records: the public on-disk format, and the conversion of batches into it.

One Parquet row per input row, under ``predictions/model=<model>/date=<YYYY-MM-DD>/`` (the UTC
day of ``timestamp``). ``model`` and ``date`` are hive partition keys, not stored inside the
files; every Parquet/Arrow reader (pandas, DuckDB ``hive_partitioning``, Spark) rebuilds them
from the path.

=====================  =======================  ==================================================
column                 type                     meaning
=====================  =======================  ==================================================
``request_id``         string                   the request's id (one request may span many rows)
``row``                int32                    the row's position inside its request
``timestamp``          timestamp[us, UTC]       when the request arrived
``version``            int32                    the model version that answered
``role``               string                   primary, canary, shadow, arm-a, arm-b or batch
``routing_key``        string, null             the sticky-routing key, when one was given
``metadata``           string, null             JSON object of string tags, keys sorted
``latency_ms``         float32                  the request's model latency in milliseconds
``prediction``         float64, null            the prediction when numeric (booleans as 0/1)
``prediction_label``   string, null             the prediction when not numeric
``probabilities``      list<float32>, null      class probabilities, in ``classes`` order
``classes``            string, null             JSON array of the class labels
``feature_<name>``     float64, bool or string  one column per input feature, in signature order;
                                                NaN is stored as null; hashed features are hex
                                                ``sha256(salt + value)`` strings (numbers hashed
                                                as ``repr(float(value))``); dropped ones absent
=====================  =======================  ==================================================

Segments of versions with different features differ only in their ``feature_*`` columns;
readers unify them (a column missing from a segment reads as null).

**One encoding per signature type.** A ``bool`` feature (its signature says so, or it arrives as
booleans) is stored as Arrow ``bool``, whatever the request carried (serving hands numeric
batches over as float64 0.0/1.0); ``float`` and ``int`` features as float64; ``string`` ones as
strings. The reference profile counts booleans as the categories ``"False"``/``"True"``, so a
window read back as booleans is counted on the same categories. Segments written before this
rule hold bool features as float64 0.0/1.0, and a window (or a compaction) mixing both reads the
column as float64; :func:`typed_features` reads any of these back as booleans.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.logbook.config import LogbookConfig
from watchkeeper.logbook.entries import PredictionBatch

TIMESTAMP = pa.timestamp("us", tz="UTC")
FEATURE_PREFIX = "feature_"
BASE_FIELDS = [
    pa.field("request_id", pa.string()),
    pa.field("row", pa.int32()),
    pa.field("timestamp", TIMESTAMP),
    pa.field("version", pa.int32()),
    pa.field("role", pa.string()),
    pa.field("routing_key", pa.string()),
    pa.field("metadata", pa.string()),
    pa.field("latency_ms", pa.float32()),
    pa.field("prediction", pa.float64()),
    pa.field("prediction_label", pa.string()),
    pa.field("probabilities", pa.list_(pa.float32())),
    pa.field("classes", pa.string()),
]
BASE_SCHEMA = pa.schema(BASE_FIELDS)
PARTITION_FIELDS = [pa.field("model", pa.string()), pa.field("date", pa.string())]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def day_of(moment: datetime) -> date:
    """The UTC day of ``moment`` (fast when it is already in UTC)."""
    if moment.tzinfo is UTC or moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(UTC).date()


def strings(values: np.ndarray) -> pa.Array:
    """Any 1-D array as Arrow strings, nulls (None, NaN, NA) kept as nulls."""
    try:
        return pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if _is_null(v) else str(v) for v in values], type=pa.string())


def _is_null(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def is_numeric(values: np.ndarray) -> bool:
    if values.dtype.kind in "biuf":
        return True
    if values.dtype.kind != "O" or len(values) == 0:
        return False
    try:
        kind = pa.infer_type(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or kind == pa.bool_())


def numbers(values: np.ndarray) -> pa.Array:
    """Float64, NaN as null; contiguous input without NaN is wrapped without a copy."""
    if values.dtype.kind == "O":  # numbers and None/NaN/NA
        try:
            return pa.array(values, from_pandas=True).cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # booleans beside numbers: as 0/1
            return pa.array([None if _is_null(v) else float(v) for v in values], pa.float64())
    values = np.ascontiguousarray(values, dtype=np.float64)
    missing = np.isnan(values)
    return pa.array(values, mask=missing) if missing.any() else pa.array(values)


def is_boolean(values: np.ndarray) -> bool:
    """Booleans, or objects that are booleans and nulls only."""
    if values.dtype.kind == "b":
        return True
    if values.dtype.kind != "O" or len(values) == 0:
        return False
    try:
        return bool(pa.array(values, from_pandas=True).type == pa.bool_())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a bool beside other values
        return False


def booleans(values: np.ndarray) -> pa.Array:
    """Arrow booleans from booleans, 0/1 numbers (any other number is true) or objects of
    either; NaN and None as null."""
    if values.dtype.kind == "b":
        return pa.array(values)
    if values.dtype.kind == "O":
        values = numbers(values).to_numpy(zero_copy_only=False)  # bools and None -> 1.0/NaN
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    return pa.array(values != 0, mask=missing if missing.any() else None)


_TRUE_TEXT = ["true", "1", "1.0"]
_FALSE_TEXT = ["false", "0", "0.0"]


def as_booleans(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A stored bool feature read back as booleans, whatever its segments held: booleans,
    float64 0/1 (segments written before bool features were stored as such, or a window
    mixing both), or text (``"true"``, ``"1"``...; any other text is null)."""
    kind = column.type
    if pa.types.is_boolean(kind):
        return column
    if pa.types.is_null(kind):
        return column.cast(pa.bool_())
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return pc.not_equal(column, pa.scalar(0, kind))
    text = pc.utf8_lower(pc.utf8_trim_whitespace(column.cast(pa.string())))
    truth = pc.is_in(text, value_set=pa.array(_TRUE_TEXT))
    known = pc.or_(truth, pc.is_in(text, value_set=pa.array(_FALSE_TEXT)))
    return pc.if_else(known, truth, pa.scalar(None, pa.bool_()))


def typed_features(table: pa.Table, types: Mapping[str, str]) -> pa.Table:
    """``table`` with each column whose ``types`` entry is ``"bool"`` read as booleans
    (:func:`as_booleans`); ``types`` maps column names (as in ``table``) to signature types.

    >>> old = pa.table({"member": [1.0, 0.0, None], "age": [30.0, 41.0, 52.0]})
    >>> typed_features(old, {"member": "bool", "age": "float"})["member"].to_pylist()
    [True, False, None]
    """
    for i, name in enumerate(table.column_names):
        if types.get(name) == "bool" and not pa.types.is_boolean(table.column(i).type):
            table = table.set_column(i, name, as_booleans(table.column(i)))
    return table


def merged_values(table: pa.Table, numeric: str, text: str) -> np.ndarray:
    """One object array from a pair of columns that split values by type (``prediction`` and
    ``prediction_label``, ``label`` and ``label_text``): the text where set, else the number
    (a float), else None.

    >>> t = pa.table({"label": [1.0, None, None], "label_text": [None, "churned", None]})
    >>> merged_values(t, "label", "label_text").tolist()
    [1.0, 'churned', None]
    """
    out = np.full(table.num_rows, None, dtype=object)
    if numeric in table.column_names:
        column = table.column(numeric)
        if not pa.types.is_null(column.type):
            numbers = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
            present = ~np.isnan(numbers)
            out[present] = numbers[present]
    if text in table.column_names:
        labels = table.column(text).cast(pa.string())
        present = labels.is_valid().to_numpy(zero_copy_only=False)
        out[present] = np.asarray(labels.to_numpy(zero_copy_only=False), dtype=object)[present]
    return out


def hash_values(values: pa.Array, salt: str) -> pa.Array:
    """Hex ``sha256(salt + value)`` of each value; numbers as ``repr(float(value))``, booleans
    as ``"True"``/``"False"``."""
    numeric = pa.types.is_floating(values.type)
    out: list[str | None] = []
    for value in values.to_pylist():
        if value is None:
            out.append(None)
            continue
        text = repr(float(value)) if numeric else str(value)
        out.append(hashlib.sha256((salt + text).encode()).hexdigest())
    return pa.array(out, type=pa.string())


class RecordBuilder:
    """Turns prediction batches that share their feature names into one Arrow table."""

    def __init__(self, config: LogbookConfig) -> None:
        self._drop = frozenset(config.drop_fields)
        self._hash = frozenset(config.hash_fields)
        self._salt = config.hash_salt

    def table(self, batches: Sequence[PredictionBatch]) -> pa.Table:
        counts = np.array([len(b.predictions) for b in batches], dtype=np.int64)
        columns = _request_columns(batches, counts)
        columns.update(_prediction_columns(batches, counts))
        columns.update(self._feature_columns(batches))
        return pa.table(columns)

    def _feature_columns(self, batches: Sequence[PredictionBatch]) -> dict[str, pa.Array]:
        names = batches[0].feature_names
        types = dict(zip(names, batches[0].feature_types, strict=True))
        if all(isinstance(b.features, np.ndarray) for b in batches):
            columns = _by_column([np.asarray(b.features) for b in batches])
            raw = {name: columns[j] for j, name in enumerate(names) if name not in self._drop}
        else:
            raw = {
                name: np.concatenate([_feature_values(b, j, name) for b in batches])
                for j, name in enumerate(names)
                if name not in self._drop
            }
        out = {}
        for name, values in raw.items():
            array = _encode(values, types.get(name))
            if name in self._hash:
                array = hash_values(array, self._salt)
            out[FEATURE_PREFIX + name] = array
        return out


def _encode(values: np.ndarray, dtype: str | None) -> pa.Array:
    """One feature's values in the encoding of its signature type (module docstring)."""
    if dtype == "bool" or (dtype is None and is_boolean(values)):
        return booleans(values)
    return numbers(values) if is_numeric(values) else strings(values)


def _by_column(matrices: list[np.ndarray]) -> np.ndarray:
    """Row-major matrices stacked as one (features, rows) array: each column contiguous."""
    if any(m.dtype.kind not in "biuf" for m in matrices):
        return np.concatenate(matrices, axis=0).T
    if len(matrices) * 4 > sum(len(m) for m in matrices):  # many tiny batches
        return np.ascontiguousarray(np.concatenate(matrices, axis=0).T, dtype=np.float64)
    return np.concatenate([m.T for m in matrices], axis=1, dtype=np.float64)


def _feature_values(batch: PredictionBatch, index: int, name: str) -> np.ndarray:
    features = batch.features
    if isinstance(features, np.ndarray):
        return features[:, index]
    series = features[name]
    if series.dtype == np.bool_:
        return series.to_numpy(dtype=np.bool_)
    if pd.api.types.is_bool_dtype(series.dtype):  # pandas' nullable boolean
        return np.asarray(series.astype(object).where(series.notna(), None), dtype=object)
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.to_numpy(dtype=object)


def _repeat(values: Sequence[object], counts: np.ndarray, kind: pa.DataType) -> pa.Array:
    per_batch = pa.array(values, type=kind)
    if bool((counts == 1).all()):
        return per_batch
    return per_batch.take(pa.array(np.repeat(np.arange(len(values)), counts)))


def _request_columns(batches: Sequence[PredictionBatch], counts: np.ndarray) -> dict[str, pa.Array]:
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    stamps = np.repeat(np.array([micros(b.timestamp) for b in batches], dtype=np.int64), counts)
    latency = np.repeat(np.array([b.latency_s * 1000 for b in batches], dtype=np.float32), counts)
    return {
        "request_id": _repeat([b.request_id for b in batches], counts, pa.string()),
        "row": pa.array((np.arange(int(counts.sum())) - starts).astype(np.int32)),
        "timestamp": pa.array(stamps, type=TIMESTAMP),
        "version": pa.array(np.repeat([b.version for b in batches], counts).astype(np.int32)),
        "role": _repeat([b.role for b in batches], counts, pa.string()),
        "routing_key": _repeat([b.routing_key for b in batches], counts, pa.string()),
        "metadata": _repeat([_json(b.metadata) for b in batches], counts, pa.string()),
        "latency_ms": pa.array(latency),
    }


def _json(value: object) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _prediction_columns(
    batches: Sequence[PredictionBatch], counts: np.ndarray
) -> dict[str, pa.Array]:
    numeric = [is_numeric(b.predictions) for b in batches]
    total = int(counts.sum())
    if all(numeric):
        values = numbers(np.concatenate([b.predictions for b in batches]))
        labels = pa.nulls(total, pa.string())
    elif not any(numeric):
        values = pa.nulls(total, pa.float64())
        labels = strings(np.concatenate([b.predictions for b in batches]))
    else:  # a mix across batches: rare, done batch by batch
        values, labels = _mixed(batches, numeric)
    return {
        "prediction": values,
        "prediction_label": labels,
        "probabilities": _probabilities(batches, counts),
        "classes": _repeat(_classes_json(batches), counts, pa.string()),
    }


def _classes_json(batches: Sequence[PredictionBatch]) -> list[str | None]:
    """Class lists as JSON, each distinct list encoded once (batches of a version share one)."""
    cache: dict[tuple[str, ...], str] = {}
    out: list[str | None] = []
    for batch in batches:
        if batch.classes is None:
            out.append(None)
            continue
        key = tuple(batch.classes)
        text = cache.get(key)
        if text is None:
            text = cache[key] = json.dumps(list(key), separators=(",", ":"))
        out.append(text)
    return out


def _mixed(batches: Sequence[PredictionBatch], numeric: list[bool]) -> tuple[pa.Array, pa.Array]:
    values, labels = [], []
    for batch, is_number in zip(batches, numeric, strict=True):
        n = batch.n_rows
        values.append(numbers(batch.predictions) if is_number else pa.nulls(n, pa.float64()))
        labels.append(pa.nulls(n, pa.string()) if is_number else strings(batch.predictions))
    return pa.concat_arrays(values), pa.concat_arrays(labels)


def _probabilities(batches: Sequence[PredictionBatch], counts: np.ndarray) -> pa.Array:
    total = int(counts.sum())
    present = [b.probabilities for b in batches if b.probabilities is not None]
    if not present:
        return pa.nulls(total, pa.list_(pa.float32()))
    widths = np.array(
        [0 if b.probabilities is None else b.probabilities.shape[1] for b in batches],
        dtype=np.int32,
    )
    offsets = np.zeros(total + 1, dtype=np.int32)
    np.cumsum(np.repeat(widths, counts), out=offsets[1:])
    if len({p.shape[1] for p in present}) == 1:  # the usual case: one version, one width
        values = np.concatenate(present, axis=0).astype(np.float32).ravel()
    else:
        values = np.concatenate([p.ravel() for p in present]).astype(np.float32)
    missing = np.repeat(np.array([b.probabilities is None for b in batches]), counts)
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(values), mask=pa.array(missing) if missing.any() else None
    )
