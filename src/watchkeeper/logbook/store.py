"""Where segments live: paths under one fsspec URL, atomic writes, listing and opening.

Layout below the root URL::

    predictions/model=<model>/date=<YYYY-MM-DD>/part-<utc time>-<uuid>.parquet
    feedback/date=<YYYY-MM-DD>/part-<utc time>-<uuid>.parquet

Two sibling datasets, so each reads on its own (``pandas.read_parquet(f"{url}/predictions")``).
A segment is written under a temporary name starting with ``.`` and ending in ``.tmp`` in its
final directory, then renamed: readers (watchkeeper's, pyarrow's, Spark's, a DuckDB
``*.parquet`` glob) never see a half-written file. On object stores the rename is a
copy-then-delete, and the copy appears whole.

A compacted segment lists the segments it replaces in its Parquet key-value metadata
(``watchkeeper.replaces``); watchkeeper's readers skip those while they still exist, so a
compaction interrupted between its rename and its deletes never shows duplicates here (readers
without watchkeeper may see them during that window).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from pyarrow.fs import FileSystem, FSSpecHandler, PyFileSystem
from pyarrow.fs import LocalFileSystem as ArrowLocalFileSystem

from watchkeeper.errors import StoreUnavailable

REPLACES_KEY = b"watchkeeper.replaces"
COMPRESSION = "zstd"
_FORMAT = ds.ParquetFileFormat()


@dataclass(frozen=True)
class Partition:
    """The segments of one partition directory, as readers should see them."""

    directory: str
    fragments: list[ds.ParquetFileFragment]
    superseded: list[str]  # replaced by a compacted segment but not yet deleted


class SegmentStore:
    """Segments below one fsspec URL (a local path works too)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        try:
            self.fs, root = url_to_fs(self.url)
        except (ImportError, ValueError) as exc:
            raise StoreUnavailable(f"cannot open logbook store {url!r}: {exc}") from exc
        self.root = str(root).rstrip("/")
        self.arrow_fs: FileSystem = (
            ArrowLocalFileSystem()
            if isinstance(self.fs, LocalFileSystem)
            else PyFileSystem(FSSpecHandler(self.fs))
        )

    @property
    def predictions_dir(self) -> str:
        return f"{self.root}/predictions"

    @property
    def feedback_dir(self) -> str:
        return f"{self.root}/feedback"

    def model_dir(self, model: str) -> str:
        return f"{self.predictions_dir}/model={quote(model, safe='')}"

    def partition_dir(self, model: str | None, day: str) -> str:
        base = self.feedback_dir if model is None else self.model_dir(model)
        return f"{base}/date={day}"

    def write(self, directory: str, table: pa.Table) -> str:
        """Write ``table`` as a new segment of ``directory``, atomically; returns its path."""
        self.fs.makedirs(directory, exist_ok=True)
        final = f"{directory}/{segment_name()}"
        temp = temp_name(directory)
        try:
            pq.write_table(table, temp, filesystem=self.arrow_fs, **parquet_options(table.schema))
            self.fs.mv(temp, final)
        except BaseException:
            self.discard(temp)
            raise
        return final

    def discard(self, path: str) -> None:
        try:
            self.fs.rm(path)
        except OSError:  # best effort: a leftover temp file is invisible to readers
            pass

    def children(self, directory: str, prefix: str) -> list[str]:
        """Decoded values of the ``<prefix>=<value>`` sub-directories of ``directory``."""
        names = self._names(directory)
        head = f"{prefix}="
        return sorted(unquote(n[len(head) :]) for n in names if n.startswith(head))

    def segments(self, directory: str) -> list[str]:
        """Complete segment paths of a partition directory, oldest first."""
        names = self._names(directory)
        return [f"{directory}/{n}" for n in sorted(names) if _visible(n)]

    def _names(self, directory: str) -> list[str]:
        self.fs.invalidate_cache(directory)
        try:
            entries = self.fs.ls(directory, detail=False)
        except FileNotFoundError:
            return []
        return [str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries]

    def partition(self, directory: str, expression: ds.Expression | None) -> Partition:
        """Open the footers of a partition's segments; drop those a compaction superseded."""
        paths = self.segments(directory)
        fragments = self._open(paths, expression)
        replaced: set[str] = set()
        for fragment in fragments:
            replaced.update(replaced_names(fragment))
        keep = [f for f in fragments if _base(f.path) not in replaced]
        superseded = [f.path for f in fragments if _base(f.path) in replaced]
        return Partition(directory, keep, superseded)

    def _open(
        self, paths: Sequence[str], expression: ds.Expression | None
    ) -> list[ds.ParquetFileFragment]:
        def one(path: str) -> ds.ParquetFileFragment:
            fragment = _FORMAT.make_fragment(
                path, filesystem=self.arrow_fs, partition_expression=expression
            )
            fragment.ensure_complete_metadata()
            return fragment

        if len(paths) <= 4:
            return [one(p) for p in paths]
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, paths))

    def remove(self, paths: Sequence[str], *, recursive: bool = False) -> None:
        for path in paths:
            try:
                self.fs.rm(path, recursive=recursive)
            except FileNotFoundError:
                pass


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """How segments are encoded: zstd, and dictionaries for text columns only (on float
    features the attempt costs more write time than it saves)."""
    text = [f.name for f in schema if pa.types.is_string(f.type)]
    return {"compression": COMPRESSION, "use_dictionary": text}


def segment_name() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"part-{stamp}-{uuid.uuid4().hex}.parquet"


def temp_name(directory: str) -> str:
    return f"{directory}/.{uuid.uuid4().hex}.parquet.tmp"


def replaced_names(fragment: ds.ParquetFileFragment) -> list[str]:
    metadata: dict[bytes, bytes] | None = fragment.metadata.metadata
    raw = (metadata or {}).get(REPLACES_KEY)
    names: Any = json.loads(raw) if raw else []
    return [str(n) for n in names]


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _visible(name: str) -> bool:
    return name.endswith(".parquet") and not name.startswith((".", "_"))
