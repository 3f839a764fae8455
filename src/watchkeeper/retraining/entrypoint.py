"""Running the training entrypoint in a subprocess with a timeout; its output is kept.

A ``module:function`` runs in ``python -m watchkeeper.retraining._child`` (the working folder
on its import path); a shell ``command`` runs with ``{output}`` (the folder to write ``model``
and ``metrics.json`` into), ``{train}`` (the training rows, Parquet) and ``{params}`` (a JSON
file) filled in. Either way a crash, a timeout or a missing model ends the run with the reason
and the tail of what the process printed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchkeeper.errors import WatchkeeperError
from watchkeeper.retraining.spec import RetrainSpec


class TrainingFailed(WatchkeeperError):
    """The entrypoint crashed, timed out, or wrote no model."""

    code = "training_failed"

    def __init__(self, message: str, log: str) -> None:
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class Trained:
    model_path: Path
    metrics: dict[str, float]
    log: str


def train(spec: RetrainSpec, *, work: Path, train_file: Path, features: list[str],
          job: dict[str, Any]) -> Trained:  # fmt: skip
    output = work / "output"
    output.mkdir(parents=True, exist_ok=True)
    params_file = work / "params.json"
    params_file.write_text(json.dumps(spec.params))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH")) if p)
    if spec.entrypoint is not None:
        job_file = work / "job.json"
        job_file.write_text(json.dumps({**job, "entrypoint": spec.entrypoint,
                                        "train": str(train_file), "output": str(output),
                                        "features": features, "params": spec.params}))  # fmt: skip
        argv: list[str] | str = [sys.executable, "-m", "watchkeeper.retraining._child",
                                 str(job_file)]  # fmt: skip
        shell = False
    else:
        assert spec.command is not None
        argv = spec.command.format(output=shlex.quote(str(output)),
                                   train=shlex.quote(str(train_file)),
                                   params=shlex.quote(str(params_file)))  # fmt: skip
        shell = True
    seconds = spec.timeout.total_seconds()
    try:
        done = subprocess.run(argv, shell=shell, env=env, capture_output=True, text=True,
                              timeout=seconds, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        log = _text(exc.stdout) + _text(exc.stderr)
        raise TrainingFailed(f"training timed out after {seconds:g} s", log) from exc
    log = done.stdout + done.stderr
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise TrainingFailed(f"training exited with status {done.returncode}: {last}", log)
    model_path = output / "model"
    if not model_path.exists():
        raise TrainingFailed(f"training wrote no model at {model_path}", log)
    metrics_file = output / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    return Trained(model_path, {k: float(v) for k, v in metrics.items()}, log)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
