"""One retraining run: data, training in a subprocess, the gate, then register and hand over.

A candidate that fails the gate is registered ``archived`` with the gate report and nothing
changes in serving. One that passes is registered ``staging`` with the report, its lineage
(training window, data hash, trigger, parent version) and metrics, and handed to the rollout
with the declared strategy (default: shadow, then canary). It is never promoted here.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from watchkeeper.config import Settings
from watchkeeper.errors import Conflict, WatchkeeperError
from watchkeeper.logbook import Logbook
from watchkeeper.models import load_model
from watchkeeper.models.manifest import file_sha256
from watchkeeper.models.signature import Signature
from watchkeeper.registry import ModelVersion, Registry
from watchkeeper.registry.retraining import RetrainRun, RetrainStore
from watchkeeper.retraining.data import LABEL, Split, split
from watchkeeper.retraining.entrypoint import TrainingFailed, train
from watchkeeper.retraining.gate import GateReport, run_gate
from watchkeeper.retraining.spec import RetrainSpec
from watchkeeper.rollout.controller import Rollouts
from watchkeeper.rollout.plan import Plan

log = logging.getLogger("watchkeeper.retraining")


@dataclass(frozen=True)
class _Candidate:
    path: Path
    metrics: dict[str, float]
    log: str


def retrain(
    settings: Settings, spec: RetrainSpec, *, trigger: str = "manual", dry_run: bool = False,
    clock: Callable[[], datetime] | None = None,
) -> RetrainRun:  # fmt: skip
    """Run once; the returned record says how it ended (it is stored whatever happens)."""
    now = (clock or (lambda: datetime.now(UTC)))()
    with Registry(settings) as registry:
        store = RetrainStore(registry.engine)
        production = registry.get(f"{spec.model}@production")
        run = store.start(spec.model, trigger=trigger, parent=production.version,
                          actor=settings.user, dry_run=dry_run)  # fmt: skip
        work = Path(tempfile.mkdtemp(prefix=f"watchkeeper-retrain-{run.id}-"))
        output = ""
        try:
            features = _features(production)
            data = split(Logbook(settings.resolved_logbook_url), spec, features, now)
            train_file = _keep_training_data(settings, run.id, data)
            candidate = _train(spec, work, train_file, features, data, production)
            output = candidate.log
            loaded = load_model(candidate.path)
            _same_inputs(loaded.signature, production)
            report = run_gate(
                loaded, registry.load_version(production), data.evaluation, data.train,
                features=features, policy=spec.gate,
                signature=Signature.from_dict(production.signature)
                if production.signature else None,
                profile=registry.profile_of(production),
            )  # fmt: skip
        except WatchkeeperError as exc:
            output = exc.log if isinstance(exc, TrainingFailed) else output
            return store.finish(run.id, status="failed", error=exc.message, log=output,
                                outcome="nothing registered")  # fmt: skip
        if dry_run:
            return store.finish(run.id, status="dry_run", verdict=report.verdict, log=output,
                                gate=report.to_dict(),
                                outcome="dry run: nothing registered")  # fmt: skip
        version = _register(registry, spec, run.id, candidate, report, data, train_file, trigger,
                            production)  # fmt: skip
        if not report.passed:
            return store.finish(run.id, status="rejected", verdict="fail", log=output,
                                gate=report.to_dict(), candidate=version.version,
                                outcome=f"registered v{version.version} archived; serving "
                                        "unchanged")  # fmt: skip
        outcome = _hand_over(registry, spec, version)
        return store.finish(run.id, status="registered", verdict="pass", log=output,
                            gate=report.to_dict(), candidate=version.version,
                            outcome=outcome)  # fmt: skip


def _features(production: ModelVersion) -> list[str]:
    if not production.signature:
        raise WatchkeeperError(f"{production.ref} has no signature: its inputs are unknown")
    return Signature.from_dict(production.signature).names


def _keep_training_data(settings: Settings, run_id: int, data: Split) -> Path:
    """The training rows, kept as the candidate's data link (lineage)."""
    folder = settings.home / "retraining"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{run_id}-train.parquet"
    data.train.to_parquet(path, index=False)
    return path


def _train(spec: RetrainSpec, work: Path, train_file: Path, features: list[str], data: Split,
           production: ModelVersion) -> _Candidate:  # fmt: skip
    job = {"model": spec.model, "label": LABEL, "reference_uri": production.data_uri,
           "parent_version": production.version,
           "train_window": [t.isoformat() for t in data.train_window]}  # fmt: skip
    trained = train(spec, work=work, train_file=train_file, features=features, job=job)
    return _Candidate(trained.model_path, trained.metrics, trained.log)


def _same_inputs(signature: Signature | None, production: ModelVersion) -> None:
    wanted = Signature.from_dict(production.signature) if production.signature else None
    if signature is None or wanted is None:
        return
    got = {(c.name, c.dtype) for c in signature.columns}
    need = {(c.name, c.dtype) for c in wanted.columns}
    if got != need:
        missing = sorted(n for n, _ in need - got)
        extra = sorted(n for n, _ in got - need)
        raise WatchkeeperError(
            f"the candidate's inputs differ from {production.ref}'s "
            f"(missing or retyped: {missing or '-'}; unexpected: {extra or '-'})"
        )


def _register(
    registry: Registry, spec: RetrainSpec, run_id: int, candidate: _Candidate,
    report: GateReport, data: Split, train_file: Path, trigger: str, production: ModelVersion,
) -> ModelVersion:  # fmt: skip
    start, end = data.train_window
    metrics = {k: v for k, v in report.details["candidate"].items() if v is not None}
    tags = {
        "trigger": trigger, "parent_version": str(production.version),
        "training_window": f"{start.isoformat()}/{end.isoformat()}",
        "gate": report.verdict, "gate_comparison": report.comparison,
        "gate_report": json.dumps(report.to_dict(), default=str)[:4000],
        "retrain_run": str(run_id),
    }  # fmt: skip
    return registry.register(
        spec.model, candidate.path, metrics={**candidate.metrics, **metrics}, tags=tags,
        run_id=f"retrain-{run_id}", data_uri=str(train_file), data_hash=file_sha256(train_file),
        reference_data=data.train[[c for c in data.train.columns if c != LABEL]],
        description=f"retrained ({trigger}); gate {report.verdict}",
        stage="staging" if report.passed else "archived",
    )  # fmt: skip


def _hand_over(registry: Registry, spec: RetrainSpec, version: ModelVersion) -> str:
    """Start the declared rollout; never promote directly."""
    if spec.strategy == "none":
        return f"registered v{version.version} staging; no rollout declared"
    mode, extra = {"shadow-canary": ("shadow", {"then": "canary"}), "canary": ("canary", {}),
                   "bluegreen": ("bluegreen", {})}[spec.strategy]  # fmt: skip
    # a retrained model is expected to answer differently (that is why it was retrained): the
    # gate judged its performance, so unless declared, the rollout's guards watch errors,
    # latency and labelled performance, not the distance between the two models' answers
    guards = {"max_prediction_distance": 1.0, **dict(spec.rollout.get("guards") or {})}
    plan = Plan.from_dict({**spec.rollout, **extra, "guards": guards})
    try:
        Rollouts(registry, actor="retraining").start(
            spec.model, mode, version.version, plan=plan,
            reason=f"retrained candidate v{version.version} passed the gate",
        )  # fmt: skip
    except Conflict as exc:
        return f"registered v{version.version} staging; rollout not started: {exc.message}"
    return f"registered v{version.version} staging; {mode} started"
