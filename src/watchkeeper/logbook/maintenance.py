"""Keeping the store tidy: merge small segments, delete old days.

Run these from one process at a time (the scheduler is a singleton); writers and readers may
run meanwhile. A compaction writes the merged segment under a temporary name, renames it, then
deletes the parts it replaces; the merged file names those parts in its metadata so that
watchkeeper's readers skip any still present (see ``store``), and the next compaction deletes
parts a crash left behind.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import date, datetime, timedelta

import pyarrow.dataset as ds
import pyarrow.parquet as pq

from watchkeeper.logbook.reader import unify
from watchkeeper.logbook.records import as_utc
from watchkeeper.logbook.store import (
    REPLACES_KEY,
    Partition,
    SegmentStore,
    parquet_options,
    segment_name,
    temp_name,
)

log = logging.getLogger(__name__)
SMALL_SEGMENT_BYTES = 128 * 2**20  # segments at least this big are left as they are
STALE_TEMP_SECONDS = 3600.0  # temporary files older than this belong to a crashed writer


def compact(
    store: SegmentStore,
    model: str | None = None,
    day: date | str | None = None,
    *,
    small_bytes: int = SMALL_SEGMENT_BYTES,
) -> int:
    """Merge the small segments of each partition (of ``model`` and ``day`` when given; the
    feedback too when no model is given) into one; returns the number of files removed."""
    wanted = day.isoformat() if isinstance(day, date) else day
    directories = []
    models = [model] if model is not None else store.children(store.predictions_dir, "model")
    for name in models:
        days = store.children(store.model_dir(name), "date")
        directories += [store.partition_dir(name, d) for d in days if wanted in (None, d)]
    if model is None:
        days = store.children(store.feedback_dir, "date")
        directories += [store.partition_dir(None, d) for d in days if wanted in (None, d)]
    return sum(_compact_partition(store, d, small_bytes) for d in directories)


def _compact_partition(store: SegmentStore, directory: str, small_bytes: int) -> int:
    _remove_stale_temps(store, directory)
    partition = store.partition(directory, None)
    small = [f for f in partition.fragments if _size(store, f.path) < small_bytes]
    leftovers = partition.superseded
    if len(small) < 2:
        store.remove(leftovers)
        return len(leftovers)
    merged = _merge(store, partition, small)
    parts = [f.path for f in small] + leftovers
    store.remove(parts)
    log.info("logbook compacted %d segments of %s into %s", len(small), directory, merged)
    return len(parts)


def _merge(store: SegmentStore, partition: Partition, small: list[ds.ParquetFileFragment]) -> str:
    schema = unify([f.physical_schema.remove_metadata() for f in small], [])
    replaces = sorted(f.path.rsplit("/", 1)[-1] for f in small)
    dataset = ds.FileSystemDataset(
        small, schema=schema, format=ds.ParquetFileFormat(), filesystem=store.arrow_fs
    )
    temp = temp_name(partition.directory)
    final = f"{partition.directory}/{segment_name()}"
    metadata = {REPLACES_KEY: json.dumps(replaces).encode()}
    try:
        with pq.ParquetWriter(
            temp,
            schema.with_metadata(metadata),
            filesystem=store.arrow_fs,
            **parquet_options(schema),
        ) as writer:
            for batch in dataset.to_batches(batch_size=256 * 1024):
                writer.write_batch(batch)
        store.fs.mv(temp, final)
    except BaseException:
        store.discard(temp)
        raise
    return final


def _size(store: SegmentStore, path: str) -> int:
    return int(store.fs.size(path))


def _remove_stale_temps(store: SegmentStore, directory: str) -> None:
    try:
        entries = store.fs.ls(directory, detail=True)
    except FileNotFoundError:
        return
    now = time.time()
    for entry in entries:
        name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(".") and name.endswith(".tmp"):
            modified = _mtime(entry)
            if modified is not None and now - modified > STALE_TEMP_SECONDS:
                store.discard(str(entry["name"]))


def _mtime(entry: dict[str, object]) -> float | None:
    for key in ("mtime", "LastModified", "created"):
        value = entry.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return None


def prune(store: SegmentStore, older_than: timedelta, *, now: datetime | None = None) -> int:
    """Delete every day partition (predictions of all models, and feedback) whose whole day
    lies before ``now - older_than``; returns the number of partitions removed."""
    cutoff = (as_utc(now or datetime.now().astimezone()) - older_than).date()
    removed = 0
    bases = [store.model_dir(m) for m in store.children(store.predictions_dir, "model")]
    for base in [*bases, store.feedback_dir]:
        for day in store.children(base, "date"):
            if _before(day, cutoff):
                store.remove([f"{base}/date={day}"], recursive=True)
                removed += 1
    return removed


def _before(day: str, cutoff: date) -> bool:
    try:
        return date.fromisoformat(day) < cutoff
    except ValueError:  # not a partition of ours: leave it alone
        return False
