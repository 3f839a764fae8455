"""A batch job cut into tasks, and what one worker does with one task.

A task is a run of Parquet row groups (about ``TASK_ROWS`` rows) or a whole CSV file or query.
Workers read their own task from the input — no rows travel between processes — score it chunk
by chunk with a model they loaded once, and write their parts to the staging folder. Task keys
sort in input order, which is the output's order.
"""

from __future__ import annotations

import math
import queue
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from watchkeeper.batch.pipeline import DEPTH, ReadAhead, WriteBehind
from watchkeeper.batch.score import OutputSpec, Scored, score_chunk
from watchkeeper.batch.sinks import Target, TaskWriter
from watchkeeper.batch.sources import Source, Unit, read_unit
from watchkeeper.config import Settings
from watchkeeper.errors import InvalidInput
from watchkeeper.logbook import Logbook, PredictionBatch
from watchkeeper.models import LoadedModel
from watchkeeper.models.signature import Signature

TASK_ROWS = 1_000_000
# rows a worker reads ahead: a whole row group of pyarrow's default size (2**20 rows) decodes
# while the one before it scores, also across the end of a task
READ_AHEAD_ROWS = 1 << 20


class JobStopped(RuntimeError):
    """A task given up because the job is ending (another task failed, or Ctrl-C)."""


@dataclass(frozen=True)
class Task:
    key: str
    unit: Unit
    row_groups: tuple[int, ...] | None  # None: the whole unit
    first_row: int  # the task's first row within its unit, for rejects' row numbers
    rows: int | None


@dataclass(frozen=True, kw_only=True)
class JobContext:
    """Everything a worker needs, picklable: it loads the model itself, once per process."""

    settings: Settings
    model: str
    version: int
    target: Target
    output: OutputSpec
    chunk_rows: int
    columns: tuple[str, ...] | None
    query: str | None
    log_sample: float
    run_id: int
    signature: dict[str, Any] | None = None
    scored_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class TaskResult:
    key: str
    rows_in: int
    rows_out: int
    rejected: int
    out_of_range: int

    def counts(self) -> dict[str, int]:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "rejected": self.rejected,
                "out_of_range": self.out_of_range}  # fmt: skip


def plan(source: Source) -> list[Task]:
    tasks: list[Task] = []
    for i, unit in enumerate(source.units):
        if unit.kind != "parquet":
            tasks.append(Task(f"{i:05d}-00000", unit, None, 0, unit.rows))
            continue
        with fsspec.open(unit.location, "rb") as handle:
            meta = pq.ParquetFile(handle).metadata
        group: list[int] = []
        rows = first = 0
        for g in range(meta.num_row_groups):
            group.append(g)
            rows += meta.row_group(g).num_rows
            if rows >= TASK_ROWS or g == meta.num_row_groups - 1:
                tasks.append(Task(f"{i:05d}-{group[0]:05d}", unit, tuple(group), first, rows))
                first += rows
                group, rows = [], 0
        if meta.num_row_groups == 0:
            tasks.append(Task(f"{i:05d}-00000", unit, (), 0, 0))
    return tasks


class Worker:
    """One process's state: the registry connection and the loaded model."""

    def __init__(self, context: JobContext, *, stopping: threading.Event | None = None) -> None:
        from watchkeeper.registry import Registry

        self.context = context
        self.stopping = stopping or threading.Event()  # set: stop at the next chunk
        registry = Registry(context.settings)
        try:
            self.model: LoadedModel = registry.load(f"{context.model}@{context.version}")
        finally:
            registry.close()
        self.signature = (Signature.from_dict(context.signature) if context.signature
                          else None)  # fmt: skip

    def run(self, task: Task) -> TaskResult:
        (result,) = self.run_tasks([task])
        return result

    def run_tasks(self, tasks: Iterable[Task]) -> Iterator[TaskResult]:
        """Score ``tasks`` (taken from the iterable as the reading reaches them) into the
        staging folder, yielding each one's result once its files are written. The chunks
        ahead are read, across task ends, and the last ones written, in background threads
        while this thread scores (see :mod:`.pipeline`)."""
        c = self.context
        logbook = Logbook(c.settings.resolved_logbook_url) if c.log_sample > 0 else None
        if logbook is not None:
            logbook.start()
        depth = max(DEPTH, -(-READ_AHEAD_ROWS // c.chunk_rows))
        chunks = ReadAhead(self._task_chunks(tasks), depth=depth)
        finished: queue.SimpleQueue[TaskResult] = queue.SimpleQueue()
        sink: WriteBehind[_Written] = WriteBehind(lambda item: item.write(finished))
        scoring: _Scoring | None = None
        try:
            for task, chunk in chunks:
                if self.stopping.is_set():
                    raise JobStopped("the job stopped before this task ended")
                if scoring is None or scoring.task is not task:
                    scoring = _Scoring(task, TaskWriter(c.target, task.key), c.run_id)
                if chunk is None:  # the task's last chunk was read
                    sink.put(_Written(scoring.writer, None, None, scoring.result()))
                    continue
                scored = self._score(scoring, chunk)
                sink.put(_Written(scoring.writer, scored.output, scored.rejects, None))
                if logbook is not None and len(scored.predictions):
                    request = f"batch-{c.run_id}-{task.key}-{scoring.chunks - 1}"
                    self._log(logbook, scored, request, scoring.rng)
                while not finished.empty():
                    yield finished.get()
            sink.close()
        except BaseException:
            if sink.failed:
                sink.abort()
            else:  # what is queued is written: a task that had ended stays done (--resume)
                with suppress(Exception):
                    sink.close()
            if scoring is not None:
                with suppress(Exception):  # the first error is the one to report
                    scoring.writer.close()
            raise
        finally:
            chunks.close()
            if logbook is not None:
                logbook.close()
        while not finished.empty():
            yield finished.get()

    def _score(self, scoring: _Scoring, chunk: pa.Table) -> Scored:
        c = self.context
        scored = score_chunk(self.model, chunk, spec=c.output, name=c.model, version=c.version,
                             scored_at=c.scored_at, first_row=scoring.task.first_row
                             + scoring.totals[0], signature=self.signature)  # fmt: skip
        scoring.add(scored)
        return scored

    def _task_chunks(self, tasks: Iterable[Task]) -> Iterator[tuple[Task, pa.Table | None]]:
        for task in tasks:
            for chunk in self._chunks(task):
                yield task, chunk
            yield task, None

    def _chunks(self, task: Task) -> Iterator[pa.Table]:
        c = self.context
        if task.row_groups is None:
            batches = read_unit(task.unit, chunk_rows=c.chunk_rows, columns=c.columns,
                                query=c.query)  # fmt: skip
        else:
            batches = _row_groups(task, c.chunk_rows, c.columns)
        return rebatch(batches, c.chunk_rows)

    def _log(self, logbook: Logbook, scored: Scored, request_id: str, rng: Any) -> None:
        c = self.context
        n = len(scored.predictions)
        take = rng.random(n) < c.log_sample if c.log_sample < 1 else np.ones(n, dtype=bool)
        if not take.any():
            return
        features = scored.inputs[take] if not take.all() else scored.inputs
        classes = self.model.classes
        logbook.log_predictions(PredictionBatch(
            request_id=request_id, model=c.model, version=c.version, role="batch",
            timestamp=datetime.now(UTC), features=features, feature_names=scored.feature_names,
            predictions=scored.predictions[take],
            probabilities=None if scored.probabilities is None else scored.probabilities[take],
            classes=[str(x) for x in classes.tolist()] if classes is not None else None,
            latency_s=0.0, signature=self.model.signature,
        ))  # fmt: skip


class _Scoring:
    """The task being scored: its writer, its sample's random stream, its counts so far."""

    def __init__(self, task: Task, writer: TaskWriter, run_id: int) -> None:
        self.task = task
        self.writer = writer
        self.rng = np.random.default_rng(zlib.crc32(f"{run_id}:{task.key}".encode()))
        self.totals = [0, 0, 0, 0]
        self.chunks = 0

    def add(self, scored: Scored) -> None:
        self.chunks += 1
        self.totals[0] += scored.rows_in
        self.totals[1] += scored.output.num_rows
        self.totals[2] += scored.rejects.num_rows
        self.totals[3] += scored.out_of_range

    def result(self) -> TaskResult:
        return TaskResult(self.task.key, *self.totals)


@dataclass(frozen=True)
class _Written:
    """For the writing thread: a chunk's output and rejects, or a task's end (``result``)."""

    writer: TaskWriter
    output: pa.Table | None
    rejects: pa.Table | None
    result: TaskResult | None

    def write(self, finished: queue.SimpleQueue[TaskResult]) -> None:
        if self.result is None:
            assert self.output is not None
            assert self.rejects is not None
            self.writer.write(self.output, self.rejects)
            return
        self.writer.done(self.result.counts())
        finished.put(self.result)


def rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Chunks of ``rows`` rows (the last one shorter) whatever sizes the reader yields."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def _row_groups(task: Task, chunk_rows: int, columns: tuple[str, ...] | None) -> Any:
    try:
        with fsspec.open(task.unit.location, "rb") as handle:
            reader = pq.ParquetFile(handle)
            groups = list(task.row_groups or ())
            yield from reader.iter_batches(batch_size=chunk_rows, row_groups=groups,
                                           columns=list(columns) if columns else None)  # fmt: skip
    except (pa.ArrowInvalid, OSError) as exc:  # as read_unit says it
        raise InvalidInput(f"cannot read {task.unit.location}: {exc}") from exc


def tasks_rows(tasks: list[Task]) -> int | None:
    counts = [t.rows for t in tasks]
    return None if any(c is None for c in counts) else int(math.fsum(c or 0 for c in counts))
