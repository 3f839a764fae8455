"""One batch scoring job, from reference to committed output and a run record.

``run_batch`` resolves the model reference once (so a promotion mid-job changes nothing), plans
tasks, runs them on the chosen engine, stops early when the reject rate passes its limit,
commits the output atomically, and records the run (rows in/out/rejected, version, duration)
in the metadata database whatever the outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.batch import sinks
from watchkeeper.batch.score import OutputSpec, check_carried, features_signature
from watchkeeper.batch.sources import Source, open_source, unit_columns
from watchkeeper.batch.tasks import JobContext, Task, TaskResult, plan, tasks_rows
from watchkeeper.batch.validate import check_columns
from watchkeeper.config import Settings
from watchkeeper.errors import InvalidInput, WatchkeeperError
from watchkeeper.models.signature import Signature
from watchkeeper.registry import Registry
from watchkeeper.registry.batch import BatchRun, BatchStore

log = logging.getLogger("watchkeeper.batch")
ENGINES = ("local", "ray")


@dataclass(frozen=True, kw_only=True)
class BatchSpec:
    """What to score, from where, into where, and how."""

    model: str  # NAME or NAME@REF (default: production at the start of the job)
    input: str
    output: str
    query: str | None = None
    table: str | None = None
    if_exists: str = "fail"
    rejects: str | None = None
    engine: str = "local"
    workers: int = 1
    ray_address: str | None = None
    chunk_rows: int = 100_000
    id_column: str | None = None
    columns: tuple[str, ...] = ()
    passthrough: tuple[str, ...] = ()
    probabilities: bool = True
    max_reject_rate: float = 0.05
    log_sample: float = 0.1
    resume: bool = False
    output_spec: OutputSpec = field(default_factory=OutputSpec)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InvalidInput(f"--engine must be local or ray, not '{self.engine}'")
        if self.workers < 1 or self.chunk_rows < 1:
            raise InvalidInput("--workers and --chunk-rows must be at least 1")
        if not 0 <= self.max_reject_rate <= 1 or not 0 <= self.log_sample <= 1:
            raise InvalidInput("--max-reject-rate and --log-sample must be between 0 and 1")


Progress = Callable[[int, int | None], None]  # rows done, rows in total (None: unknown)


@dataclass(frozen=True)
class Outcome:
    run: BatchRun
    out_of_range: int


def run_batch(
    settings: Settings, spec: BatchSpec, *, progress: Progress | None = None,
    schedule_id: int | None = None,
) -> Outcome:  # fmt: skip
    """Score ``spec.input`` into ``spec.output``; raises on failure after recording it."""
    with Registry(settings) as registry:
        version = registry.get(spec.model)  # NAME is NAME@production
        store = BatchStore(registry.engine)
        source = open_source(spec.input, query=spec.query)
        target = sinks.target(spec.output, table=spec.table, if_exists=spec.if_exists,
                              rejects=spec.rejects)  # fmt: skip
        output = OutputSpec(id_column=spec.id_column, passthrough=spec.passthrough,
                            probabilities=spec.probabilities,
                            validation=spec.output_spec.validation)  # fmt: skip
        _check_input(source, spec, output, version.signature)
        done = sinks.prepare(target, resume=spec.resume)
        run = store.start_run(model=version.name, version=version.version, input=spec.input,
                              output=spec.output, engine=spec.engine, actor=settings.user,
                              schedule_id=schedule_id)  # fmt: skip
        read = tuple(dict.fromkeys([*spec.columns, *output.carried])) if spec.columns else None
        features = None  # a model without a signature reads --columns as its features
        if not version.signature and spec.columns:
            features = features_signature(list(spec.columns)).to_dict()
        context = JobContext(
            settings=settings, model=version.name, version=version.version, target=target,
            output=output, chunk_rows=spec.chunk_rows, columns=read, query=source.query,
            log_sample=spec.log_sample, run_id=run.id, signature=features,
        )  # fmt: skip
        totals = _Totals.of(done)
        assembler: sinks.Assembler | None = None
        try:
            tasks = plan(source)
            todo = [t for t in tasks if t.key not in done]
            total = tasks_rows(tasks)
            if sinks.Assembler.wanted(target):  # the one output file grows as tasks end
                assembler = sinks.Assembler(target, [t.key for t in tasks], done)
            if progress is not None:
                progress(totals.rows_in, total)
            for result in _engine(spec, context, todo):
                totals.add(result)
                if assembler is not None:
                    assembler.task_done(result.key)
                if progress is not None:
                    progress(totals.rows_in, total)
                totals.check(spec.max_reject_rate, final=False)
            totals.check(spec.max_reject_rate, final=True)
            sinks.commit(target, [t.key for t in tasks], assembler)
        except BaseException as exc:  # whatever ends the run (Ctrl-C too) is recorded
            if assembler is not None:
                assembler.abort()
            message = (exc.message if isinstance(exc, WatchkeeperError)
                       else f"{type(exc).__name__}: {exc}".rstrip(": "))  # fmt: skip
            store.finish_run(run.id, status="failed", error=message, rows_in=totals.rows_in,
                             rows_out=totals.rows_out, rows_rejected=totals.rejected)  # fmt: skip
            raise
        finished = store.finish_run(run.id, status="succeeded", rows_in=totals.rows_in,
                                    rows_out=totals.rows_out,
                                    rows_rejected=totals.rejected)  # fmt: skip
        return Outcome(finished, totals.out_of_range)


@dataclass
class _Totals:
    rows_in: int = 0
    rows_out: int = 0
    rejected: int = 0
    out_of_range: int = 0

    @classmethod
    def of(cls, done: dict[str, dict[str, int]]) -> _Totals:
        out = cls()
        for counts in done.values():
            out.rows_in += counts["rows_in"]
            out.rows_out += counts["rows_out"]
            out.rejected += counts["rejected"]
            out.out_of_range += counts["out_of_range"]
        return out

    def add(self, r: TaskResult) -> None:
        self.rows_in += r.rows_in
        self.rows_out += r.rows_out
        self.rejected += r.rejected
        self.out_of_range += r.out_of_range

    def check(self, limit: float, *, final: bool) -> None:
        # mid-job, wait for a few thousand rows before judging a rate
        if self.rows_in == 0 or (not final and self.rows_in < 10_000):
            return
        rate = self.rejected / self.rows_in
        if rate > limit:
            raise InvalidInput(
                f"{self.rejected} of {self.rows_in} rows rejected ({rate:.1%}), over "
                f"--max-reject-rate {limit:.1%}; see the rejects file for the reasons"
            )


def _engine(spec: BatchSpec, context: JobContext, tasks: list[Task]) -> Iterator[TaskResult]:
    if spec.engine == "ray":
        from watchkeeper.batch.ray_engine import run_ray

        return run_ray(context, tasks, spec.workers, address=spec.ray_address)
    from watchkeeper.batch.local import run_local

    return run_local(context, tasks, spec.workers)


def _check_input(
    source: Source, spec: BatchSpec, output: OutputSpec, signature: dict[str, Any] | None
) -> None:
    """Fail before any work if the input lacks a needed column (a look at its first unit)."""
    names = unit_columns(source.units[0], query=source.query)
    if names is None:
        return
    check_carried(names, output)
    if spec.columns:
        missing = [c for c in spec.columns if c not in names]
        if missing:
            raise InvalidInput(f"--columns names column(s) the input lacks: {', '.join(missing)}")
    if signature:  # --columns limits what is read: the model's columns must be among them
        check_columns(list(spec.columns) or names, Signature.from_dict(signature))
