"""Where a batch job writes, atomically: Parquet (folder or one file), CSV, or a SQL table.

Every task writes its part files into a staging folder beside the output
(``<output>.staging/<task>/``) and marks the task done with a ``_DONE`` file holding its
counts. Only when every task is done is the output *committed*: the parts are moved (folder)
or concatenated (one file, CSV, a table in one transaction) into place, rejects likewise, and
the staging folder is removed. An interrupted job therefore leaves the output untouched, and
``--resume`` finds the tasks already done in the staging folder and skips them.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from watchkeeper.errors import Conflict, InvalidInput

SQL_PREFIX = "sql://"
DONE = "_DONE"


@dataclass(frozen=True)
class Target:
    """The output: ``kind`` is ``folder``, ``parquet`` (one file), ``csv`` or ``sql``."""

    uri: str
    kind: str
    table: str | None = None  # sql
    if_exists: str = "fail"  # sql: fail | append | replace; files: fail | replace
    rejects: str | None = None

    @property
    def staging(self) -> str:
        base = self.uri if self.kind != "sql" else f"./.watchkeeper-batch-{self.table}"
        return base.rstrip("/") + ".staging"


def target(uri: str, *, table: str | None = None, if_exists: str = "fail",
           rejects: str | None = None) -> Target:  # fmt: skip
    """Parse an output: ``sql://<SQLAlchemy URL>`` (+ ``table``), ``*.parquet``, ``*.csv``, or
    a folder of Parquet parts."""
    if if_exists not in ("fail", "append", "replace"):
        raise InvalidInput(f"--if-exists must be fail, append or replace, not '{if_exists}'")
    if uri.startswith(SQL_PREFIX):
        if not table:
            raise InvalidInput("a SQL output needs --table NAME")
        kind = "sql"
    else:
        if if_exists == "append":
            raise InvalidInput("--if-exists append is for SQL tables; files are replaced whole")
        lower = uri.lower()
        kind = (
            "parquet"
            if lower.endswith(".parquet")
            else "csv"
            if lower.endswith(".csv")
            else ("folder")
        )
    default_rejects = (f"./{table}.rejects.parquet" if kind == "sql"
                       else uri.rstrip("/").rsplit(".", 1)[0] + ".rejects.parquet")  # fmt: skip
    if kind == "folder":
        default_rejects = uri.rstrip("/") + ".rejects.parquet"
    return Target(uri, kind, table, if_exists, rejects or default_rejects)


def prepare(t: Target, *, resume: bool) -> dict[str, dict[str, int]]:
    """Check the output may be written; return the tasks already done (``resume``) with
    their counts, after clearing a stale staging folder when not resuming."""
    if t.kind != "sql" and t.if_exists != "replace":
        fs, path = fsspec.core.url_to_fs(t.uri)
        if fs.exists(path) and not (fs.isdir(path) and not fs.ls(path)):
            raise Conflict(f"'{t.uri}' exists: choose another output or pass --if-exists replace")
    fs, staging = fsspec.core.url_to_fs(t.staging)
    if not resume:
        if fs.exists(staging):
            fs.rm(staging, recursive=True)
        return {}
    done: dict[str, dict[str, int]] = {}
    if fs.exists(staging):
        for marker in fs.glob(f"{staging}/*/{DONE}"):
            task = marker.rsplit("/", 2)[-2]
            with fs.open(marker, "r") as handle:
                done[task] = json.load(handle)
    return done


class TaskWriter:
    """Writes one task's output and rejects into its staging folder, then marks it done.

    Each is one Parquet file per task, written a chunk (a row group) at a time; a chunk whose
    columns cannot take the file's types (a SQL column that was all nulls so far) starts the
    next file."""

    def __init__(self, t: Target, task: str) -> None:
        self.fs, root = fsspec.core.url_to_fs(t.staging)
        self.folder = f"{root}/{task}"
        if self.fs.exists(self.folder):  # a half-written attempt of this task
            self.fs.rm(self.folder, recursive=True)
        self.fs.makedirs(self.folder, exist_ok=True)
        self._output = _PartWriter(self.fs, f"{self.folder}/part")
        self._rejects = _PartWriter(self.fs, f"{self.folder}/rejects")

    def write(self, output: pa.Table, rejects: pa.Table) -> None:
        self._output.write(output)
        self._rejects.write(rejects)

    def close(self) -> None:
        try:
            self._output.close()
        finally:
            self._rejects.close()

    def done(self, counts: dict[str, int]) -> None:
        self.close()
        with self.fs.open(f"{self.folder}/{DONE}", "w") as handle:
            json.dump(counts, handle)


class _PartWriter:
    """``<prefix>-000000.parquet``, then ``-000001`` … only if the types change."""

    def __init__(self, fs: Any, prefix: str) -> None:
        self.fs = fs
        self.prefix = prefix
        self.parts = 0
        self._handle: Any = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self._writer is not None and not table.schema.equals(self._writer.schema):
            try:
                table = table.cast(self._writer.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                self.close()
        if self._writer is None:
            self._handle = self.fs.open(f"{self.prefix}-{self.parts:06d}.parquet", "wb")
            self._writer = pq.ParquetWriter(self._handle, table.schema,
                                            use_dictionary=text_columns(table.schema))  # fmt: skip
            self.parts += 1
        self._writer.write_table(table)

    def close(self) -> None:
        writer, handle = self._writer, self._handle
        self._writer = self._handle = None
        close_writer(writer, handle)


def close_writer(writer: pq.ParquetWriter | None, handle: Any) -> None:
    """Close a Parquet writer, then the file under it, even when the writer's close fails."""
    try:
        if writer is not None:
            writer.close()
    finally:
        if handle is not None:
            handle.close()


def text_columns(schema: pa.Schema) -> list[str]:
    """The columns worth a Parquet dictionary: text. Trying one on float columns (probabilities)
    and giving up at the page limit made writing 5x slower than it needs to be."""
    kinds = (pa.types.is_string, pa.types.is_large_string, pa.types.is_dictionary)
    return [f.name for f in schema if any(kind(f.type) for kind in kinds)]


def commit(t: Target, tasks: list[str], assembler: Assembler | None = None) -> None:
    """Move every task's parts into place, in task order, then drop the staging folder. The
    one-file output and the rejects come from ``assembler`` when it built them as tasks ended."""
    fs, staging = fsspec.core.url_to_fs(t.staging)
    parts = [p for task in tasks for p in sorted(fs.glob(f"{staging}/{task}/part-*.parquet"))]
    rejects = [p for task in tasks for p in sorted(fs.glob(f"{staging}/{task}/rejects-*.parquet"))]
    if t.kind == "folder":
        _commit_folder(fs, t, staging, tasks)
    elif t.kind == "sql":
        _commit_sql(fs, t, parts)
    elif assembler is None:
        _concatenate(fs, parts, Concatenation(t.uri, t.kind, empty_file=True))
    if assembler is not None:
        assembler.finish()
    elif rejects and t.rejects:
        _concatenate(fs, rejects, Concatenation(t.rejects, "parquet", empty_file=False))
    fs.rm(staging, recursive=True)


def _commit_folder(fs: Any, t: Target, staging: str, tasks: list[str]) -> None:
    _, out = fsspec.core.url_to_fs(t.uri)
    if fs.exists(out):
        fs.rm(out, recursive=True)
    fs.makedirs(out, exist_ok=True)
    for i, task in enumerate(tasks):
        for part in sorted(fs.glob(f"{staging}/{task}/part-*.parquet")):
            fs.mv(part, f"{out}/part-{i:05d}-{part.rsplit('-', 1)[-1]}")
    with fs.open(f"{out}/_SUCCESS", "w") as handle:
        handle.write("")


def _tables(fs: Any, parts: list[str]) -> Iterator[pa.Table]:
    """The parts' rows, a row group (one scored chunk) at a time."""
    for part in parts:
        with fs.open(part, "rb") as handle:
            reader = pq.ParquetFile(handle)
            for group in range(reader.num_row_groups):
                yield reader.read_row_group(group)


def _concatenate(fs: Any, parts: list[str], into: Concatenation) -> None:
    try:
        for table in _tables(fs, parts):
            into.write(table)
    except BaseException:
        into.discard()
        raise
    into.finish()


class Concatenation:
    """One file (Parquet or CSV) written beside its final name from tables in order, then moved
    into place by :meth:`finish` (no rows: an empty file if ``empty_file``, else no file)."""

    def __init__(self, uri: str, kind: str, *, empty_file: bool) -> None:
        self.fs, self.out = fsspec.core.url_to_fs(uri)
        self.kind = kind
        self.temporary = self.out + ".tmp"
        self.empty_file = empty_file
        self._handle: Any = None
        self._writer: Any = None

    def write(self, table: pa.Table) -> None:
        if self._handle is None:
            self._handle = self.fs.open(self.temporary, "wb")
        if self._writer is None and self.kind == "parquet":
            self._writer = pq.ParquetWriter(self._handle, table.schema,
                                            use_dictionary=text_columns(table.schema))  # fmt: skip
        elif self._writer is None:
            self._writer = pcsv.CSVWriter(self._handle, table.schema)
        self._writer.write_table(table.cast(self._writer.schema) if self.kind == "parquet"
                                 else table)  # fmt: skip

    def finish(self) -> None:
        if self._handle is None and not self.empty_file:
            return
        if self._handle is None:
            self._handle = self.fs.open(self.temporary, "wb")
        self._close()
        if self.fs.exists(self.out):
            self.fs.rm(self.out)
        self.fs.mv(self.temporary, self.out)

    def discard(self) -> None:
        with suppress(Exception):  # the error that stopped the job is the one to report
            self._close()
        if self.fs.exists(self.temporary):
            self.fs.rm(self.temporary)

    def _close(self) -> None:
        writer, handle = self._writer, self._handle
        self._writer = self._handle = None
        close_writer(writer, handle)


class Assembler:
    """Builds a one-file output and the rejects file while the job runs: a task's parts are
    appended, in a background thread, once it and every task before it are done, so the commit
    is left with a rename instead of reading and writing every row again. Tasks done by an
    earlier attempt (``--resume``) are appended first."""

    def __init__(self, t: Target, tasks: list[str], done: Iterable[str] = ()) -> None:
        self.fs, self.staging = fsspec.core.url_to_fs(t.staging)
        self.tasks = tasks
        self.output = (Concatenation(t.uri, t.kind, empty_file=True)
                       if t.kind in ("parquet", "csv") else None)  # fmt: skip
        self.rejects = (Concatenation(t.rejects, "parquet", empty_file=False)
                        if t.rejects else None)  # fmt: skip
        self._done: queue.Queue[str | None] = queue.Queue()
        self._error: BaseException | None = None
        self._appended = 0
        self._thread = threading.Thread(target=self._run, name="watchkeeper-batch-assemble",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        for key in done:
            self.task_done(key)

    @staticmethod
    def wanted(t: Target) -> bool:
        """Whether ``t`` has a file to assemble (a folder's parts are moved, a table's loaded
        in one transaction; both have a rejects file, but that alone is not worth a thread)."""
        return t.kind in ("parquet", "csv")

    def task_done(self, key: str) -> None:
        self._done.put(key)

    def _run(self) -> None:
        finished: set[str] = set()
        try:
            while (key := self._done.get()) is not None:
                finished.add(key)
                while self._appended < len(self.tasks) and self.tasks[self._appended] in finished:
                    self._append(self.tasks[self._appended])
                    self._appended += 1
        except BaseException as exc:  # raised by finish()
            self._error = exc

    def _append(self, task: str) -> None:
        for name, into in (("part", self.output), ("rejects", self.rejects)):
            if into is not None:
                parts = sorted(self.fs.glob(f"{self.staging}/{task}/{name}-*.parquet"))
                for table in _tables(self.fs, parts):
                    into.write(table)

    def finish(self) -> None:
        """Wait until every task is appended, then move the files into place."""
        self._done.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._appended != len(self.tasks):
            raise RuntimeError(f"{len(self.tasks) - self._appended} task(s) never reported done")
        for into in (self.output, self.rejects):
            if into is not None:
                into.finish()

    def abort(self) -> None:
        """Stop and remove the half-built files (a resumed job builds them again)."""
        self._done.put(None)
        self._thread.join()
        for into in (self.output, self.rejects):
            if into is not None:
                into.discard()


def _commit_sql(fs: Any, t: Target, parts: list[str]) -> None:
    """All rows in one transaction: a reader sees the table before or after, never half."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.exc import SQLAlchemyError

    assert t.table is not None
    engine = create_engine(t.uri.removeprefix(SQL_PREFIX))
    try:
        with engine.begin() as connection:
            exists = inspect(connection).has_table(t.table)
            if exists and t.if_exists == "fail":
                raise Conflict(f"table '{t.table}' exists: pass --if-exists append or replace")
            mode = "replace" if t.if_exists == "replace" else "append"
            for table in _tables(fs, parts):
                table.to_pandas().to_sql(t.table, connection, if_exists=mode, index=False)
                mode = "append"
    except SQLAlchemyError as exc:
        raise InvalidInput(f"writing table '{t.table}' failed: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()
