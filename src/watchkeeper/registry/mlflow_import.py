"""Bringing an MLflow model registry over: :func:`import_mlflow`.

Each MLflow model version is downloaded by MLflow and registered like any MLflow model folder
(its ``MLmodel`` signature included), with its run's metrics and parameters, its tags and
description, the run id and a link to the run. The version remembers where it came from in the
tag ``mlflow.source=models:/NAME/VERSION`` (with its run id), so a second import adds only the
versions that are new. MLflow aliases become aliases here; MLflow stages are applied only when
asked (``with_stages=True``), and only to versions nobody has staged here yet.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper.errors import InvalidInput, ModelNotFound, WatchkeeperError
from watchkeeper.registry._mlflow_source import MlflowSource, data_uri
from watchkeeper.registry.refs import check_alias, check_name
from watchkeeper.registry.registry import Registry
from watchkeeper.registry.schema import STAGES

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

SOURCE_TAG = "mlflow.source"
VERSION_TAG = "mlflow.version"
TRACKING_TAG = "mlflow.tracking_uri"
PARAM_PREFIX = "mlflow.param."
MAX_TAG_KEY = 256  # the schema's tag key length
_STAGES = ("production", "staging", "archived")  # MLflow's, lower-cased ("None" is ours too)

Progress = Callable[[int, int, str], None]  # versions done, versions in total, what is next


def source_of(name: str, version: int | str) -> str:
    """The ``mlflow.source`` tag of an imported version: ``models:/NAME/VERSION``."""
    return f"models:/{name}/{version}"


@dataclass(frozen=True, kw_only=True)
class VersionOutcome:
    """What became of one MLflow version. ``action``: ``imported``, ``present`` (imported
    before), ``would import`` (dry run), ``skipped`` (not ready in MLflow) or ``failed``."""

    model: str
    mlflow_version: int
    target: str
    action: str
    version: int | None = None
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class RefOutcome:
    """An MLflow alias or stage. ``action``: ``set``, ``unchanged``, ``would set``, ``not
    applied`` (a stage without ``with_stages``), ``kept`` (staged here already) or
    ``skipped``."""

    target: str
    kind: str  # "alias" or "stage"
    value: str
    mlflow_version: int
    version: int | None
    action: str
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class ImportReport:
    tracking_uri: str
    dry_run: bool
    with_stages: bool
    versions: tuple[VersionOutcome, ...] = ()
    refs: tuple[RefOutcome, ...] = ()
    problems: tuple[str, ...] = ()  # registered models not imported at all, and why

    @property
    def ok(self) -> bool:
        return not self.problems and all(v.action != "failed" for v in self.versions)

    def count(self, action: str) -> int:
        return sum(1 for v in self.versions if v.action == action)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def import_mlflow(
    registry: Registry,
    tracking_uri: str,
    *,
    name: str | None = None,
    target: str | None = None,
    dry_run: bool = False,
    with_stages: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Copy the registered models of an MLflow tracking URI (or only ``name``, stored here as
    ``target`` when given) into ``registry``; see the module docstring for what is copied.

    ``MissingDependency`` without MLflow installed, ``StoreUnavailable`` when the tracking URI
    cannot be read, ``ModelNotFound`` for an unknown ``name``. A version that cannot be
    imported (a flavor watchkeeper cannot serve, say) is reported as failed and the others
    go on: running the import again retries only what is missing.
    """
    if target is not None and name is None:
        raise InvalidInput("a new name (--as) needs the MLflow model it is for (--name)")
    source = MlflowSource(tracking_uri)
    plans, problems = _plan(source, name, target)
    versions: list[VersionOutcome] = []
    refs: list[RefOutcome] = []
    total = sum(len(p.versions) for p in plans)
    for plan in plans:
        job = _ModelImport(registry, source, plan, dry_run=dry_run)
        for mlflow_version in plan.versions:
            if progress is not None:
                progress(len(versions), total, f"{plan.model.name} v{mlflow_version.version}")
            versions.append(job.version(mlflow_version))
        refs += [*job.aliases(), *job.stages(with_stages)]
        job.describe()
    if progress is not None:
        progress(total, total, "done")
    return ImportReport(
        tracking_uri=source.shown,
        dry_run=dry_run,
        with_stages=with_stages,
        versions=tuple(versions),
        refs=tuple(refs),
        problems=problems,
    )


@dataclass(frozen=True)
class _Plan:
    model: RegisteredModel
    target: str
    versions: list[ModelVersion] = field(default_factory=list)


def _plan(
    source: MlflowSource, name: str | None, target: str | None
) -> tuple[list[_Plan], tuple[str, ...]]:
    plans: list[_Plan] = []
    problems: list[str] = []
    for model in source.models(name):
        try:
            check_name(target or model.name)
        except InvalidInput as exc:
            problems.append(
                f"MLflow model '{model.name}' not imported: {exc.message} (import it alone "
                "under another name with --name and --as)"
            )
            continue
        plans.append(_Plan(model, target or model.name, source.versions(model.name)))
    return plans, tuple(problems)


class _ModelImport:
    """One registered model: its versions, then its aliases, stages and description."""

    def __init__(
        self, registry: Registry, source: MlflowSource, plan: _Plan, *, dry_run: bool
    ) -> None:
        self.registry, self.source, self.plan, self.dry_run = registry, source, plan, dry_run
        self.numbers: dict[int, int] = {}  # MLflow version -> version here
        self.stage_of: dict[int, str] = {}  # version here -> its stage here
        self.aliases_here: dict[str, int] = {}
        self.next_number = 1
        self._read_existing()

    def _read_existing(self) -> None:
        try:
            model = self.registry.get_model(self.plan.target)
        except ModelNotFound:
            return
        self.next_number = model.latest_version + 1
        self.aliases_here = dict(model.aliases)
        by_source = {
            (v.tags.get(SOURCE_TAG), v.run_id): v for v in self.registry.list_versions(model.name)
        }
        for mv in self.plan.versions:
            found = by_source.get((source_of(mv.name, mv.version), mv.run_id or None))
            if found is not None:
                self.numbers[int(mv.version)] = found.version
                self.stage_of[found.version] = found.stage

    def version(self, mv: ModelVersion) -> VersionOutcome:
        number = int(mv.version)
        out = VersionOutcome(model=mv.name, mlflow_version=number, target=self.plan.target,
                             action="present", version=self.numbers.get(number))  # fmt: skip
        if out.version is not None:
            return out
        status = str(mv.status or "READY")
        if status != "READY":
            return replace(out, action="skipped", note=f"MLflow status {status}")
        if self.dry_run:
            self.numbers[number] = self.next_number
            self.next_number += 1
            return replace(out, action="would import", version=self.numbers[number])
        with tempfile.TemporaryDirectory(prefix="watchkeeper-mlflow-") as tmp:
            try:
                registered, note = self._register(mv, Path(tmp))
            except WatchkeeperError as exc:  # the downloaded folder is named as MLflow's URI
                where = re.sub(
                    re.escape(tmp) + r"/[^/\s]+", source_of(mv.name, number), exc.message
                )
                return replace(out, action="failed", note=where)
        self.numbers[number] = registered
        self.stage_of[registered] = "none"
        return replace(out, action="imported", version=registered, note=note)

    def _register(self, mv: ModelVersion, tmp: Path) -> tuple[int, str]:
        run = self.source.run(mv.run_id) if mv.run_id else None
        note = "" if run is not None or not mv.run_id else f"run {mv.run_id} not found: no metrics"
        registered = self.registry.register(
            self.plan.target,
            self.source.download(mv, tmp),
            metrics=_metrics(mv, run),
            tags=self._tags(mv, run),
            run_id=mv.run_id or None,
            run_url=mv.run_link or (self.source.run_url(run) if run is not None else None),
            data_uri=data_uri(run) if run is not None else None,
            description=mv.description or "",
        )
        return registered.version, note

    def _tags(self, mv: ModelVersion, run: Run | None) -> dict[str, str]:
        tags = {str(k): str(v) for k, v in (mv.tags or {}).items()}
        if run is not None:
            tags.update({f"{PARAM_PREFIX}{k}": str(v) for k, v in run.data.params.items()})
        tags[SOURCE_TAG] = source_of(mv.name, mv.version)
        tags[VERSION_TAG] = str(mv.version)
        tags[TRACKING_TAG] = self.source.shown
        return {k: v for k, v in tags.items() if len(k) <= MAX_TAG_KEY}

    def _ref(self, kind: str, value: str, mlflow_version: int) -> RefOutcome:
        number = self.numbers.get(mlflow_version)
        return RefOutcome(target=self.plan.target, kind=kind, value=value,
                          mlflow_version=mlflow_version, version=number, action="set")  # fmt: skip

    def aliases(self) -> list[RefOutcome]:
        out = []
        for alias, mlflow_version in sorted(self.plan.model.aliases.items()):
            out.append(self._alias(self._ref("alias", alias, int(mlflow_version))))
        return out

    def _alias(self, ref: RefOutcome) -> RefOutcome:
        if ref.version is None:
            return replace(ref, action="skipped", note="its version was not imported")
        if ref.value.lower() in STAGES:
            hint = f"watchkeeper models promote {ref.target} {ref.version} --to {ref.value.lower()}"
            return replace(ref, action="skipped", note=f"a stage here, not an alias: {hint}")
        try:
            check_alias(ref.value)
        except InvalidInput as exc:
            return replace(ref, action="skipped", note=exc.message)
        if self.aliases_here.get(ref.value) == ref.version:
            return replace(ref, action="unchanged")
        if self.dry_run:
            return replace(ref, action="would set")
        self.registry.set_alias(self.plan.target, ref.version, ref.value)
        return ref

    def stages(self, apply: bool) -> list[RefOutcome]:
        out = []
        for mv in self.plan.versions:
            stage = str(mv.current_stage or "None").lower()
            if stage in _STAGES:
                out.append(self._stage(self._ref("stage", stage, int(mv.version)), apply))
        return out

    def _stage(self, ref: RefOutcome, apply: bool) -> RefOutcome:
        if ref.version is None:
            return replace(ref, action="skipped", note="its version was not imported")
        here = self.stage_of.get(ref.version, "none")
        if here == ref.value:
            return replace(ref, action="unchanged")
        if not apply:
            return replace(ref, action="not applied", note="stages are applied with --with-stages")
        if here != "none":
            return replace(ref, action="kept", note=f"already {here} here")
        if self.dry_run:
            return replace(ref, action="would set")
        reason = f"MLflow stage of {source_of(self.plan.model.name, ref.mlflow_version)}"
        self.registry.promote(self.plan.target, ref.version, ref.value, reason=reason)
        self.stage_of[ref.version] = ref.value
        return ref

    def describe(self) -> None:
        """The registered model's description and tags, once it exists here."""
        if self.dry_run or not self.numbers:
            return
        model = self.plan.model
        self.registry.store.describe_model(
            self.plan.target,
            description=model.description or "",
            tags={str(k): str(v) for k, v in (model.tags or {}).items()},
            actor=self.registry.actor,
        )


def _metrics(mv: ModelVersion, run: Run | None) -> dict[str, float]:
    """The run's latest metrics, then any the model version itself carries (MLflow 3)."""
    metrics = dict(run.data.metrics) if run is not None else {}
    for metric in getattr(mv, "metrics", None) or ():
        metrics[metric.key] = metric.value
    return {str(k): float(v) for k, v in metrics.items() if math.isfinite(float(v))}
